// TEST ONLY. The real wiring of cli/start.ts on loopback, for the
// safeguarding tests: the admin API listening on a port, the proxy runtime
// (cli/proxy-runtime.ts: policy, sign-in required, access-log writer, alert
// detection) resolving test names to loopback, and
// (optionally) webhook delivery to a given URL and email delivery through a
// given SMTP server.
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadListEntries } from '../../blocklists/load.js';
import { MatcherBuilder } from '../../blocklists/matcher.js';
import { startProxyRuntime } from '../../cli/proxy-runtime.js';
import { createLogger } from '../../core/logger.js';
import type { PolicyStore } from '../../core/policy/store.js';
import type { SearchTermSource } from '../../safeguarding/search-term-loader.js';
import type { AlertEmailConfig } from '../../core/config.js';
import { EmailDelivery } from '../../safeguarding/email-delivery.js';
import { WebhookDelivery } from '../../safeguarding/webhook-delivery.js';
import { PASSWORD, startAdminHarness, type AdminHarness } from './admin-app.js';
import { untilPolicy } from './policy-reload.js';
import { resolveTestNames, testConfig } from './proxy-harness.js';

export interface SafeguardingStack {
  h: AdminHarness;
  adminBaseUrl: string;
  proxyPort: number;
  store: PolicyStore;
  /** The running proxy's search terms. */
  searchTerms: SearchTermSource;
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
  const spoolDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-safeguarding-'));
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
  const runtime = await startProxyRuntime({
    config: testConfig({ adminPort, publicHost: '127.0.0.1', proxyAuth: 'required', alertRepeatedBlocks: options.repeatedBlocks ?? 3, alertRepeatedBlocksWindowMinutes: 1 }),
    pool: h.db.pool,
    schoolId: h.schoolId,
    log,
    spoolDir,
    // On the main thread: under vitest a worker would first have to transpile the sources.
    buildLists: async () => {
      const builder = new MatcherBuilder();
      await loadListEntries(h.db.pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
      return builder.build();
    },
    delivery: { webhook: webhook !== undefined, email: email !== undefined },
    onAlertRaised: () => {
      webhook?.poke();
      email?.poke();
    },
    resolve: resolveTestNames,
    policyDebounceMs: 10,
    logFlushIntervalMs: 10,
  });
  const store = runtime.policy;

  return {
    h,
    adminBaseUrl: `http://127.0.0.1:${adminPort}`,
    proxyPort: runtime.address.port,
    store,
    searchTerms: runtime.searchTerms,
    proxyAuth: (username) => `Basic ${Buffer.from(`${username}:${PASSWORD}`).toString('base64')}`,
    async listHosts(category, hosts) {
      await h.db.pool.query(
        `INSERT INTO list_entries (category_id, kind, value, source)
         SELECT c.id, 'domain', unnest($2::text[]), 'local' FROM categories c WHERE c.key = $1`,
        [category, hosts],
      );
      await untilPolicy(store, (snapshot) => hosts.every((host) => snapshot.lists.matchHost(host).length > 0), `${hosts.join(', ')} listed`);
    },
    async close() {
      await runtime.stop();
      await webhook?.stop();
      await email?.stop();
      await h.close();
      await rm(spoolDir, { recursive: true, force: true });
    },
  };
}
