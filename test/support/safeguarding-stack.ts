// TEST ONLY. The real wiring of cli/start.ts on loopback, for the
// safeguarding tests: the admin API listening on a port, a proxy deciding
// with a running PolicyStore and identifying people by proxy sign-in, its
// events going to the real access-log writer and the alert recorder, and
// (optionally) webhook delivery to a given URL and email delivery through a
// given SMTP server.
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AccessLogWriter } from '../../access-log/writer.js';
import { loadListEntries } from '../../blocklists/load.js';
import { MatcherBuilder } from '../../blocklists/matcher.js';
import { createLogger } from '../../core/logger.js';
import { createProxyPolicy } from '../../core/policy/proxy-policy.js';
import { PolicyStore } from '../../core/policy/store.js';
import { createIdentifier } from '../../proxy/identify.js';
import { createProxyServer, type ProxyServer } from '../../proxy/server.js';
import { AlertDetector } from '../../safeguarding/alert-detector.js';
import { AlertRecorder, fanOutRecorder } from '../../safeguarding/alert-recorder.js';
import { SearchTermLoader } from '../../safeguarding/search-term-loader.js';
import type { AlertEmailConfig } from '../../core/config.js';
import { EmailDelivery } from '../../safeguarding/email-delivery.js';
import { WebhookDelivery } from '../../safeguarding/webhook-delivery.js';
import { PASSWORD, startAdminHarness, type AdminHarness } from './admin-app.js';
import { resolveTestNames, testConfig } from './proxy-harness.js';

export interface SafeguardingStack {
  h: AdminHarness;
  adminBaseUrl: string;
  proxyPort: number;
  store: PolicyStore;
  /** The running proxy's search terms, reloaded as cli/start.ts does. */
  searchTerms: SearchTermLoader;
  /** Basic credentials for the proxy, as a browser sends them. */
  proxyAuth(username: string): string;
  /** Adds list entries for a category (and reloads the policy). */
  listHosts(category: string, hosts: string[]): Promise<void>;
  close(): Promise<void>;
}

export interface StackOptions {
  webhookUrl?: URL;
  repeatedBlocks?: number;
  webhookMaxAttempts?: number;
  email?: AlertEmailConfig;
  emailMaxAttempts?: number;
}

export async function startSafeguardingStack(options: StackOptions = {}): Promise<SafeguardingStack> {
  const log = createLogger('silent');
  const h = await startAdminHarness();
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const adminPort = (h.app.server.address() as AddressInfo).port;
  const store = await PolicyStore.start({
    pool: h.db.pool,
    schoolId: h.schoolId,
    log,
    debounceMs: 10,
    buildLists: async () => {
      const builder = new MatcherBuilder();
      await loadListEntries(h.db.pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
      return builder.build();
    },
  });
  const spoolDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-safeguarding-'));
  const accessLog = new AccessLogWriter({ pool: h.db.pool, spoolDir, log, flushIntervalMs: 10 });
  await accessLog.start();
  // Both channels retry on a fast clock so tests see several attempts in a second or two.
  const delivery = {
    pool: h.db.pool,
    log,
    adminBaseUrl: `http://127.0.0.1:${adminPort}`,
    baseDelayMs: 100,
    maxDelayMs: 400,
    timeoutMs: 2_000,
    pollMs: 50,
  };
  const webhook = options.webhookUrl
    ? new WebhookDelivery({ ...delivery, url: options.webhookUrl, maxAttempts: options.webhookMaxAttempts ?? 5 })
    : undefined;
  webhook?.start();
  const email = options.email
    ? new EmailDelivery({ ...delivery, email: options.email, maxAttempts: options.emailMaxAttempts ?? 5 })
    : undefined;
  email?.start();
  const searchTerms = await SearchTermLoader.start({ pool: h.db.pool, schoolId: h.schoolId, log, changes: store });
  const alerts = new AlertRecorder({
    pool: h.db.pool,
    schoolId: h.schoolId,
    detector: new AlertDetector({ repeatedBlocks: options.repeatedBlocks ?? 3, repeatedBlocksWindowMs: 60_000 }, searchTerms),
    log,
    webhook: webhook !== undefined,
    email: email !== undefined,
    onRaised: () => {
      webhook?.poke();
      email?.poke();
    },
  });
  const config = testConfig({ adminPort, publicHost: '127.0.0.1' });
  const identifier = createIdentifier({ pool: h.db.pool, mode: 'required', snapshotSource: () => store.current, log });
  const proxy: ProxyServer = createProxyServer({
    config,
    policy: createProxyPolicy({ store, identifier }),
    recorder: fanOutRecorder([accessLog, alerts], log),
    log,
    resolve: resolveTestNames,
  });
  const { port: proxyPort } = await proxy.listen();

  return {
    h,
    adminBaseUrl: `http://127.0.0.1:${adminPort}`,
    proxyPort,
    store,
    searchTerms,
    proxyAuth: (username) => `Basic ${Buffer.from(`${username}:${PASSWORD}`).toString('base64')}`,
    async listHosts(category, hosts) {
      const reloaded = store.nextReload();
      await h.db.pool.query(
        `INSERT INTO list_entries (category_id, kind, value, source)
         SELECT c.id, 'domain', unnest($2::text[]), 'local' FROM categories c WHERE c.key = $1`,
        [category, hosts],
      );
      await reloaded;
    },
    async close() {
      await proxy.close();
      await alerts.close();
      await webhook?.stop();
      await email?.stop();
      await accessLog.close();
      await searchTerms.close();
      await store.close();
      await h.close();
      await rm(spoolDir, { recursive: true, force: true });
    },
  };
}
