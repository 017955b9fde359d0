// Measures the peer proxies from Debian's packages one after another against
// the same local origin, and the origin on its own as the limit, then prints
// a table. Needs bench/peers/setup.sh to have run (as root).
//
//   npx tsc -p bench/tsconfig.json && node dist-bench/bench/peers/try.js
//
// Settings (environment): BENCH_PEERS (comma-separated, default
// "origin,squid,squidguard,e2guardian,tinyproxy"; also "squid-1w" and
// "squidguard-1w" for one SMP worker instead of two), BENCH_PEER_SECONDS (each wrk run,
// default 10), BENCH_CONNECTIONS (default 50), BENCH_THREADS (wrk threads,
// 1 or 2, default 2), BENCH_TUNNELS (CONNECT tunnels, default 3000),
// BENCH_IDLE_CLIENTS (default 1000), BENCH_UT1 (UT1 folder).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePortOnLoopback } from './ports.js';
import { startE2guardian } from './e2guardian.js';
import { DEFAULT_UT1_FOLDER } from './lists.js';
import { measureOriginDirect, measurePeer, type MeasureSettings, type PeerResult } from './measure.js';
import { startOriginProcess } from './origin.js';
import type { RunningPeer } from './peer.js';
import { treeUsage } from './proc.js';
import { startSquid } from './squid.js';
import { startSquidGuard } from './squidguard.js';
import { formatPeerTable } from './table.js';
import { startTinyproxy } from './tinyproxy.js';

type Starter = (options: { dir: string; port: number; lists: string }) => Promise<RunningPeer>;

const STARTERS: Record<string, Starter> = {
  squid: (o) => startSquid(o),
  'squid-1w': (o) => startSquid({ ...o, workers: 1 }),
  squidguard: (o) => startSquidGuard(o),
  'squidguard-1w': (o) => startSquidGuard({ ...o, workers: 1 }),
  e2guardian: (o) => startE2guardian(o),
  tinyproxy: (o) => startTinyproxy(o),
};

function setting(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

async function main(): Promise<void> {
  const wanted = (process.env.BENCH_PEERS ?? 'origin,squid,squidguard,e2guardian,tinyproxy').split(',').map((s) => s.trim());
  const unknown = wanted.filter((name) => name !== 'origin' && !STARTERS[name]);
  if (unknown.length > 0) throw new Error(`BENCH_PEERS: unknown ${unknown.join(', ')} (known: origin, ${Object.keys(STARTERS).join(', ')})`);
  const threads = setting('BENCH_THREADS', 2);
  if (threads !== 1 && threads !== 2) throw new Error('BENCH_THREADS must be 1 or 2');
  const settings: MeasureSettings = {
    seconds: setting('BENCH_PEER_SECONDS', 10),
    connections: setting('BENCH_CONNECTIONS', 50),
    threads,
    lightSeconds: 5,
    tunnels: setting('BENCH_TUNNELS', 3000),
    idleClients: setting('BENCH_IDLE_CLIENTS', 1000),
  };
  const lists = process.env.BENCH_UT1 ?? DEFAULT_UT1_FOLDER;
  const loadAtStart = os.loadavg();
  const results: PeerResult[] = [];
  const origin = await startOriginProcess();
  try {
    for (const name of wanted) {
      console.error(`${name}…`);
      if (name === 'origin') {
        results.push(await measureOriginDirect(origin, settings, () => treeUsage(origin.pid)));
        continue;
      }
      const dir = await mkdtemp(path.join(os.tmpdir(), `portcullis-bench-${name}-`));
      const started = performance.now();
      let peer: RunningPeer | undefined;
      try {
        peer = await STARTERS[name]({ dir, port: await freePortOnLoopback(), lists });
        results.push(await measurePeer(peer, origin, settings, (performance.now() - started) / 1_000));
      } finally {
        await peer?.stop();
        await rm(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await origin.stop();
  }
  const loadAtEnd = os.loadavg();
  console.log(formatPeerTable(results, settings));
  console.log(`\nload average (1/5/15 min) at start ${loadAtStart.map((l) => l.toFixed(2)).join(' / ')}, at end ${loadAtEnd.map((l) => l.toFixed(2)).join(' / ')}; ${os.cpus().length} CPUs`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
