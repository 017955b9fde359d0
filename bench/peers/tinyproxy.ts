// tinyproxy, no filtering. It closes the client connection after each
// response (HTTP/1.0 style), so its keep-alive figures are really
// connection-per-request figures.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { listeningOrStopped, spawnPeerProcess } from './child.js';
import { packageVersion, type PeerStartOptions, type RunningPeer } from './peer.js';
import { treeUsage } from './proc.js';

export async function startTinyproxy(options: PeerStartOptions): Promise<RunningPeer> {
  const { dir, port } = options;
  const configFile = path.join(dir, 'tinyproxy.conf');
  writeFileSync(
    configFile,
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 600',
      // Every connection logged, as a school runs it (Info is the package's default level).
      `LogFile "${path.join(dir, 'tinyproxy.log')}"`,
      'LogLevel Info',
      `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
      // Enough for the 1,000 idle clients case.
      'MaxClients 2000',
      'Allow 127.0.0.1',
      'ViaProxyName "tinyproxy"',
      '',
    ].join('\n'),
  );
  const child = spawnPeerProcess('tinyproxy', 'tinyproxy', ['-d', '-c', configFile], path.join(dir, 'tinyproxy.out'));
  await listeningOrStopped(child, port, 10_000);
  return {
    name: 'tinyproxy',
    version: packageVersion('tinyproxy'),
    port,
    pid: child.pid,
    settings: ['one process', 'closes client connections after each response', 'connection log on'],
    usage: () => treeUsage(child.pid),
    stop: () => child.stop(),
  };
}
