// Sustained access-log throughput: events recorded as fast as the writer
// drains them into Postgres, for BENCH_SECONDS (default 20), then a report
// of rows written per second. BENCH_CONCURRENCY sets the writer's
// writeConcurrency (default 2), BENCH_BATCH its batchSize (default 5,000,
// the writer's default). Uses DATABASE_URL (a database it may add
// tables to) or else a throwaway embedded Postgres in a temp folder.
//
// Besides events/s it reports CPU seconds (this process, and the Postgres
// cluster when it is the embedded one), the load average during the run,
// how long each query of a batch took (a first write is one COPY into
// access_log; BEGIN, INSERT and COMMIT appear only for the staging path),
// and, measured apart on the same kind of events, how long making the events
// and encoding a batch for COPY take. The writer's own Node CPU per event is
// this process's CPU per event less the cost of making the events.
//
// measureAccessLogThreadThroughput runs the same load through AccessLogThread,
// as the proxy runs the access log: each event encoded on this thread and
// handed over in chunks, the writer on a thread of its own.
//
// `npm run bench` runs this as part of bench/run.ts; on its own:
//   npx tsc -p tsconfig.json --outDir dist-bench && node dist-bench/bench/access-log-throughput.js
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { encodeAccessEvent } from '../access-log/copy-row.js';
import { newEventId } from '../access-log/event-id.js';
import { buildClosedDayIndex, CLOSED_DAY_INDEXES, closedDayIndexName } from '../access-log/closed-day-indexes.js';
import { partitionName } from '../access-log/partitions.js';
import { AccessLogThread } from '../access-log/thread.js';
import { AccessLogWriter } from '../access-log/writer.js';
import { createPool } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { migrate } from '../core/migrate.js';
import type { AccessEvent } from '../proxy/types.js';
import { median, percentile, processCpuSeconds, sampleLoad, startBenchPostgres, timeQueries, type QueryKind } from './lib.js';

const QUEUE_CAP = 50_000;
const BATCH_SIZE = Number(process.env.BENCH_BATCH ?? 5_000); // the writer's default unless set

export interface ThroughputOptions {
  connectionString: string;
  seconds: number;
  writeConcurrency: number;
  /** CPU seconds used so far by Postgres, when known. */
  postgresCpuSeconds?: () => number;
}

export interface QueryTimings {
  count: number;
  medianMs: number;
  p95Ms: number;
  totalMs: number;
}

/** What every throughput run reports: its counts, and the time and CPU it took. */
export interface ThroughputRun {
  seconds: number;
  recorded: number;
  written: number;
  spooled: number;
  dropped: number;
  rejected: number;
  eventsPerSecond: number;
  /** CPU seconds of this process (making the events, and the writer on whichever thread it runs). */
  nodeCpuSeconds: number;
  postgresCpuSeconds: number | null;
  loadMedian: number;
  rowsInTable: number;
}

/** A run of the writer in this process, which can also time its queries. */
export interface ThroughputResult extends ThroughputRun {
  /** Node CPU per event written, less the cost of making the events (measured apart): record() + encode + write. */
  writerCpuMicrosPerEvent: number;
  loadMax: number;
  writeConcurrency: number;
  queries: Partial<Record<QueryKind, QueryTimings>>;
}

async function benchGroup(pool: ReturnType<typeof createPool>): Promise<number> {
  const school = await pool.query<{ id: number }>("INSERT INTO schools (name) VALUES ('Bench School ' || $1) RETURNING id", [randomUUID()]);
  const group = await pool.query<{ id: number }>(
    "INSERT INTO groups (school_id, key, name) VALUES ($1, 'bench-' || $2, 'Bench') RETURNING id",
    [school.rows[0].id, randomUUID()],
  );
  return group.rows[0].id;
}

const categories = [[], ['games'], ['social', 'chat'], ['news']];

/** A realistic event: a pupil on one of 5,000 sites, a tenth of them blocked. */
export function benchEvent(i: number, groupId: number): AccessEvent {
  return {
    id: newEventId(),
    time: new Date(),
    identity: { userId: 1 + (i % 900), username: `pupil${i % 900}`, groupId, groupKey: 'bench', source: 'proxy-auth' },
    clientIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    method: 'GET',
    scheme: 'https',
    host: `site${i % 5000}.example.org`,
    port: 443,
    path: `/page/${i}?q=search+terms`,
    decision: {
      action: i % 10 === 0 ? 'block' : 'allow', categories: categories[i % 4], category: categories[i % 4][0] ?? null,
      ruleKind: 'group_rule', ruleId: 12, rule: 'pupils: games are blocked',
    },
    status: 200,
    bytesIn: 512,
    bytesOut: 24_000,
    durationMs: 35,
    blockRef: null,
  };
}

/** A run's clocks: wall time, this process's CPU, Postgres's CPU (when known) and the load average. */
interface RunMeter {
  /** When the run stops offering events. */
  until: number;
  /** Wall and CPU seconds since the start; read when the writer has flushed. */
  elapsed(): { seconds: number; nodeCpuSeconds: number };
  /** Postgres's CPU seconds since the start, and the load seen; read once its sessions' work is counted. */
  finish(): { postgresCpuSeconds: number | null; loadMedian: number; loadMax: number };
}

function startRunMeter(options: ThroughputOptions): RunMeter {
  const load = sampleLoad();
  const pgCpuBefore = options.postgresCpuSeconds?.();
  const cpuBefore = processCpuSeconds();
  const started = performance.now();
  return {
    until: started + options.seconds * 1000,
    elapsed: () => ({ seconds: (performance.now() - started) / 1000, nodeCpuSeconds: processCpuSeconds() - cpuBefore }),
    finish: () => {
      const seen = load.stop();
      return {
        postgresCpuSeconds: pgCpuBefore === undefined ? null : options.postgresCpuSeconds!() - pgCpuBefore,
        loadMedian: seen.median,
        loadMax: seen.max,
      };
    },
  };
}

function summarise(values: number[]): QueryTimings {
  return { count: values.length, medianMs: median(values), p95Ms: percentile(values, 95), totalMs: values.reduce((a, b) => a + b, 0) };
}

/** One timed run: a fresh writer (own pool, own spool folder) fed as fast as it drains. */
export async function measureAccessLogThroughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const pool = createPool(options.connectionString, undefined, options.writeConcurrency + 2);
  const timed = timeQueries(pool);
  const spoolDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-spool-'));
  try {
    await migrate(pool);
    const groupId = await benchGroup(pool);
    const writer = new AccessLogWriter({
      pool, spoolDir, log: createLogger('warn'), queueCap: QUEUE_CAP, batchSize: BATCH_SIZE, writeConcurrency: options.writeConcurrency,
    });
    await writer.start();
    timed.reset();
    const meter = startRunMeter(options);
    let recorded = 0;
    // Offer events whenever the queue has room, so the measure is the writer's pace, not the spool's.
    // While it is full, sleep rather than spin: a spinning loop would charge its CPU to the writer.
    while (performance.now() < meter.until) {
      while (writer.queueDepth < QUEUE_CAP / 2) writer.record(benchEvent(recorded++, groupId));
      await sleep(1);
    }
    await writer.close();
    const { seconds: elapsed, nodeCpuSeconds } = meter.elapsed();
    const { postgresCpuSeconds, loadMedian, loadMax } = meter.finish();
    const c = writer.counters();
    const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM access_log WHERE group_id = $1', [groupId]);
    const queries: Partial<Record<QueryKind, QueryTimings>> = {};
    for (const [kind, values] of timed.timings) queries[kind] = summarise(values);
    return {
      seconds: elapsed,
      recorded,
      written: c.written,
      spooled: c.spooled,
      dropped: c.dropped,
      rejected: c.rejected,
      eventsPerSecond: c.written / elapsed,
      nodeCpuSeconds,
      writerCpuMicrosPerEvent: (nodeCpuSeconds * 1e6) / c.written - measureEventMaking(50_000),
      postgresCpuSeconds,
      loadMedian,
      loadMax,
      writeConcurrency: options.writeConcurrency,
      queries,
      rowsInTable: Number(rows[0].n),
    };
  } finally {
    await pool.end();
    await rm(spoolDir, { recursive: true, force: true });
  }
}

/** Events recorded between two looks at the writer's queue. */
const FEED_STEP = 1_000;

const CLIENT_SESSIONS = "SELECT coalesce(array_agg(pid), '{}') AS pids FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'";

/**
 * Waits for every session but `ours` to end. An ended session's CPU is in
 * Postgres's count only once the postmaster has reaped it, and the writer's
 * thread closes its sessions as the run ends.
 */
async function otherSessionsEnded(pool: ReturnType<typeof createPool>, ours: readonly number[]): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    const { rows } = await pool.query<{ pids: number[] }>(CLIENT_SESSIONS);
    if (rows[0].pids.every((pid) => ours.includes(pid))) break;
    await sleep(20);
  }
  await sleep(100);
}

/**
 * One timed run through AccessLogThread with a fresh spool folder. The
 * writer's queue is on its thread, so its depth is asked for (status()) after
 * every FEED_STEP events, and no more are offered while it is half full: the
 * measure is the writer's pace, not the spool's.
 */
export async function measureAccessLogThreadThroughput(options: ThroughputOptions): Promise<ThroughputRun> {
  const pool = createPool(options.connectionString, undefined, 2);
  const spoolDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-spool-'));
  try {
    await migrate(pool);
    const groupId = await benchGroup(pool);
    const ourSessions = (await pool.query<{ pids: number[] }>(CLIENT_SESSIONS)).rows[0].pids;
    const thread = await AccessLogThread.start({
      connectionString: options.connectionString,
      log: createLogger('warn'),
      writer: { spoolDir, queueCap: QUEUE_CAP, batchSize: BATCH_SIZE, writeConcurrency: options.writeConcurrency },
    });
    try {
      const meter = startRunMeter(options);
      let recorded = 0;
      while (performance.now() < meter.until) {
        for (let i = 0; i < FEED_STEP; i++) thread.record(benchEvent(recorded++, groupId));
        while ((await thread.status()).queueDepth >= QUEUE_CAP / 2 && performance.now() < meter.until) await sleep(1);
      }
      await thread.close();
      const { seconds: elapsed, nodeCpuSeconds } = meter.elapsed();
      await otherSessionsEnded(pool, ourSessions);
      const { postgresCpuSeconds, loadMedian } = meter.finish();
      const { counters } = await thread.status();
      const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM access_log WHERE group_id = $1', [groupId]);
      return {
        seconds: elapsed,
        recorded,
        written: counters.written,
        spooled: counters.spooled,
        dropped: counters.dropped,
        rejected: counters.rejected,
        eventsPerSecond: counters.written / elapsed,
        nodeCpuSeconds,
        postgresCpuSeconds,
        loadMedian,
        rowsInTable: Number(rows[0].n),
      };
    } finally {
      await thread.close(); // a run that failed part-way must not leave the thread keeping the process alive
    }
  } finally {
    await pool.end();
    await rm(spoolDir, { recursive: true, force: true });
  }
}

export interface ClosedDayIndexBuildResult {
  partition: string;
  rows: number;
  /** Each index's build, in the order the maintenance builds them. */
  builds: { index: string; seconds: number }[];
  /** Postgres CPU per row of all the builds, when Postgres's CPU is known. */
  postgresCpuMicrosPerRow: number | null;
  /**
   * The partition's bytes on disk per row (table, TOAST and every index), as
   * an open day is kept and once its closed-day indexes are built: what a
   * day of the access log costs in disk, for sizing LOG_RETENTION_DAYS.
   */
  diskBytesPerRow: { openDay: number; closedDay: number };
}

/**
 * The indexes that the writer does not keep up live (a person's history in
 * time order, by host), built as the maintenance builds them when the day
 * closes, on the partition of `day` (the day the throughput runs filled), and
 * then dropped again, as an open day's partition is kept; with the
 * partition's size on disk per row before and after.
 */
export async function measureClosedDayIndexBuild(connectionString: string, day: Date, postgresCpuSeconds?: () => number): Promise<ClosedDayIndexBuildResult> {
  const pool = createPool(connectionString, undefined, 2);
  const client = await pool.connect();
  try {
    const partition = partitionName(day);
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${client.escapeIdentifier(partition)}`);
    const count = Number(rows[0].n);
    if (count === 0) throw new Error(`${partition} holds no rows: there is no index build to measure`);
    const bytesPerRow = async (): Promise<number> => {
      const size = await client.query<{ bytes: string }>('SELECT pg_total_relation_size($1::regclass) AS bytes', [client.escapeIdentifier(partition)]);
      return Number(size.rows[0].bytes) / count;
    };
    const openDay = await bytesPerRow();
    const pgBefore = postgresCpuSeconds?.();
    const builds: ClosedDayIndexBuildResult['builds'] = [];
    for (const index of CLOSED_DAY_INDEXES) {
      const started = performance.now();
      await buildClosedDayIndex(client, partition, index);
      builds.push({ index: closedDayIndexName(partition, index), seconds: (performance.now() - started) / 1000 });
    }
    const pgCpu = pgBefore === undefined ? null : postgresCpuSeconds!() - pgBefore;
    const closedDay = await bytesPerRow();
    for (const { index } of builds) await client.query(`DROP INDEX ${client.escapeIdentifier(index)}`);
    return {
      partition, rows: count, builds,
      postgresCpuMicrosPerRow: pgCpu === null ? null : (pgCpu * 1e6) / count,
      diskBytesPerRow: { openDay, closedDay },
    };
  } finally {
    client.release();
    await pool.end();
  }
}

/** CPU µs per event of making bench events (what the proxy does, not the writer), in a tight loop. */
function measureEventMaking(count: number): number {
  const cpuBefore = processCpuSeconds();
  for (let i = 0; i < count; i++) benchEvent(i, 1);
  return ((processCpuSeconds() - cpuBefore) * 1e6) / count;
}

/** CPU cost of turning events into COPY text, batch by batch, as the writer does (encode each, then join). */
export function measureEncode(batches: number): { medianBatchMs: number; microsPerEvent: number; bytesPerEvent: number } {
  const perBatch: number[] = [];
  let bytes = 0;
  for (let b = 0; b < batches + 1; b++) {
    const events = Array.from({ length: BATCH_SIZE }, (_, i) => benchEvent(b * BATCH_SIZE + i, 1));
    const started = performance.now();
    const text = events.map((e) => encodeAccessEvent(e).line).join('');
    const ms = performance.now() - started;
    if (b > 0) perBatch.push(ms); // the first batch warms the JIT
    bytes = text.length;
  }
  const medianBatchMs = median(perBatch);
  return { medianBatchMs, microsPerEvent: (medianBatchMs * 1000) / BATCH_SIZE, bytesPerEvent: bytes / BATCH_SIZE };
}

/** A result that is not lossless is not a throughput figure. */
export function checkThroughput(result: ThroughputRun): void {
  const problems: string[] = [];
  if (result.written !== result.recorded) problems.push(`recorded ${result.recorded} events but wrote ${result.written}`);
  if (result.rowsInTable !== result.recorded) problems.push(`access_log holds ${result.rowsInTable} rows for ${result.recorded} events`);
  if (result.spooled || result.dropped || result.rejected) {
    problems.push(`spooled ${result.spooled}, dropped ${result.dropped}, rejected ${result.rejected} (all should be 0)`);
  }
  if (problems.length) throw new Error(`access-log throughput run is not valid: ${problems.join('; ')}`);
}

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 20);
  const writeConcurrency = Number(process.env.BENCH_CONCURRENCY ?? 2);
  const embedded = process.env.DATABASE_URL ? undefined : await startBenchPostgres();
  try {
    const started = new Date();
    const result = await measureAccessLogThroughput({
      connectionString: process.env.DATABASE_URL ?? embedded!.connectionString,
      seconds,
      writeConcurrency,
      postgresCpuSeconds: embedded ? () => embedded.cpuSeconds() : undefined,
    });
    checkThroughput(result);
    const closedDayIndexes = await measureClosedDayIndexBuild(process.env.DATABASE_URL ?? embedded!.connectionString, started, embedded && (() => embedded.cpuSeconds()));
    console.log(JSON.stringify({ ...result, closedDayIndexes, encode: measureEncode(20), cpus: os.cpus().length, cpu: os.cpus()[0]?.model }, null, 2));
  } finally {
    await embedded?.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
