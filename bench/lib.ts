// Shared pieces of the benchmarks: a private embedded Postgres on a free
// loopback port, CPU-time readings (this process, and the Postgres cluster
// from /proc), load-average sampling, medians and a timing wrapper for the
// queries a pool's sessions run.
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Pool, PoolClient } from '../core/db.js';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../core/embedded-postgres.js';
import { freePort, median } from './common.js';
import { treeUsage } from './peers/proc.js';

export { freePort, median, ORIGIN_BODY, percentile, processCpuSeconds } from './common.js';

export interface BenchPostgres {
  connectionString: string;
  scratch: string;
  /** CPU seconds used so far by the postmaster and its live children (backends, WAL writer, checkpointer…). */
  cpuSeconds(): number;
  version(pool: Pool): Promise<string>;
  stop(): Promise<void>;
}

/** A throwaway embedded Postgres cluster in a temp folder, on a free loopback port. */
export async function startBenchPostgres(): Promise<BenchPostgres> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-'));
  await chmod(scratch, 0o711); // as root, the embedded Postgres runs as `postgres` and must enter it
  const dataDir = path.join(scratch, 'data');
  let handle: EmbeddedPostgresHandle;
  try {
    handle = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  } catch (err) {
    await rm(scratch, { recursive: true, force: true });
    throw err;
  }
  const postmasterPid = Number(readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0].trim());
  return {
    connectionString: handle.connectionString,
    scratch,
    cpuSeconds() {
      return treeUsage(postmasterPid).cpuSeconds;
    },
    async version(pool) {
      const { rows } = await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v");
      return rows[0].v;
    },
    async stop() {
      await handle.stop();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}

/** Samples the 1-minute load average once a second until stopped. */
export function sampleLoad(): { stop(): { median: number; max: number; samples: number[] } } {
  const samples = [os.loadavg()[0]];
  const timer = setInterval(() => samples.push(os.loadavg()[0]), 1_000);
  return {
    stop() {
      clearInterval(timer);
      samples.push(os.loadavg()[0]);
      return { median: median(samples), max: Math.max(...samples), samples };
    },
  };
}

export type QueryKind = 'BEGIN' | 'COPY' | 'INSERT' | 'COMMIT' | 'other';

/**
 * Times every query the pool's sessions run, by kind, without changing what
 * they do: the promise (or, for COPY, the stream's 'finish', which
 * pg-copy-streams emits once Postgres has acknowledged the data) is observed,
 * never replaced. Only sessions connected after this call are timed.
 */
export function timeQueries(pool: Pool): { timings: Map<QueryKind, number[]>; reset(): void } {
  const timings = new Map<QueryKind, number[]>();
  const note = (kind: QueryKind, ms: number): void => {
    const list = timings.get(kind) ?? [];
    list.push(ms);
    timings.set(kind, list);
  };
  const kindOf = (arg: unknown): QueryKind => {
    const text = typeof arg === 'string' ? arg : (arg as { text?: unknown })?.text;
    if (typeof text !== 'string') return 'other';
    const head = text.trimStart().slice(0, 12).toUpperCase();
    if (head.startsWith('BEGIN')) return 'BEGIN';
    if (head.startsWith('COMMIT')) return 'COMMIT';
    if (head.startsWith('COPY')) return 'COPY';
    if (head.startsWith('INSERT')) return 'INSERT';
    return 'other';
  };
  pool.on('connect', (client: PoolClient) => {
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const kind = kindOf(args[0]);
      const started = performance.now();
      const result = original(...args);
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(() => note(kind, performance.now() - started), () => undefined);
      } else if (result && typeof (result as NodeJS.EventEmitter).once === 'function') {
        (result as NodeJS.EventEmitter).once('finish', () => note(kind, performance.now() - started));
      }
      return result;
    };
  });
  return { timings, reset: () => timings.clear() };
}

export function formatNumber(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return '–';
  return value.toLocaleString('en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
