// The proxy under test, in its own process (forked by bench/proxy-logging.ts
// so that the load generator does not share its event loop). It runs the
// proxy as `portcullis start` composes it (startProxyRuntime: the real
// policy compiled from the bench database with the UT1 lists, identification,
// the access-log writer and safeguarding alert detection), with one switch
// around the recorder every event goes to:
//   logging on:  events go on to the access log and alert detection;
//   logging off: events are counted and discarded.
// Commands arrive over IPC; each is answered with the process's CPU time
// and tallies of what was recorded, so the parent can check every phase.
import path from 'node:path';
import type { AccessLogCounters } from '../access-log/writer.js';
import { loadListEntries } from '../blocklists/load.js';
import { MatcherBuilder } from '../blocklists/matcher.js';
import { startProxyRuntime } from '../cli/proxy-runtime.js';
import { loadConfig } from '../core/config.js';
import { createPool } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import type { AccessEvent, AccessRecorder } from '../proxy/types.js';
import { processCpuSeconds } from './common.js';

export type ProxyCommand = { type: 'logging'; on: boolean } | { type: 'stats' } | { type: 'flush'; timeoutMs: number } | { type: 'stop' };

export interface Tally {
  /** Events handed to the access log (logging on). */
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
  writer: AccessLogCounters;
  queueDepth: number;
}

const expectedHost = process.env.BENCH_ORIGIN_HOST ?? 'origin.test';

class SwitchableRecorder implements AccessRecorder {
  on = false;
  /** Counted separately: the policy sanity check blocks a listed host on purpose. */
  expectUnexpected = false;
  readonly tally: Tally = { logged: 0, discarded: 0, answered: 0, abandoned: 0, unexpected: 0, lastUnexpected: null };
  constructor(private readonly production: AccessRecorder) {}
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
      this.production.record(event);
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
  let recorder: SwitchableRecorder | undefined;
  // Every name under .test is this machine; nothing else resolves, so no request can leave it.
  const resolve = async (host: string): Promise<string[]> => {
    if (host.endsWith('.test')) return ['127.0.0.1'];
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  };
  const runtime = await startProxyRuntime({
    config,
    pool,
    schoolId,
    log,
    spoolDir: path.join(process.env.BENCH_SPOOL_DIR!, 'spool'),
    buildLists: async () => {
      const builder = new MatcherBuilder();
      await loadListEntries(pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
      return builder.build();
    },
    delivery: { webhook: false, email: false },
    onAlertRaised: () => undefined,
    resolve,
    wrapRecorder: (production) => (recorder = new SwitchableRecorder(production)),
  });
  if (recorder === undefined) throw new Error('the proxy runtime did not take the bench recorder');
  const switchable = recorder;
  const status = runtime.policy.status();

  // The CPU time is read first: asking the writer's thread for its counters takes a moment.
  const stats = async (): Promise<ProxyStats> => {
    const cpuSeconds = processCpuSeconds();
    const tally = { ...switchable.tally };
    const writer = await runtime.accessLog.status();
    return { type: 'stats', cpuSeconds, tally, writer: writer.counters, queueDepth: writer.queueDepth };
  };

  process.on('message', (command: ProxyCommand | { type: 'sanity'; on: boolean }) => {
    void (async () => {
      switch (command.type) {
        case 'logging':
          switchable.on = command.on;
          send(await stats());
          break;
        case 'sanity':
          switchable.expectUnexpected = command.on;
          send(await stats());
          break;
        case 'stats':
          send(await stats());
          break;
        case 'flush': {
          // Logged events are in Postgres once the writer has written as many as it was given.
          const deadline = Date.now() + command.timeoutMs;
          while ((await runtime.accessLog.status()).counters.written < switchable.tally.logged && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 20));
          }
          send(await stats());
          break;
        }
        case 'stop':
          await runtime.stop();
          await pool.end();
          send({ ...(await stats()), type: 'stopped' });
          process.disconnect();
          break;
      }
    })().catch((err: unknown) => send({ type: 'error', message: String((err as Error)?.stack ?? err) }));
  });
  send({ type: 'ready', port: runtime.address.port, domains: status.domains, urls: status.urls, groups: status.groups });
}

main().catch((err: unknown) => {
  process.send?.({ type: 'error', message: String((err as Error)?.stack ?? err) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100).unref();
});
