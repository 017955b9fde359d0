// `portcullis start`: the composition root. Opens the database (embedded by
// default), prepares it, loads the lists and policy, and serves the proxy and
// the admin API until SIGINT/SIGTERM, then shuts everything down in order.
import cluster from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { startAccessLogMaintenance } from '../access-log/maintenance.js';
import { gatherStraySpools, spoolRoot } from '../access-log/spool-folders.js';
import type { AccessLogThread } from '../access-log/thread.js';
import { buildAdminApp } from '../admin-api/app.js';
import { buildMatcherInWorker } from '../blocklists/build-matcher.js';
import { importBlocklists } from '../blocklists/import.js';
import { ensureFirstAdmin } from '../core/admin-account.js';
import { missingAllocatorSettings } from '../core/allocator-settings.js';
import { prepareDatabase } from '../core/bootstrap.js';
import type { Config } from '../core/config.js';
import { openDatabase } from '../core/database.js';
import { connectionStringOf, type Pool } from '../core/db.js';
import { createLogger, type Logger } from '../core/logger.js';
import { renderPrometheus, type MetricSample } from '../core/metrics.js';
import { defaultListsFile } from '../core/paths.js';
import type { CategoryLookup } from '../core/policy/types.js';
import { explainerOn, type Explainer } from '../core/policy/explain.js';
import type { PolicyStatus, PolicyStore } from '../core/policy/store.js';
import { formatAuthority } from '../proxy/request-target.js';
import { EmailDelivery } from '../safeguarding/email-delivery.js';
import { WebhookDelivery } from '../safeguarding/webhook-delivery.js';
import { runProxyWorker, startProxyWorkers } from './cluster.js';
import { startProxyRuntime } from './proxy-runtime.js';

export interface RunningPortcullis {
  proxyAddress: AddressInfo;
  adminAddress: AddressInfo;
  pool: Pool;
  policy: PolicyStore;
  accessLog: AccessLogThread;
  stop(): Promise<void>;
}

/** Compiles the lists in a worker thread with its own connection, so that a reload never stalls requests. */
async function buildLists(pool: Pool, log: Logger): Promise<CategoryLookup> {
  const started = Date.now();
  const { matcher, workerMs } = await buildMatcherInWorker(connectionStringOf(pool));
  log.info(
    { domains: matcher.domainCount, urls: matcher.urlCount, ms: Date.now() - started, workerMs },
    'category lists compiled',
  );
  return matcher;
}

/** On first run the lists table is empty: load the lists that ship with Portcullis. */
async function importDefaultListsOnce(pool: Pool, log: Logger): Promise<void> {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM list_imports');
  if (Number(rows[0]?.n) > 0) return;
  log.info({ source: defaultListsFile }, 'first run: importing the bundled UT1 category lists');
  const summary = await importBlocklists(pool, defaultListsFile);
  log.info({ domains: summary.domains, urls: summary.urls, ms: summary.durationMs }, 'bundled lists imported');
}

/** Everything in this process (tests, and PROXY_WORKERS=1). */
export function startPortcullis(config: Config, log: Logger): Promise<RunningPortcullis>;
/** The proxy in config.proxyWorkers cluster workers: only for the real command, never inside a test runner. */
export function startPortcullis(config: Config, log: Logger, options: { cluster: true }): Promise<Omit<RunningPortcullis, 'accessLog' | 'policy'>>;
export async function startPortcullis(
  config: Config,
  log: Logger,
  options: { cluster?: boolean } = {},
): Promise<RunningPortcullis | Omit<RunningPortcullis, 'accessLog' | 'policy'>> {
  const db = await openDatabase(config, log);
  const closers: Array<() => Promise<void>> = [() => db.close()];
  const stopAll = async () => {
    for (const close of closers.reverse()) {
      await close().catch((err: unknown) => log.error({ err }, 'error during shutdown'));
    }
  };
  try {
    const schoolId = await prepareDatabase(db.pool, config, log);
    const admin = await ensureFirstAdmin(db.pool, schoolId, config.adminPassword);
    if (admin.generatedPassword) {
      // Printed once, on the console only: it is not stored anywhere readable.
      process.stdout.write(
        `\nFirst admin account created: username "${admin.username}", password "${admin.generatedPassword}"\n` +
          'Keep it safe; it will not be shown again.\n\n',
      );
    }
    await importDefaultListsOnce(db.pool, log);

    const adminBaseUrl = `http://${formatAuthority(config.publicHost, config.adminPort, 80)}`;
    const webhook =
      config.alertWebhookUrl === undefined
        ? undefined
        : new WebhookDelivery({
            pool: db.pool,
            url: config.alertWebhookUrl,
            log: log.child({ component: 'alert-webhook' }),
            maxAttempts: config.alertWebhookMaxAttempts,
            adminBaseUrl,
          });
    if (webhook) {
      webhook.start();
      closers.push(() => webhook.stop());
    }
    const email =
      config.alertEmail === undefined
        ? undefined
        : new EmailDelivery({
            pool: db.pool,
            email: config.alertEmail,
            log: log.child({ component: 'alert-email' }),
            maxAttempts: config.alertEmailMaxAttempts,
            adminBaseUrl,
          });
    if (email) {
      email.start();
      closers.push(() => email.stop());
    }
    const maintenance = startAccessLogMaintenance({ pool: db.pool, log, retentionDays: config.logRetentionDays });
    closers.push(() => maintenance.stop());
    const onAlertRaised = (): void => {
      webhook?.poke();
      email?.poke();
    };
    const delivery = { webhook: webhook !== undefined, email: email !== undefined };
    await gatherStraySpools(config.dataDir, options.cluster ? config.proxyWorkers : 1);
    let proxyAddress: AddressInfo;
    let inProcess: Pick<RunningPortcullis, 'policy' | 'accessLog'> | undefined;
    let policyStatus: () => PolicyStatus | undefined;
    let explainOnProxy: Explainer;
    let metrics: () => Promise<MetricSample[]>;
    if (options.cluster) {
      const workers = await startProxyWorkers({ count: config.proxyWorkers, databaseUrl: db.connectionString, log, onAlertRaised });
      closers.push(() => workers.stop());
      proxyAddress = workers.address;
      metrics = () => workers.metrics();
      policyStatus = () => workers.policyStatus();
      explainOnProxy = workers.explain;
    } else {
      const runtime = await startProxyRuntime({
        config,
        pool: db.pool,
        schoolId,
        log,
        spoolDir: spoolRoot(config.dataDir),
        buildLists: () => buildLists(db.pool, log),
        delivery,
        onAlertRaised,
      });
      closers.push(() => runtime.stop());
      proxyAddress = runtime.address;
      inProcess = { policy: runtime.policy, accessLog: runtime.accessLog };
      policyStatus = () => runtime.policy.status();
      explainOnProxy = explainerOn(() => runtime.policy.current);
      metrics = () => runtime.accessLog.metrics();
    }

    const app = await buildAdminApp({
      config,
      pool: db.pool,
      log,
      policyStatus,
      explainOnProxy,
      metrics: async () => renderPrometheus(await metrics()),
    });
    await app.listen({ host: config.adminHost, port: config.adminPort });
    closers.push(() => app.close());
    const adminAddress = app.server.address() as AddressInfo;

    log.info(
      { proxy: `${proxyAddress.address}:${proxyAddress.port}`, admin: `${adminAddress.address}:${adminAddress.port}` },
      'Portcullis is running',
    );
    return { proxyAddress, adminAddress, pool: db.pool, ...inProcess, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export async function startCommand(config: Config): Promise<number> {
  const log = createLogger(config.logLevel);
  if (cluster.isWorker) return runProxyWorker({ config, log, buildLists });
  const missing = missingAllocatorSettings(process.env);
  if (missing.length > 0) {
    log.warn(
      { missing },
      `start Portcullis with ${missing.join(' ')} in its environment, as npm start and the Docker image do: without it, memory freed under load stays with the process`,
    );
  }
  const running = config.proxyWorkers > 1 ? await startPortcullis(config, log, { cluster: true }) : await startPortcullis(config, log);
  await new Promise<void>((resolve) => {
    let stopping = false;
    // A service manager may signal every process of the service at once, and so this one more
    // than once: a repeat must not kill the process before the access log's last flush.
    const onSignal = (signal: string) => {
      if (stopping) {
        log.info({ signal }, 'already shutting down');
        return;
      }
      stopping = true;
      log.info({ signal }, 'shutting down');
      resolve();
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  });
  await running.stop();
  log.info('stopped');
  return 0;
}
