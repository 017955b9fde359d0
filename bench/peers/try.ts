// Measures the peer proxies from Debian's packages side by side, in rounds,
// against the same local origin, and the origin on its own as the limit, then
// prints a table. Needs bench/peers/setup.sh to have run (as root).
//
//   npx tsc -p bench/tsconfig.json && node dist-bench/bench/peers/try.js
//
// Settings (environment): BENCH_PEERS (comma-separated, default
// "origin,node-relay,portcullis,portcullis-1,portcullis-5m,squid,squidguard,e2guardian,tinyproxy";
// node-relay is bench/node-relay.ts, the floor under any Node.js proxy; portcullis runs one proxy worker per core, portcullis-1 one, portcullis-5m one
// with the lists padded to 5 million domains (bench/padded-lists.ts); also "squid-1w" and
// "squidguard-1w" for one SMP worker instead of two), BENCH_PEER_SECONDS (each wrk run,
// default 5), BENCH_PEER_ROUNDS (rounds over all the peers, default 3), BENCH_CONNECTIONS (default 50), BENCH_THREADS (wrk threads,
// 1 or 2, default 2), BENCH_TUNNELS (CONNECT tunnels, default 3000),
// BENCH_IDLE_CLIENTS (default 1000), BENCH_UT1 (UT1 folder).
import os from 'node:os';
import { DEFAULT_UT1_FOLDER } from './lists.js';
import { checkPeerNames, measureAllPeers, peerNamesFromEnv, peerSettingsFromEnv } from './run-all.js';
import { formatPeerTable } from './table.js';

function setting(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

async function main(): Promise<void> {
  const wanted = peerNamesFromEnv();
  checkPeerNames(wanted);
  const threads = setting('BENCH_THREADS', 2);
  if (threads !== 1 && threads !== 2) throw new Error('BENCH_THREADS must be 1 or 2');
  const settings = peerSettingsFromEnv(setting, threads);
  const lists = process.env.BENCH_UT1 ?? DEFAULT_UT1_FOLDER;
  const loadAtStart = os.loadavg();
  const { results, quiet } = await measureAllPeers(wanted, settings, lists, (line) => console.error(line));
  const loadAtEnd = os.loadavg();
  console.log(formatPeerTable(results, settings, quiet));
  console.log(`\nload average (1/5/15 min) at start ${loadAtStart.map((l) => l.toFixed(2)).join(' / ')}, at end ${loadAtEnd.map((l) => l.toFixed(2)).join(' / ')}; ${os.cpus().length} CPUs`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
