// The bare Node.js relay (bench/node-relay.ts) as a subject of the peers
// bench: not a peer a school would run, but the floor under any Node.js
// proxy on this machine, measured in the same rounds as everything else.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listeningOrStopped, spawnPeerProcess } from './child.js';
import type { PeerStartOptions, RunningPeer } from './peer.js';
import { treeUsage } from './proc.js';

/** dist-bench/bench/peers/node-relay.js → dist-bench/bench/node-relay.js */
const RELAY_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'node-relay.js');

/** Its name in the tables; ratios.ts tells it from the peers by this. */
export const NODE_RELAY_NAME = 'Node relay (the floor)';

export async function startNodeRelay(options: PeerStartOptions): Promise<RunningPeer> {
  const { dir, port } = options;
  const child = spawnPeerProcess('node-relay', process.execPath, [RELAY_SCRIPT, String(port)], path.join(dir, 'node-relay.out'));
  await listeningOrStopped(child, port, 10_000);
  return {
    name: NODE_RELAY_NAME,
    version: `Node ${process.version}`,
    port,
    pid: child.pid,
    settings: [
      'bench/node-relay.ts, one process',
      'reads each head, forwards it on a kept-alive connection and hands the answer back',
      'no policy, identification or logging: the least a Node.js proxy does',
    ],
    usage: () => treeUsage(child.pid),
    stop: () => child.stop(),
  };
}
