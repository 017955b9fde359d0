// PROXY_WORKERS > 1: the proxy runs in that many processes (node:cluster),
// so that request handling uses every core. The primary keeps the database,
// the admin API, maintenance and alert delivery; each worker runs a whole
// proxy runtime (cli/proxy-runtime.ts) with its own policy snapshot, access-
// log writer and spool folder, and all of them accept on PROXY_PORT.
//
// The primary tells workers to stop and asks them for their counters over the
// cluster IPC channel. Workers ignore SIGINT/SIGTERM (a terminal's Ctrl-C
// reaches the whole process group) and stop when the primary says so, or when
// the primary has gone. A worker that dies is replaced after a pause; one that
// fails before it is ready fails the start, so that a bad setting is reported
// rather than retried for ever.
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { workerSpoolDir } from '../access-log/spool-folders.js';
import type { Config } from '../core/config.js';
import { createPool, type Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import type { MetricSample } from '../core/metrics.js';
import type { CategoryLookup } from '../core/policy/types.js';
import { startProxyRuntime, type ProxyRuntime } from './proxy-runtime.js';

type ToWorker = { type: 'metrics'; id: number } | { type: 'shutdown' };
type FromWorker =
  | { type: 'ready'; address: AddressInfo }
  | { type: 'metrics'; id: number; samples: MetricSample[] }
  | { type: 'alert-raised' };

const WORKER_INDEX = 'PORTCULLIS_WORKER_INDEX';
const WORKER_DATABASE_URL = 'PORTCULLIS_WORKER_DATABASE_URL';
const RESPAWN_DELAY_MS = 1_000;
const METRICS_TIMEOUT_MS = 2_000;
const STOP_TIMEOUT_MS = 15_000;

export interface ProxyWorkers {
  address: AddressInfo;
  /** Every worker's counters, each labelled with its worker. */
  metrics(): Promise<MetricSample[]>;
  stop(): Promise<void>;
}

export interface ProxyWorkersOptions {
  count: number;
  databaseUrl: string;
  log: Logger;
  /** A worker stored an alert: deliver it without waiting for the next poll. */
  onAlertRaised: () => void;
}

/** A worker whose channel has closed is on its way out; its 'exit' handler deals with it. */
function tell(worker: Worker, message: ToWorker): void {
  if (worker.isConnected()) worker.send(message);
}

/** One worker's samples, told apart from the others' by a worker label (as Prometheus expects of processes). */
function labelled(samples: MetricSample[], index: number): MetricSample[] {
  return samples.map((sample) => ({ ...sample, labels: { ...sample.labels, worker: String(index) } }));
}

/** Primary side: forks the workers and resolves once every one is accepting connections. */
export function startProxyWorkers(options: ProxyWorkersOptions): Promise<ProxyWorkers> {
  const { count, log } = options;
  const workers = new Map<number, Worker>();
  const pendingMetrics = new Map<number, (samples: MetricSample[]) => void>();
  let nextMetricsId = 1;
  let stopping = false;

  return new Promise((resolveStarted, rejectStarted) => {
    let started = false;
    let address: AddressInfo | undefined;
    const ready = new Set<number>();

    const fork = (index: number): void => {
      const worker = cluster.fork({ [WORKER_INDEX]: String(index), [WORKER_DATABASE_URL]: options.databaseUrl });
      workers.set(index, worker);
      worker.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'ready':
            address ??= message.address;
            ready.add(index);
            log.info({ worker: index, pid: worker.process.pid }, 'proxy worker ready');
            if (!started && ready.size === count) {
              started = true;
              resolveStarted({ address, metrics, stop });
            }
            break;
          case 'metrics':
            pendingMetrics.get(message.id)?.(message.samples);
            break;
          case 'alert-raised':
            options.onAlertRaised();
            break;
        }
      });
      worker.on('exit', (code, signal) => {
        if (workers.get(index) === worker) workers.delete(index);
        ready.delete(index);
        if (stopping) return;
        if (!started) {
          stopping = true;
          for (const other of workers.values()) tell(other, { type: 'shutdown' });
          rejectStarted(new Error(`proxy worker ${index} exited during start (code ${code}, signal ${signal}); see its log above`));
          return;
        }
        log.error({ worker: index, code, signal }, 'proxy worker died; starting a replacement');
        setTimeout(() => {
          if (!stopping) fork(index);
        }, RESPAWN_DELAY_MS).unref();
      });
    };

    async function metrics(): Promise<MetricSample[]> {
      const answers = [...workers.entries()].filter(([, worker]) => worker.isConnected()).map(
        ([index, worker]) =>
          new Promise<MetricSample[]>((resolve) => {
            const id = nextMetricsId++;
            const timer = setTimeout(() => {
              pendingMetrics.delete(id);
              resolve([]); // a worker that does not answer (restarting) is left out rather than hang the scrape
            }, METRICS_TIMEOUT_MS);
            pendingMetrics.set(id, (samples) => {
              clearTimeout(timer);
              pendingMetrics.delete(id);
              resolve(labelled(samples, index));
            });
            tell(worker, { type: 'metrics', id });
          }),
      );
      return (await Promise.all(answers)).flat();
    }

    async function stop(): Promise<void> {
      stopping = true;
      await Promise.all(
        [...workers.values()].map(
          (worker) =>
            new Promise<void>((resolve) => {
              if (worker.isDead()) return resolve();
              const timer = setTimeout(() => {
                log.error({ pid: worker.process.pid }, 'proxy worker did not stop in time; killing it');
                worker.process.kill('SIGKILL');
              }, STOP_TIMEOUT_MS);
              worker.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              tell(worker, { type: 'shutdown' });
            }),
        ),
      );
    }

    for (let index = 0; index < count; index++) fork(index);
  });
}

export interface ProxyWorkerContext {
  config: Config;
  log: Logger;
  buildLists: (pool: Pool, log: Logger) => Promise<CategoryLookup>;
}

/** Worker side: runs one proxy runtime until the primary says stop. Returns the exit code. */
export async function runProxyWorker(context: ProxyWorkerContext): Promise<number> {
  const index = Number(process.env[WORKER_INDEX]);
  const databaseUrl = process.env[WORKER_DATABASE_URL];
  const send = (message: FromWorker): void => {
    if (process.connected) process.send!(message);
  };
  const log = context.log.child({ worker: index });
  if (!Number.isInteger(index) || databaseUrl === undefined) throw new Error('a proxy worker needs its index and database from the primary');
  // The primary decides when to stop; these signals reach every process of a terminal's group.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);

  const pool = createPool(databaseUrl, log);
  let runtime: ProxyRuntime;
  try {
    const { rows } = await pool.query<{ id: number }>('SELECT id FROM schools ORDER BY id LIMIT 1');
    if (rows[0] === undefined) throw new Error('no school in the database');
    runtime = await startProxyRuntime({
      config: context.config,
      pool,
      schoolId: rows[0].id,
      log,
      spoolDir: workerSpoolDir(context.config.dataDir, index),
      buildLists: () => context.buildLists(pool, log),
      delivery: { webhook: context.config.alertWebhookUrl !== undefined, email: context.config.alertEmail !== undefined },
      onAlertRaised: () => send({ type: 'alert-raised' }),
    });
  } catch (err) {
    log.error({ err }, 'proxy worker could not start');
    await pool.end().catch(() => undefined);
    process.disconnect(); // the open IPC channel would keep this process alive
    return 1;
  }
  const running = runtime;
  send({ type: 'ready', address: running.address });

  await new Promise<void>((resolve) => {
    process.on('message', (message: ToWorker) => {
      if (message.type === 'metrics') {
        void running.accessLog.metrics().then((samples) => send({ type: 'metrics', id: message.id, samples }));
      }
      if (message.type === 'shutdown') resolve();
    });
    // The primary has gone (killed, crashed): stop cleanly rather than serve unsupervised.
    process.once('disconnect', () => resolve());
  });
  await running.stop();
  await pool.end().catch(() => undefined);
  if (process.connected) process.disconnect();
  return 0;
}
