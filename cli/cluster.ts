// PROXY_WORKERS > 1: the proxy runs in that many processes (node:cluster),
// so that request handling uses every core. The primary keeps the database,
// the admin API, maintenance and alert delivery; each worker runs a whole
// proxy runtime (cli/proxy-runtime.ts) with its own policy snapshot, access-
// log writer and spool folder, and all of them accept on PROXY_PORT.
//
// The primary tells workers to stop, and asks them for their counters and for
// "why is this blocked?" answers, over the cluster IPC channel; workers report
// their policy status there after each reload. So the primary holds no copy
// of the compiled lists (with millions of domains, a large one). Workers
// ignore SIGINT/SIGTERM (a terminal's Ctrl-C reaches the whole process group)
// and stop when the primary says so, or when the primary has gone. A worker
// that dies is replaced after a pause; one that fails before it is ready
// fails the start, so that a bad setting is reported rather than retried for
// ever.
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { workerSpoolDir } from '../access-log/spool-folders.js';
import type { Config } from '../core/config.js';
import { createPool, type Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import type { MetricSample } from '../core/metrics.js';
import { explain, type ExplainOutcome, type Explainer, type WhyQuestion } from '../core/policy/explain.js';
import type { PolicyStatus } from '../core/policy/store.js';
import type { CategoryLookup } from '../core/policy/types.js';
import { startProxyRuntime, type ProxyRuntime } from './proxy-runtime.js';

/** What the primary asks a worker, and what each question is answered with. */
type Question = { type: 'metrics' } | { type: 'explain'; question: WhyQuestion };
interface Answers {
  metrics: MetricSample[];
  explain: ExplainOutcome;
}
type ToWorker = (Question & { id: number }) | { type: 'shutdown' };
type FromWorker =
  | { type: 'ready'; address: AddressInfo }
  | { type: 'answer'; id: number; answer: Answers[keyof Answers] }
  /** Sent before 'ready' and after every policy reload. */
  | { type: 'policy'; status: PolicyStatus }
  | { type: 'alert-raised' };

const WORKER_INDEX = 'PORTCULLIS_WORKER_INDEX';
const WORKER_DATABASE_URL = 'PORTCULLIS_WORKER_DATABASE_URL';
const RESPAWN_DELAY_MS = 1_000;
const ANSWER_TIMEOUT_MS = 2_000;
const STOP_TIMEOUT_MS = 15_000;

export interface ProxyWorkers {
  address: AddressInfo;
  /** Every worker's counters, each labelled with its worker. */
  metrics(): Promise<MetricSample[]>;
  /** "Why is this blocked?" answered by a worker on the policy it has in service; rejects when none answers. */
  explain: Explainer;
  /** The oldest policy in service among the workers; undefined while none has one. */
  policyStatus(): PolicyStatus | undefined;
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

/**
 * Workers accept connections themselves (SCHED_NONE) instead of being handed
 * each one by the primary over IPC (Node's default round robin): a browser
 * opens a connection, and a CONNECT, per HTTPS site, so setting them up is
 * the proxy's commonest work after forwarding. In the bench two workers set
 * up 1,452 and 1,554 CONNECT tunnels/s this way against 1,274 and 1,209
 * through the primary; in an ad-hoc run they split 50 keep-alive
 * connections' requests 56/44 (55/45 through the primary).
 * NODE_CLUSTER_SCHED_POLICY, where set, still decides.
 */
function letWorkersAccept(): void {
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
}

/** Primary side: forks the workers and resolves once every one is accepting connections. */
export function startProxyWorkers(options: ProxyWorkersOptions): Promise<ProxyWorkers> {
  const { count, log } = options;
  letWorkersAccept();
  const workers = new Map<number, Worker>();
  const pendingAnswers = new Map<number, (answer: Answers[keyof Answers]) => void>();
  const policies = new Map<number, PolicyStatus>();
  let nextQuestionId = 1;
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
              resolveStarted({ address, metrics, explain: explainOnWorker, policyStatus, stop });
            }
            break;
          case 'answer':
            pendingAnswers.get(message.id)?.(message.answer);
            break;
          case 'policy':
            policies.set(index, message.status);
            break;
          case 'alert-raised':
            options.onAlertRaised();
            break;
        }
      });
      worker.on('exit', (code, signal) => {
        if (workers.get(index) === worker) workers.delete(index);
        ready.delete(index);
        policies.delete(index);
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

    /** One worker's answer; undefined if it does not answer in time (restarting, or stuck). */
    function ask<K extends keyof Answers>(worker: Worker, question: Question & { type: K }): Promise<Answers[K] | undefined> {
      return new Promise((resolve) => {
        const id = nextQuestionId++;
        const timer = setTimeout(() => {
          pendingAnswers.delete(id);
          resolve(undefined);
        }, ANSWER_TIMEOUT_MS);
        pendingAnswers.set(id, (answer) => {
          clearTimeout(timer);
          pendingAnswers.delete(id);
          resolve(answer as Answers[K]);
        });
        tell(worker, { ...question, id });
      });
    }

    async function metrics(): Promise<MetricSample[]> {
      const answers = [...workers.entries()]
        .filter(([, worker]) => worker.isConnected())
        // A worker that does not answer is left out rather than hang the scrape.
        .map(async ([index, worker]) => labelled((await ask(worker, { type: 'metrics' })) ?? [], index));
      return (await Promise.all(answers)).flat();
    }

    async function explainOnWorker(question: WhyQuestion): Promise<ExplainOutcome> {
      const worker = [...ready].map((index) => workers.get(index)).find((candidate) => candidate?.isConnected());
      const outcome = worker && (await ask(worker, { type: 'explain', question }));
      if (outcome === undefined) throw new Error(`no proxy worker answered within ${ANSWER_TIMEOUT_MS / 1000} s`);
      return outcome;
    }

    function policyStatus(): PolicyStatus | undefined {
      let oldest: PolicyStatus | undefined;
      for (const status of policies.values()) if (oldest === undefined || status.loadedAt < oldest.loadedAt) oldest = status;
      return oldest;
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
  const sendPolicyStatus = () => send({ type: 'policy', status: running.policy.status() });
  sendPolicyStatus();
  running.policy.onReload(sendPolicyStatus);
  send({ type: 'ready', address: running.address });

  await new Promise<void>((resolve) => {
    process.on('message', (message: ToWorker) => {
      switch (message.type) {
        case 'metrics':
          void running.accessLog.metrics().then((samples) => send({ type: 'answer', id: message.id, answer: samples }));
          break;
        case 'explain':
          // An admin's question must not take a proxy process down: unanswered, it gets the primary's 503.
          try {
            send({ type: 'answer', id: message.id, answer: explain(running.policy.current, message.question) });
          } catch (err) {
            log.error({ err, question: message.question }, 'could not answer "why is this blocked?"');
          }
          break;
        case 'shutdown':
          resolve();
          break;
      }
    });
    // The primary has gone (killed, crashed): stop cleanly rather than serve unsupervised.
    process.once('disconnect', () => resolve());
  });
  await running.stop();
  await pool.end().catch(() => undefined);
  if (process.connected) process.disconnect();
  return 0;
}
