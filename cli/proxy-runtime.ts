// Everything one proxy process needs, composed: the policy (lists, rules,
// identities, kept current by NOTIFY), identification, the access-log writer
// (on a thread of its own) with its own spool folder, safeguarding alert
// detection, and the listener.
// `portcullis start` runs one of these in its own process when PROXY_WORKERS
// is 1, and one per cluster worker otherwise (cli/cluster.ts).
import type { AddressInfo } from 'node:net';
import { AccessLogThread } from '../access-log/thread.js';
import type { Config } from '../core/config.js';
import { connectionStringOf, type Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import type { CategoryLookup } from '../core/policy/types.js';
import { createProxyPolicy } from '../core/policy/proxy-policy.js';
import { PolicyStore } from '../core/policy/store.js';
import type { Resolve } from '../proxy/destination-guard.js';
import { createIdentifier } from '../proxy/identify.js';
import { createProxyServer } from '../proxy/server.js';
import type { AccessRecorder } from '../proxy/types.js';
import { AlertDetector } from '../safeguarding/alert-detector.js';
import { AlertRecorder, fanOutRecorder } from '../safeguarding/alert-recorder.js';
import { SearchTermLoader, type SearchTermSource } from '../safeguarding/search-term-loader.js';

export interface ProxyRuntimeOptions {
  config: Config;
  pool: Pool;
  schoolId: number;
  log: Logger;
  /** This process's spool folder; one writer per folder. */
  spoolDir: string;
  buildLists: () => Promise<CategoryLookup>;
  /** Which delivery channels are configured: new alerts start as pending on them. */
  delivery: { webhook: boolean; email: boolean };
  /** Called after an alert is stored, so that delivery can start at once. */
  onAlertRaised: () => void;
  /** Name resolution for destinations; the system resolver by default (tests resolve names of their own). */
  resolve?: Resolve;
  /** Tests shorten these two waits so that changes and log rows show within milliseconds. */
  policyDebounceMs?: number;
  logFlushIntervalMs?: number;
  /**
   * Wraps the recorder every request's event goes to (the access log and
   * alert detection): the proxy-logging bench switches logging on and off
   * around exactly what Portcullis runs.
   */
  wrapRecorder?: (recorder: AccessRecorder) => AccessRecorder;
}

export interface ProxyRuntime {
  address: AddressInfo;
  policy: PolicyStore;
  accessLog: AccessLogThread;
  /** The safeguarding search terms in service. */
  searchTerms: SearchTermSource;
  /** Stops accepting, lets requests in flight finish (briefly), then flushes the log. */
  stop(): Promise<void>;
}

export async function startProxyRuntime(options: ProxyRuntimeOptions): Promise<ProxyRuntime> {
  const { config, pool, schoolId, log } = options;
  const closers: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const close of closers.reverse()) {
      await close().catch((err: unknown) => log.error({ err }, 'error during shutdown'));
    }
  };
  try {
    const policy = await PolicyStore.start({ pool, schoolId, log, buildLists: options.buildLists, debounceMs: options.policyDebounceMs });
    closers.push(() => policy.close());
    const identifier = createIdentifier({ pool, mode: config.proxyAuth, snapshotSource: () => policy.current, log });
    const accessLog = await AccessLogThread.start({
      connectionString: connectionStringOf(pool),
      log,
      writer: { spoolDir: options.spoolDir, flushIntervalMs: options.logFlushIntervalMs },
    });
    closers.push(() => accessLog.close());
    // The DSL's search terms reload with the policy (their table notifies on its channel).
    const searchTerms = await SearchTermLoader.start({ pool, schoolId, log, changes: policy });
    closers.push(() => searchTerms.close());
    // Alerts are detected beside the log writer, from the same events, off the request path.
    const alerts = new AlertRecorder({
      pool,
      schoolId,
      detector: new AlertDetector(
        {
          repeatedBlocks: config.alertRepeatedBlocks,
          repeatedBlocksWindowMs: config.alertRepeatedBlocksWindowMinutes * 60_000,
        },
        searchTerms,
      ),
      log: log.child({ component: 'alerts' }),
      webhook: options.delivery.webhook,
      email: options.delivery.email,
      onRaised: options.onAlertRaised,
    });
    closers.push(() => alerts.close());
    const recorder = fanOutRecorder([accessLog, alerts], log);
    const proxy = createProxyServer({
      config,
      policy: createProxyPolicy({ store: policy, identifier }),
      recorder: options.wrapRecorder?.(recorder) ?? recorder,
      log: log.child({ component: 'proxy' }),
      resolve: options.resolve,
    });
    const address = await proxy.listen();
    closers.push(() => proxy.close());
    return { address, policy, accessLog, searchTerms, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
