// The proxy under test, in its own process (forked by bench/proxy-logging.ts
// so that the load generator does not share its event loop). It runs the
// real proxy (createProxyServer) with the real policy (PolicyStore compiled
// from the bench database: default policy, UT1 lists) and identification
// by client address, and one recorder switched between phases:
//   logging on:  events go to an AccessLogWriter writing to Postgres;
//   logging off: events are counted and discarded.
// Commands arrive over IPC; each is answered with the process's CPU time
// and tallies of what was recorded, so the parent can check every phase.
import path from 'node:path';
import { AccessLogWriter } from '../access-log/writer.js';
import { loadListEntries } from '../blocklists/load.js';
import { MatcherBuilder } from '../blocklists/matcher.js';
import { loadConfig } from '../core/config.js';
import { createPool } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { createProxyPolicy } from '../core/policy/proxy-policy.js';
import { PolicyStore } from '../core/policy/store.js';
import { createIdentifier } from '../proxy/identify.js';
import { createProxyServer } from '../proxy/server.js';
import type { AccessEvent, AccessRecorder } from '../proxy/types.js';
import { processCpuSeconds } from './common.js';

export type ProxyCommand = { type: 'logging'; on: boolean } | { type: 'stats' } | { type: 'flush'; timeoutMs: number } | { type: 'stop' };

export interface Tally {
  /** Events handed to the AccessLogWriter (logging on). */
  logged: number;
  /** Events discarded (logging off). */
  discarded: number;
  /** Allowed requests for the origin host answered 200. */
  answered: number;
  /** Allowed requests for the origin host whose client went away first (499): those in flight when the load generator stopped. */
  abandoned: number;
  /** Any other event: the bench is measuring the wrong thing. */
  unexpected: number;
  lastUnexpected: string | null;
}

export interface ProxyStats {
  type: 'stats';
  cpuSeconds: number;
  tally: Tally;
  writer: ReturnType<AccessLogWriter['counters']>;
  queueDepth: number;
}

const expectedHost = process.env.BENCH_ORIGIN_HOST ?? 'origin.test';

class SwitchableRecorder implements AccessRecorder {
  on = false;
  /** Counted separately: the policy sanity check blocks a listed host on purpose. */
  expectUnexpected = false;
  readonly tally: Tally = { logged: 0, discarded: 0, answered: 0, abandoned: 0, unexpected: 0, lastUnexpected: null };
  constructor(private readonly writer: AccessLogWriter) {}
  record(event: AccessEvent): void {
    const forOrigin = event.decision.action === 'allow' && event.host === expectedHost;
    if (forOrigin && event.status === 200) this.tally.answered++;
    else if (forOrigin && event.status === 499) this.tally.abandoned++;
    else if (!this.expectUnexpected) {
      this.tally.unexpected++;
      this.tally.lastUnexpected = `${event.host} ${event.status} ${event.decision.action} (${event.decision.rule})`;
    }
    if (this.on) {
      this.tally.logged++;
      this.writer.record(event);
    } else {
      this.tally.discarded++;
    }
  }
}

async function main(): Promise<void> {
  const send = (message: unknown): void => void process.send!(message);
  const connectionString = process.env.BENCH_DATABASE_URL!;
  const log = createLogger('warn');
  const config = loadConfig({
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: '0',
    ADMIN_PORT: '0',
    ALLOWED_CLIENTS: '127.0.0.0/8',
    ALLOWED_PRIVATE_DESTINATIONS: '127.0.0.0/8',
    LOG_LEVEL: 'warn',
  });
  const pool = createPool(connectionString, log);
  const { rows } = await pool.query<{ id: number }>('SELECT id FROM schools ORDER BY id LIMIT 1');
  const schoolId = rows[0].id;
  const policy = await PolicyStore.start({
    pool, schoolId, log,
    buildLists: async () => {
      const builder = new MatcherBuilder();
      await loadListEntries(pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
      return builder.build();
    },
  });
  const identifier = createIdentifier({ pool, mode: config.proxyAuth, snapshotSource: () => policy.current, log });
  const writer = new AccessLogWriter({ pool, spoolDir: path.join(process.env.BENCH_SPOOL_DIR!, 'spool'), log });
  await writer.start();
  const recorder = new SwitchableRecorder(writer);
  // Every name under .test is this machine; nothing else resolves, so no request can leave it.
  const resolve = async (host: string): Promise<string[]> => {
    if (host.endsWith('.test')) return ['127.0.0.1'];
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  };
  const proxy = createProxyServer({ config, policy: createProxyPolicy({ store: policy, identifier }), recorder, log, resolve });
  const address = await proxy.listen();
  const status = policy.status();

  const stats = (): ProxyStats => ({
    type: 'stats', cpuSeconds: processCpuSeconds(), tally: { ...recorder.tally }, writer: writer.counters(), queueDepth: writer.queueDepth,
  });

  process.on('message', (command: ProxyCommand | { type: 'sanity'; on: boolean }) => {
    void (async () => {
      switch (command.type) {
        case 'logging':
          recorder.on = command.on;
          send(stats());
          break;
        case 'sanity':
          recorder.expectUnexpected = command.on;
          send(stats());
          break;
        case 'stats':
          send(stats());
          break;
        case 'flush': {
          // Logged events are in Postgres once the writer has written as many as it was given.
          const deadline = Date.now() + command.timeoutMs;
          while (writer.counters().written < recorder.tally.logged && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          send(stats());
          break;
        }
        case 'stop':
          await proxy.close();
          await writer.close();
          await policy.close();
          await pool.end();
          send({ ...stats(), type: 'stopped' });
          process.disconnect();
          break;
      }
    })().catch((err: unknown) => send({ type: 'error', message: String((err as Error)?.stack ?? err) }));
  });
  send({ type: 'ready', port: address.port, domains: status.domains, urls: status.urls, groups: status.groups });
}

main().catch((err: unknown) => {
  process.send?.({ type: 'error', message: String((err as Error)?.stack ?? err) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
