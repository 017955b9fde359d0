// squid as a plain forward proxy (no filtering, no cache), and the squid
// half of squid + squidGuard (bench/peers/squidguard.ts adds the rewrite
// helpers). Runs in the foreground (`--foreground` keeps SMP workers, unlike
// `-N`) with its configuration, logs and pid file in the peer's folder.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { listeningOrStopped, spawnPeerProcess } from './child.js';
import { packageVersion, type PeerStartOptions, type RunningPeer } from './peer.js';
import { treeUsage } from './proc.js';

export interface SquidOptions extends PeerStartOptions {
  /**
   * SMP workers, 2 by default: on this 2-core box (wrk and the origin on
   * the same cores) 2 workers were never slower for allowed requests or
   * CONNECT than 1, at about twice the memory (see bench/peers/README.md).
   */
  workers?: number;
}

/** The squid.conf lines that load URL rewrite helpers (squidGuard). */
export interface RewriteHelpers {
  lines: string[];
}

export const DEFAULT_SQUID_WORKERS = 2;
const STARTUP_MS = 30_000;

function squidConfig(options: SquidOptions, rewrite: RewriteHelpers | undefined): string {
  const dir = options.dir;
  return [
    `http_port 127.0.0.1:${options.port}`,
    `workers ${options.workers ?? DEFAULT_SQUID_WORKERS}`,
    `pid_filename ${path.join(dir, 'squid.pid')}`,
    `cache_log ${path.join(dir, 'cache.log')}`,
    // Every request logged, as a school runs it.
    `access_log stdio:${path.join(dir, 'access.log')} squid`,
    `coredump_dir ${dir}`,
    'cache deny all',
    'cache_mem 0 MB',
    // Names resolve from /etc/hosts (origin.test and the blocked test host point at this machine).
    'hosts_file /etc/hosts',
    // squid's built-in `localhost` ACL: the bench's clients are all on 127.0.0.1.
    'http_access allow localhost',
    'http_access deny all',
    // Keep-alive both ways (squid's defaults, stated so the bench does not depend on them).
    'client_persistent_connections on',
    'server_persistent_connections on',
    'pinger_enable off',
    'netdb_filename none',
    'icp_port 0',
    'shutdown_lifetime 0 seconds',
    ...(rewrite?.lines ?? []),
    '',
  ].join('\n');
}

export async function startSquidWith(name: string, options: SquidOptions, rewrite: RewriteHelpers | undefined, packages: string[]): Promise<RunningPeer> {
  const { dir, port } = options;
  // squid drops to the `proxy` user: it must write its logs and pid file here.
  chmodSync(dir, 0o777);
  // SMP workers talk over sockets in squid's state folder, which the package makes only when its service starts.
  mkdirSync('/run/squid', { recursive: true });
  execFileSync('chown', ['proxy:proxy', '/run/squid']);
  const configFile = path.join(dir, 'squid.conf');
  writeFileSync(configFile, squidConfig(options, rewrite));
  try {
    execFileSync('squid', ['-k', 'parse', '-f', configFile], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`${name}: squid rejects ${configFile}: ${String((err as { stderr?: Buffer }).stderr ?? err)}`);
  }
  const child = spawnPeerProcess(name, 'squid', ['--foreground', '-f', configFile], path.join(dir, 'squid.out'));
  await listeningOrStopped(child, port, STARTUP_MS);
  return {
    name,
    version: packageVersion(...packages),
    port,
    pid: child.pid,
    settings: [`workers ${options.workers ?? DEFAULT_SQUID_WORKERS}`, 'no cache', 'keep-alive to clients and origin', 'access log on'],
    usage: () => treeUsage(child.pid),
    stop: () => child.stop(),
  };
}

export function startSquid(options: SquidOptions): Promise<RunningPeer> {
  const workers = options.workers ?? DEFAULT_SQUID_WORKERS;
  return startSquidWith(`squid (${workers} worker${workers > 1 ? 's' : ''})`, { ...options, workers }, undefined, ['squid']);
}
