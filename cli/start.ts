// `portcullis start`: the composition root. Opens the database (embedded by
// default), prepares it, loads the lists and policy, and serves the proxy and
// the admin API until SIGINT/SIGTERM, then shuts everything down in order.
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startAccessLogMaintenance } from '../access-log/maintenance.js';
import { AccessLogWriter } from '../access-log/writer.js';
import { buildAdminApp } from '../admin-api/app.js';
import { importBlocklists } from '../blocklists/import.js';
import { loadListEntries } from '../blocklists/load.js';
import { MatcherBuilder } from '../blocklists/matcher.js';
import { ensureFirstAdmin } from '../core/admin-account.js';
import { prepareDatabase } from '../core/bootstrap.js';
import type { Config } from '../core/config.js';
import { openDatabase } from '../core/database.js';
import type { Pool } from '../core/db.js';
import { createLogger, type Logger } from '../core/logger.js';
import { renderPrometheus } from '../core/metrics.js';
import { defaultListsFile } from '../core/paths.js';
import type { CategoryLookup } from '../core/policy/types.js';
import { createProxyPolicy } from '../core/policy/proxy-policy.js';
import { PolicyStore } from '../core/policy/store.js';
import { createIdentifier } from '../proxy/identify.js';
import { createProxyServer } from '../proxy/server.js';
import { formatAuthority } from '../proxy/request-target.js';
import { AlertDetector } from '../safeguarding/alert-detector.js';
import { AlertRecorder, fanOutRecorder } from '../safeguarding/alert-recorder.js';
import { EmailDelivery } from '../safeguarding/email-delivery.js';
import { WebhookDelivery } from '../safeguarding/webhook-delivery.js';

export interface RunningPortcullis {
  proxyAddress: AddressInfo;
  adminAddress: AddressInfo;
  pool: Pool;
  policy: PolicyStore;
  accessLog: AccessLogWriter;
  stop(): Promise<void>;
}

async function buildLists(pool: Pool, log: Logger): Promise<CategoryLookup> {
  const started = Date.now();
  const builder = new MatcherBuilder();
  await loadListEntries(pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
  const matcher = builder.build();
  log.info(
    { domains: matcher.domainCount, urls: matcher.urlCount, ms: Date.now() - started },
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

export async function startPortcullis(config: Config, log: Logger): Promise<RunningPortcullis> {
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

    const policy = await PolicyStore.start({ pool: db.pool, schoolId, log, buildLists: () => buildLists(db.pool, log) });
    closers.push(() => policy.close());
    const identifier = createIdentifier({
      pool: db.pool,
      mode: config.proxyAuth,
      snapshotSource: () => policy.current,
      log,
    });
    const accessLog = new AccessLogWriter({ pool: db.pool, spoolDir: path.join(config.dataDir, 'spool'), log });
    await accessLog.start();
    closers.push(() => accessLog.close());
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
    // Alerts are detected beside the log writer, from the same events, off the request path.
    const alerts = new AlertRecorder({
      pool: db.pool,
      schoolId,
      detector: new AlertDetector({
        repeatedBlocks: config.alertRepeatedBlocks,
        repeatedBlocksWindowMs: config.alertRepeatedBlocksWindowMinutes * 60_000,
      }),
      log: log.child({ component: 'alerts' }),
      webhook: webhook !== undefined,
      email: email !== undefined,
      onRaised: () => {
        webhook?.poke();
        email?.poke();
      },
    });
    closers.push(() => alerts.close());
    const maintenance = startAccessLogMaintenance({ pool: db.pool, log, retentionDays: config.logRetentionDays });
    closers.push(async () => maintenance.stop());
    const proxy = createProxyServer({
      config,
      policy: createProxyPolicy({ store: policy, identifier }),
      recorder: fanOutRecorder([accessLog, alerts], log),
      log: log.child({ component: 'proxy' }),
    });
    const proxyAddress = await proxy.listen();
    closers.push(() => proxy.close());

    const app = await buildAdminApp({
      config,
      pool: db.pool,
      log,
      policyStatus: () => policy.status(),
      policySnapshot: () => policy.current,
      metrics: () => renderPrometheus(accessLog.metrics()),
    });
    await app.listen({ host: config.adminHost, port: config.adminPort });
    closers.push(() => app.close());
    const adminAddress = app.server.address() as AddressInfo;

    log.info(
      { proxy: `${proxyAddress.address}:${proxyAddress.port}`, admin: `${adminAddress.address}:${adminAddress.port}` },
      'Portcullis is running',
    );
    return { proxyAddress, adminAddress, pool: db.pool, policy, accessLog, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export async function startCommand(config: Config): Promise<number> {
  const log = createLogger(config.logLevel);
  const running = await startPortcullis(config, log);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    process.once('SIGHUP', onSignal);
  });
  await running.stop();
  log.info('stopped');
  return 0;
}
