// Delivery of alerts over one channel (the webhook, email), retried with
// exponential back-off, the state of each delivery kept on the alert row in
// the channel's columns (<channel>_state: pending, delivered, failed;
// attempts, next attempt, last error, delivered at). Runs on its own timer,
// never on the request path. A due alert is claimed by moving its next
// attempt past the send timeout first, so two processes never send the same
// alert at once and a crash mid-send only delays the retry.
//
// The last error is kept after a success, as the record of what was retried.
// The channel supplies only send(): it resolves when the alert got through
// and throws (or rejects) with the reason when it did not.
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import type { AlertKind } from './alert-detector.js';

/** A channel's columns on the alerts table are prefixed with its name. */
export type AlertChannel = 'webhook' | 'email';

/** An alert's own columns as read from the alerts table (client_ip as text, access_log_ids as text[]). */
export interface StoredAlertRow {
  id: number;
  kind: AlertKind;
  raised_at: Date;
  username: string | null;
  client_ip: string;
  host: string;
  category: string | null;
  summary: string;
  access_log_ids: string[];
}

export interface DueAlert extends StoredAlertRow {
  /** Attempts made before this one. */
  attempts: number;
}

export interface AlertDeliveryTiming {
  /** The delay after the first failure; doubled each time, up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** How long one send may take; a claim lasts twice this. */
  timeoutMs?: number;
  pollMs?: number;
}

export interface AlertDeliveryOptions extends AlertDeliveryTiming {
  pool: Pool;
  log: Logger;
  channel: AlertChannel;
  maxAttempts: number;
  send(alert: DueAlert, timeoutMs: number): Promise<void>;
}

const BATCH = 20;

/** The wait before attempt `attempt + 1`, after `attempt` failures. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export class AlertDelivery {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly pollMs: number;
  /** Column names, from the fixed channel name only. */
  private readonly col: (suffix: string) => string;

  constructor(private readonly options: AlertDeliveryOptions) {
    this.baseDelayMs = options.baseDelayMs ?? 5_000;
    this.maxDelayMs = options.maxDelayMs ?? 30 * 60_000;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.pollMs = options.pollMs ?? 5_000;
    if (options.channel !== 'webhook' && options.channel !== 'email') throw new Error(`unknown alert channel ${String(options.channel)}`);
    this.col = (suffix) => `${options.channel}_${suffix}`;
  }

  start(): void {
    this.poke();
  }

  /** Delivers what is due now (a new alert, say) without waiting for the next poll. */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.deliverDue()
      .catch((err: unknown) => this.options.log.error({ err, channel: this.options.channel }, 'alert delivery failed; will try again'))
      .finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          this.poke();
          return;
        }
        this.timer = setTimeout(() => this.poke(), this.pollMs);
        this.timer.unref();
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private async deliverDue(): Promise<void> {
    const { pool } = this.options;
    const { col } = this;
    const { rows } = await pool.query<DueAlert>(
      `UPDATE alerts SET ${col('next_attempt_at')} = now() + $1 * interval '1 millisecond'
        WHERE id IN (SELECT id FROM alerts WHERE ${col('state')} = 'pending' AND ${col('next_attempt_at')} <= now()
                      ORDER BY ${col('next_attempt_at')} LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id, kind, raised_at, username, host(client_ip) AS client_ip, host, category, summary, access_log_ids::text[] AS access_log_ids,
                  ${col('attempts')} AS attempts`,
      [this.timeoutMs * 2, BATCH],
    );
    for (const alert of rows) {
      if (this.stopped) return;
      await this.deliver(alert);
    }
  }

  private async deliver(alert: DueAlert): Promise<void> {
    const { pool, log, maxAttempts, channel } = this.options;
    const { col } = this;
    const attempt = alert.attempts + 1;
    let failure: string | undefined;
    try {
      await this.options.send(alert, this.timeoutMs);
    } catch (err) {
      failure = describe(err);
    }
    if (failure === undefined) {
      await pool.query(
        `UPDATE alerts SET ${col('state')} = 'delivered', ${col('attempts')} = $2, ${col('delivered_at')} = now(),
                ${col('next_attempt_at')} = NULL
          WHERE id = $1`,
        [alert.id, attempt],
      );
      return;
    }
    const giveUp = attempt >= maxAttempts;
    log.warn({ alertId: alert.id, channel, attempt, failure, giveUp }, 'alert delivery failed');
    await pool.query(
      `UPDATE alerts SET ${col('attempts')} = $2, ${col('last_error')} = $3,
              ${col('state')} = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
              ${col('next_attempt_at')} = CASE WHEN $4 THEN NULL ELSE now() + $5 * interval '1 millisecond' END
        WHERE id = $1`,
      [alert.id, attempt, failure.slice(0, 1000), giveUp, backoffMs(attempt, this.baseDelayMs, this.maxDelayMs)],
    );
  }
}
