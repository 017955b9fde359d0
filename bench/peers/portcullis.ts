// Portcullis itself, measured exactly as the peers are: the built program
// (`node dist/bin/portcullis.js start`; `npm run bench` builds it first) in
// its own process group, with the same UT1 lists imported first by
// `portcullis blocklists import`, its embedded Postgres, access logging on,
// identification by address (no credentials) and the default policy, so the
// same gambling host is blocked for the unidentified guests group.
//
// Its resource figures leave out the embedded Postgres (the peers log to
// files, not to a database).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ALLOCATOR_ENVIRONMENT } from '../../core/allocator-settings.js';
import { packageRoot } from '../../core/paths.js';
import { spawnPeerProcess } from './child.js';
import type { BlockAnswer, FilteringPeerStartOptions, RunningPeer } from './peer.js';
import { freePort } from '../common.js';
import { treeUsageWithout } from './proc.js';

const run = promisify(execFile);
const BIN = path.join(packageRoot, 'dist', 'bin', 'portcullis.js');

export interface PortcullisOptions extends FilteringPeerStartOptions {
  /** PROXY_WORKERS. */
  workers: number;
  /** The origin's port, allowed for CONNECT as 443 is (the tunnel case tunnels to the origin). */
  originPort: number;
  /** Write V8 CPU profiles of the Portcullis processes here (written when they stop). */
  cpuProfileDir?: string;
  /** Fail unless the policy in service holds at least this many domains (read from /healthz), and name the peer after it. */
  minimumDomains?: number;
}

export const portcullisBlockAnswer: BlockAnswer = {
  status: 403,
  description: '403 block page',
  matches: (response) => response.status === 403 && response.body.includes('This page is blocked'),
};

function isPostgres(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
  } catch {
    return false;
  }
}

/** The domain count of the policy in service, from /healthz (the admin API may start listening just after the proxy). */
async function policyDomains(adminPort: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${adminPort}/healthz`);
      const body = (await response.json()) as { policy?: { domains?: number } };
      if (typeof body.policy?.domains === 'number') return body.policy.domains;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`Portcullis's /healthz on port ${adminPort} gave no policy domain count within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function startPortcullis(options: PortcullisOptions): Promise<RunningPeer> {
  const { dir, port, workers } = options;
  await chmod(dir, 0o711); // as root, the embedded Postgres runs as `postgres` and must enter it
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    // As `npm start` and the Docker image run it.
    ...ALLOCATOR_ENVIRONMENT,
    DATA_DIR: path.join(dir, 'var'),
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: String(port),
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: String(await freePort()),
    EMBEDDED_PG_PORT: String(await freePort()),
    ADMIN_PASSWORD: 'bench-admin-password',
    ALLOWED_CLIENTS: '127.0.0.0/8',
    // origin.test is this machine (/etc/hosts, bench/peers/setup.sh).
    ALLOWED_PRIVATE_DESTINATIONS: '127.0.0.0/8',
    CONNECT_PORTS: `443,${options.originPort}`,
    PROXY_WORKERS: String(workers),
    LOG_LEVEL: 'warn',
  };
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` first (npm run bench does)`);
  const imported = await run(process.execPath, [BIN, 'blocklists', 'import', options.lists], { env, maxBuffer: 16 * 1024 * 1024 });
  const profiling = options.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`];
  const child = spawnPeerProcess('portcullis', process.execPath, [...profiling, BIN, 'start'], path.join(dir, 'portcullis.out'), env);
  let domainsInService: number | undefined;
  try {
    await child.waitForPort(port, 120_000);
    if (options.minimumDomains !== undefined) {
      domainsInService = await policyDomains(Number(env.ADMIN_PORT));
      if (domainsInService < options.minimumDomains) {
        throw new Error(`Portcullis serves ${domainsInService} domains, fewer than the ${options.minimumDomains} it was given: the lists are not the ones meant to be measured`);
      }
    }
  } catch (err) {
    await child.stop(15_000);
    throw err;
  }
  const name = workers === 1 ? 'Portcullis, 1 process' : `Portcullis, ${workers} workers`;
  return {
    name: domainsInService === undefined ? name : `${name}, ${domainsInService.toLocaleString('en-GB')} domains`,
    version: `Portcullis ${(JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version}, Node ${process.version}`,
    port,
    pid: child.pid,
    blockAnswer: portcullisBlockAnswer,
    settings: [
      `PROXY_WORKERS=${workers}`,
      ...Object.entries(ALLOCATOR_ENVIRONMENT).map(([name, value]) => `${name}=${value}`),
      'access logging on (embedded Postgres)',
      'identification by address, default policy',
      `lists: ${imported.stdout.trim().split('\n').at(-1) ?? ''}`,
    ],
    // Its CPU and memory without the embedded Postgres (the postgres processes and their children).
    usage: () => treeUsageWithout(child.pid, isPostgres),
    stop: () => child.stop(20_000),
  };
}
