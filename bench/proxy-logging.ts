// The proxy's throughput with access logging on (the access log's writer,
// on its own thread, into Postgres) versus off (events counted and
// discarded), in the same run, in pairs of phases, one on and one off, the
// pairs in ABBA order (bench/logging-pairs.ts) so that drift in the
// machine's speed falls on both sides alike.
//
// Three processes besides Postgres: the proxy (bench/proxy-process.ts: the
// proxy runtime `portcullis start` runs, with the real policy compiled from
// the bench database with the UT1 lists, identification by client address,
// and with logging on the access-log writer and alert detection), a local origin
// (bench/origin-process.ts, 1 KiB answers) and wrk (bench/load.ts), which
// sends absolute-URI requests (`GET http://origin.test:<port>/`) over
// keep-alive connections, exactly as a browser configured to use a proxy
// does. wrk, not a load generator in Node, because it needs a fraction of
// the CPU, and this machine's cores are shared by all four.
//
// Each phase runs wrk for BENCH_PHASE_SECONDS. A phase fails the bench
// unless every answer wrk read was a 2xx without socket errors, the origin
// served as many requests as wrk counted (plus at most one in flight per
// connection), the proxy recorded each as an allowed request for
// origin.test (200, or 499 for those wrk left in flight) and, with logging
// on, access_log gained exactly one row per event.
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { importBlocklists, type ImportSummary } from '../blocklists/import.js';
import { ALLOCATOR_ENVIRONMENT } from '../core/allocator-settings.js';
import { prepareDatabase } from '../core/bootstrap.js';
import { loadConfig } from '../core/config.js';
import { createPool, type Pool } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { defaultListsFile } from '../core/paths.js';
import { ORIGIN_BODY } from './common.js';
import { median, sampleLoad, startBenchPostgres } from './lib.js';
import { originCountBounds, runWrk } from './load.js';
import { loggingCostPercent, pairCostsPercent, phasePlan } from './logging-pairs.js';
import { DEFAULT_UT1_FOLDER } from './peers/lists.js';
import { reapedChildrenCpuSeconds } from './peers/proc.js';
import type { ProxyStats } from './proxy-process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ORIGIN_HOST = 'origin.test';
export const WARM_UP_SECONDS = 3;
/**
 * Many short pairs rather than a few long ones: the machine's speed moves
 * from one spell of seconds to the next, and two 5 s phases are more often
 * in one spell than two of 10 s (it moves within a second too, so shorter
 * phases did not steady the figure: docs/design-notes.md). Shorter still,
 * the rows of a phase's last quarter-second (written after wrk stops, while
 * the bench waits for the writer) would be a larger share of its Postgres
 * work left out of it.
 */
export const DEFAULT_PHASE_SECONDS = 5;
export const DEFAULT_PAIRS = 15;

export interface ProxyBenchOptions {
  connectionString: string;
  phaseSeconds: number;
  /** On/off pairs measured after the warm-up. */
  pairs: number;
  connections: number;
  /** Seconds of load each way before the measured phases (WARM_UP_SECONDS unless given). */
  warmUpSeconds?: number;
  postgresCpuSeconds?: () => number;
}

export interface PhaseResult {
  label: string;
  logging: boolean;
  /** The on/off pair it belongs to, from 1 (0 for a warm-up). */
  pair: number;
  requests: number;
  wallSeconds: number;
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  proxyCpuSeconds: number;
  proxyCpuMicrosPerRequest: number;
  originCpuSeconds: number;
  /** TCP connections the proxy opened to the origin during the phase. */
  originConnections: number;
  loadGeneratorCpuSeconds: number;
  postgresCpuSeconds: number | null;
  rowsAdded: number;
  loadMedian: number;
  loadMax: number;
}

export interface ProxyBenchResult {
  policy: { domains: number; urls: number; groups: number; blockedSanityHost: string };
  phases: PhaseResult[];
  phaseSeconds: number;
  connections: number;
  medianOn: { rps: number; p50: number; p99: number; cpuMicros: number };
  medianOff: { rps: number; p50: number; p99: number; cpuMicros: number };
  /** The median of the pairs' costs (bench/logging-pairs.ts): the figure reported. */
  loggingCostPercent: number;
  /** Each pair's 1 − on/off, as a percentage, in pair order. */
  pairCostsPercent: number[];
  /** 1 − on/off of the medians of all on and all off phases, as a percentage. */
  throughputCostPercent: number;
  cpuCostPercent: number;
}

/** Schema, school, default policy, and the UT1 lists: what `portcullis start` sets up. */
export async function prepareBenchDatabase(pool: Pool, ut1Source: string): Promise<ImportSummary> {
  const config = loadConfig({ LOG_LEVEL: 'warn' });
  await prepareDatabase(pool, config, createLogger('warn'));
  return importBlocklists(pool, ut1Source);
}

/** The shared UT1 snapshot (DEFAULT_UT1_FOLDER; BENCH_UT1 to change it) when present, else the UT1 lists bundled with Portcullis. */
export function ut1Source(): string {
  const wanted = process.env.BENCH_UT1 ?? DEFAULT_UT1_FOLDER;
  try {
    if (readdirSync(wanted).length > 0) return wanted;
  } catch {
    // not there: fall back
  }
  return defaultListsFile;
}

class Child {
  private readonly waiting: Array<{ resolve: (m: any) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;
  constructor(readonly process: ChildProcess, name: string) {
    process.on('message', (message: { type: string; message?: string }) => {
      const next = this.waiting.shift();
      if (message.type === 'error') {
        const err = new Error(`${name} process failed: ${message.message}`);
        this.failure = err;
        next?.reject(err);
        return;
      }
      next?.resolve(message);
    });
    process.on('exit', (code) => {
      const err = new Error(`${name} process exited (${code})`);
      for (const w of this.waiting.splice(0)) w.reject(err);
      this.failure ??= err;
    });
  }
  next<T>(): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => this.waiting.push({ resolve, reject }));
  }
  ask<T>(command: object): Promise<T> {
    const reply = this.next<T>();
    this.process.send(command);
    return reply;
  }
  stop(): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGTERM');
  }
}

/** The proxy's stats once its tallies have stopped moving: requests abandoned by the load generator are recorded as they end. */
async function settledStats(proxy: Child): Promise<ProxyStats> {
  let last = await proxy.ask<ProxyStats>({ type: 'stats' });
  for (let quiet = 0; quiet < 3; ) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = await proxy.ask<ProxyStats>({ type: 'stats' });
    const moved = now.tally.answered + now.tally.abandoned !== last.tally.answered + last.tally.abandoned;
    quiet = moved ? 0 : quiet + 1;
    last = now;
  }
  return last;
}

function get(proxyPort: number, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { Host: new URL(url).host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer for ${url} within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

export async function measureProxyLogging(options: ProxyBenchOptions): Promise<ProxyBenchResult> {
  const pool = createPool(options.connectionString);
  const spoolDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-proxy-'));
  const origin = new Child(fork(path.join(here, 'origin-process.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }), 'origin');
  const proxy = new Child(
    fork(path.join(here, 'proxy-process.js'), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...ALLOCATOR_ENVIRONMENT, BENCH_DATABASE_URL: options.connectionString, BENCH_SPOOL_DIR: spoolDir, BENCH_ORIGIN_HOST: ORIGIN_HOST },
    }),
    'proxy',
  );
  try {
    const [{ port: originPort }, ready] = await Promise.all([
      origin.next<{ port: number }>(),
      proxy.next<{ port: number; domains: number; urls: number; groups: number }>(),
    ]);
    const proxyPort = ready.port;
    const target = `http://${ORIGIN_HOST}:${originPort}/`;
    if (ready.domains < 100_000) throw new Error(`the policy in service has only ${ready.domains} listed domains: the UT1 lists did not load`);

    // The policy is the real one: a domain on a list the default policy blocks for everyone is refused with the block page.
    const { rows: listed } = await pool.query<{ value: string; key: string }>(
      `SELECT e.value, c.key FROM list_entries e JOIN categories c ON c.id = e.category_id
       WHERE c.key IN ('gambling', 'mixed_adult', 'adult') AND e.kind = 'domain' ORDER BY c.key, e.value LIMIT 1`,
    );
    if (!listed[0]) throw new Error('no gambling or adult domain in the lists');
    await proxy.ask({ type: 'sanity', on: true });
    const blocked = await get(proxyPort, `http://${listed[0].value}/`);
    await proxy.ask({ type: 'sanity', on: false });
    if (blocked.status !== 403) throw new Error(`expected the proxy to block ${listed[0].value} (${listed[0].key}) with 403, got ${blocked.status}`);
    const allowed = await get(proxyPort, target);
    if (allowed.status !== 200 || allowed.body !== ORIGIN_BODY) throw new Error(`a request for ${target} through the proxy got ${allowed.status}, not the origin's page`);

    const countRows = async (): Promise<number> =>
      Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM access_log WHERE host = $1', [ORIGIN_HOST])).rows[0].n);

    const runPhase = async (label: string, logging: boolean, pair: number, seconds: number): Promise<PhaseResult> => {
      await proxy.ask({ type: 'logging', on: logging });
      const before = await settledStats(proxy);
      const originBefore = await origin.ask<{ served: number; connections: number; cpuSeconds: number }>({ type: 'stats' });
      const rowsBefore = await countRows();
      const pgBefore = options.postgresCpuSeconds?.();
      const load = sampleLoad();
      const wrkCpuBefore = reapedChildrenCpuSeconds();
      const result = await runWrk({
        connectPort: proxyPort, target, host: `${ORIGIN_HOST}:${originPort}`, connections: options.connections, threads: 1, durationSeconds: seconds,
      });
      const loadGeneratorCpuSeconds = reapedChildrenCpuSeconds() - wrkCpuBefore;
      // Requests in flight when wrk stopped end as 499s; with logging on, the
      // phase's cost includes writing its events to Postgres.
      await settledStats(proxy);
      const after = await proxy.ask<ProxyStats>({ type: 'flush', timeoutMs: 60_000 });
      const pgCpu = pgBefore === undefined ? null : options.postgresCpuSeconds!() - pgBefore;
      const loadSeen = load.stop();
      const originAfter = await origin.ask<{ served: number; connections: number; cpuSeconds: number }>({ type: 'stats' });
      const rowsAdded = (await countRows()) - rowsBefore;

      const problems: string[] = [];
      const errors = result.socketErrors;
      if (result.non2xx3xx || errors.connect || errors.read || errors.write || errors.timeout) {
        problems.push(`wrk saw ${result.non2xx3xx} non-2xx/3xx answers and socket errors ${JSON.stringify(errors)}`);
      }
      const served = originAfter.served - originBefore.served;
      const bounds = originCountBounds(result, options.connections);
      if (served < bounds.min || served > bounds.max) problems.push(`the origin served ${served} requests for wrk's ${result.requests} (expected ${bounds.min}–${bounds.max})`);
      const answered = after.tally.answered - before.tally.answered;
      const abandoned = after.tally.abandoned - before.tally.abandoned;
      if (answered < result.requests || answered > bounds.max || answered > served) {
        problems.push(`the proxy answered ${answered} requests with 200 for wrk's ${result.requests} and the origin's ${served}`);
      }
      if (abandoned > options.connections) problems.push(`${abandoned} requests were abandoned, more than the ${options.connections} connections`);
      const events = answered + abandoned;
      const logged = after.tally.logged - before.tally.logged;
      const discarded = after.tally.discarded - before.tally.discarded;
      if (logging ? logged !== events || discarded !== 0 : discarded !== events || logged !== 0) {
        problems.push(`the proxy logged ${logged} and discarded ${discarded} of ${events} events`);
      }
      if (after.tally.unexpected) problems.push(`${after.tally.unexpected} events were not an allowed request for ${ORIGIN_HOST}: last ${after.tally.lastUnexpected}`);
      if (rowsAdded !== (logging ? events : 0)) problems.push(`access_log gained ${rowsAdded} rows for ${events} events (logging ${logging ? 'on' : 'off'})`);
      if (after.writer.spooled || after.writer.dropped || after.writer.rejected) {
        problems.push(`writer spooled ${after.writer.spooled}, dropped ${after.writer.dropped}, rejected ${after.writer.rejected}`);
      }
      if (problems.length) throw new Error(`phase ${label}: ${problems.join('; ')}`);

      const proxyCpuSeconds = after.cpuSeconds - before.cpuSeconds;
      const phase: PhaseResult = {
        label, logging, pair, requests: result.requests, wallSeconds: result.durationSeconds,
        requestsPerSecond: result.requestsPerSecond,
        latencyP50Ms: result.latencyP50Ms,
        latencyP99Ms: result.latencyP99Ms,
        proxyCpuSeconds,
        proxyCpuMicrosPerRequest: (proxyCpuSeconds * 1e6) / events,
        originCpuSeconds: originAfter.cpuSeconds - originBefore.cpuSeconds,
        originConnections: originAfter.connections - originBefore.connections,
        loadGeneratorCpuSeconds,
        postgresCpuSeconds: pgCpu,
        rowsAdded,
        loadMedian: loadSeen.median,
        loadMax: loadSeen.max,
      };
      console.error(
        `  ${label.padEnd(10)} logging ${logging ? 'on ' : 'off'}  ${Math.round(phase.requestsPerSecond)} req/s  p50 ${phase.latencyP50Ms} ms  p99 ${phase.latencyP99Ms} ms  ` +
          `proxy CPU ${Math.round(phase.proxyCpuMicrosPerRequest)} µs/req  Postgres CPU ${pgCpu === null ? '–' : pgCpu.toFixed(2)} s  rows +${rowsAdded}  load ${loadSeen.median.toFixed(2)}`,
      );
      return phase;
    };

    // The JIT, the connection pools and the writer warm up over the first seconds.
    const warmUpSeconds = options.warmUpSeconds ?? WARM_UP_SECONDS;
    await runPhase('warm-up', false, 0, warmUpSeconds);
    await runPhase('warm-up', true, 0, warmUpSeconds);
    const phases: PhaseResult[] = [];
    for (const planned of phasePlan(options.pairs)) phases.push(await runPhase(planned.label, planned.logging, planned.pair, options.phaseSeconds));

    const summary = (on: boolean) => {
      const chosen = phases.filter((p) => p.logging === on);
      return {
        rps: median(chosen.map((p) => p.requestsPerSecond)),
        p50: median(chosen.map((p) => p.latencyP50Ms)),
        p99: median(chosen.map((p) => p.latencyP99Ms)),
        cpuMicros: median(chosen.map((p) => p.proxyCpuMicrosPerRequest)),
      };
    };
    const medianOn = summary(true);
    const medianOff = summary(false);
    return {
      policy: { domains: ready.domains, urls: ready.urls, groups: ready.groups, blockedSanityHost: `${listed[0].value} (${listed[0].key})` },
      phases,
      phaseSeconds: options.phaseSeconds,
      connections: options.connections,
      medianOn,
      medianOff,
      loggingCostPercent: loggingCostPercent(phases),
      pairCostsPercent: pairCostsPercent(phases),
      throughputCostPercent: (1 - medianOn.rps / medianOff.rps) * 100,
      cpuCostPercent: (medianOn.cpuMicros / medianOff.cpuMicros - 1) * 100,
    };
  } finally {
    await proxy.ask({ type: 'stop' }).catch(() => undefined);
    origin.process.send({ type: 'stop' });
    await new Promise((r) => setTimeout(r, 200));
    proxy.stop();
    origin.stop();
    await pool.end();
    await rm(spoolDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const pg = await startBenchPostgres();
  try {
    const pool = createPool(pg.connectionString);
    await prepareBenchDatabase(pool, ut1Source());
    await pool.end();
    const result = await measureProxyLogging({
      connectionString: pg.connectionString,
      phaseSeconds: Number(process.env.BENCH_PHASE_SECONDS ?? DEFAULT_PHASE_SECONDS),
      pairs: Number(process.env.BENCH_PAIRS ?? DEFAULT_PAIRS),
      connections: Number(process.env.BENCH_CONNECTIONS ?? 50),
      warmUpSeconds: Number(process.env.BENCH_WARM_UP_SECONDS ?? WARM_UP_SECONDS),
      postgresCpuSeconds: () => pg.cpuSeconds(),
    });
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await pg.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}

