// Hourly upkeep of the access log: partitions created ahead, expired ones
// dropped, the daily rollup refreshed for the days that may have changed
// (rollup.ts, daysToRollUp), and the indexes kept only on days that have
// closed (a person's history in time order, by host) built. Each step runs
// even if another fails; failures are logged and retried next hour.
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import { indexClosedPartitions, type BuiltIndex } from './closed-day-indexes.js';
import { dropExpiredPartitions, ensurePartitions, type DroppedPartition } from './partitions.js';
import { daysToRollUp, forgetOldRollupRecords, rollupDay } from './rollup.js';

export interface AccessLogMaintenanceOptions {
  pool: Pool;
  log: Logger;
  /** Config.logRetentionDays (LOG_RETENTION_DAYS). */
  retentionDays: number;
  /** Partitions are kept ready this many days ahead. */
  daysAhead?: number;
  intervalMs?: number;
  now?: () => Date;
  /** Aborting cancels the step in progress (a rollup, an index build: both are redone next run) and skips the rest. */
  signal?: AbortSignal;
}

export interface AccessLogMaintenanceReport {
  created: string[];
  dropped: DroppedPartition[];
  /** Days (YYYY-MM-DD) whose rollup was refreshed. */
  rolledUp: string[];
  /** The indexes built on closed days. */
  indexed: BuiltIndex[];
  /** One message per step that failed. */
  failures: string[];
}

export interface AccessLogMaintenance {
  /** Runs every step now (also what the timer does). */
  runOnce(): Promise<AccessLogMaintenanceReport>;
  /** Stops the timer, cancels the step in progress (see AccessLogMaintenanceOptions.signal) and waits for the run to end. */
  stop(): Promise<void>;
}

export async function runAccessLogMaintenance(options: AccessLogMaintenanceOptions): Promise<AccessLogMaintenanceReport> {
  const { pool, log } = options;
  const now = options.now?.() ?? new Date();
  const report: AccessLogMaintenanceReport = { created: [], dropped: [], rolledUp: [], indexed: [], failures: [] };
  const { signal } = options;
  const step = async (name: string, work: () => Promise<void>) => {
    // Stopping: the next start runs what is left.
    if (signal?.aborted) return;
    try {
      await work();
    } catch (err) {
      if (signal?.aborted) {
        // Usually the cancel itself; the message is kept in case a real failure came at the same moment.
        log.info({ step: name, err: (err as Error).message }, 'access log maintenance step cancelled: stopping');
        return;
      }
      report.failures.push(`${name}: ${(err as Error).message}`);
      log.error({ err: (err as Error).message, step: name }, 'access log maintenance step failed');
    }
  };
  await step('create partitions', async () => {
    report.created = await ensurePartitions(pool, now, options.daysAhead ?? 7);
    if (report.created.length) log.info({ partitions: report.created }, 'access log partitions created');
  });
  await step('retention', async () => {
    report.dropped = await dropExpiredPartitions(pool, options.retentionDays, now);
    for (const p of report.dropped) {
      log.info(
        { partition: p.name, from: p.from.toISOString(), to: p.to.toISOString(), retentionDays: options.retentionDays },
        'access log partition dropped: older than the retention',
      );
    }
  });
  // Each school's today, a closed day once late rows have had time to arrive, and days a replayed spool added rows to.
  let due: string[] = [];
  await step('choose days to roll up', async () => {
    await forgetOldRollupRecords(pool, now, options.retentionDays);
    due = await daysToRollUp(pool, now, options.retentionDays);
  });
  for (const day of due) {
    await step(`rollup ${day}`, async () => {
      await rollupDay(pool, day, { signal, now });
      report.rolledUp.push(day);
    });
  }
  // Last: on the first run after an upgrade it may build a year of days.
  await step('index closed days', async () => {
    report.indexed = await indexClosedPartitions(pool, now, signal);
    for (const built of report.indexed) {
      log.info({ partition: built.partition, index: built.index, ms: built.milliseconds }, 'access log partition indexed');
    }
  });
  return report;
}

/** Runs the upkeep now and then every intervalMs (an hour by default); the timer does not keep the process alive. */
export function startAccessLogMaintenance(options: AccessLogMaintenanceOptions): AccessLogMaintenance {
  const stopping = new AbortController();
  let running: Promise<AccessLogMaintenanceReport> | undefined;
  const runOnce = () => {
    // Never two runs at once in one process.
    running ??= runAccessLogMaintenance({ ...options, signal: stopping.signal }).finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void runOnce(), options.intervalMs ?? 3_600_000);
  timer.unref();
  void runOnce();
  return {
    runOnce,
    stop: async () => {
      clearInterval(timer);
      stopping.abort();
      await running;
    },
  };
}
