// Delivers alerts to ALERT_WEBHOOK_URL: POST JSON, retried with exponential
// back-off, the state of each delivery kept on the alert row (pending,
// delivered, failed; attempts, next attempt, last error). Runs on its own
// timer, never on the request path. A due alert is claimed by moving its
// next attempt past the request timeout first, so two processes never post
// the same alert at once and a crash mid-post only delays the retry.
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';

export interface WebhookDeliveryOptions {
  pool: Pool;
  url: URL;
  log: Logger;
  maxAttempts: number;
  /** Where the DSL opens an alert, for the payload's link (the admin API's base URL). */
  adminBaseUrl: string;
  /** The delay after the first failure; doubled each time, up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  pollMs?: number;
}

interface DueAlert {
  id: number;
  kind: string;
  raised_at: Date;
  username: string | null;
  client_ip: string;
  host: string;
  category: string | null;
  summary: string;
  access_log_ids: string[];
  webhook_attempts: number;
}

const BATCH = 20;

/** The wait before attempt `attempt + 1`, after `attempt` failures. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
}

export class WebhookDelivery {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly pollMs: number;

  constructor(private readonly options: WebhookDeliveryOptions) {
    this.baseDelayMs = options.baseDelayMs ?? 5_000;
    this.maxDelayMs = options.maxDelayMs ?? 30 * 60_000;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.pollMs = options.pollMs ?? 5_000;
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
      .catch((err: unknown) => this.options.log.error({ err }, 'alert webhook delivery failed; will try again'))
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
    const { rows } = await pool.query<DueAlert>(
      `UPDATE alerts SET webhook_next_attempt_at = now() + $1 * interval '1 millisecond'
        WHERE id IN (SELECT id FROM alerts WHERE webhook_state = 'pending' AND webhook_next_attempt_at <= now()
                      ORDER BY webhook_next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id, kind, raised_at, username, host(client_ip) AS client_ip, host, category, summary, access_log_ids::text[] AS access_log_ids,
                  webhook_attempts`,
      [this.timeoutMs * 2, BATCH],
    );
    for (const alert of rows) {
      if (this.stopped) return;
      await this.deliver(alert);
    }
  }

  private async deliver(alert: DueAlert): Promise<void> {
    const { pool, url, log, maxAttempts, adminBaseUrl } = this.options;
    const payload = {
      alert: {
        id: alert.id,
        kind: alert.kind,
        raisedAt: alert.raised_at.toISOString(),
        summary: alert.summary,
        username: alert.username,
        clientIp: alert.client_ip,
        host: alert.host,
        category: alert.category,
        accessLogIds: alert.access_log_ids,
        link: `${adminBaseUrl}/api/alerts/${alert.id}`,
      },
    };
    const attempt = alert.webhook_attempts + 1;
    let failure: string | undefined;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'portcullis-alerts' },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
      });
      await res.body?.cancel();
      if (!res.ok) failure = `the webhook answered ${res.status}`;
    } catch (err) {
      failure = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
    if (failure === undefined) {
      await pool.query(
        "UPDATE alerts SET webhook_state = 'delivered', webhook_attempts = $2, webhook_delivered_at = now(), webhook_next_attempt_at = NULL WHERE id = $1",
        [alert.id, attempt],
      );
      return;
    }
    const giveUp = attempt >= maxAttempts;
    log.warn({ alertId: alert.id, attempt, failure, giveUp }, 'alert webhook delivery failed');
    await pool.query(
      `UPDATE alerts SET webhook_attempts = $2, webhook_last_error = $3,
              webhook_state = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
              webhook_next_attempt_at = CASE WHEN $4 THEN NULL ELSE now() + $5 * interval '1 millisecond' END
        WHERE id = $1`,
      [alert.id, attempt, failure.slice(0, 1000), giveUp, backoffMs(attempt, this.baseDelayMs, this.maxDelayMs)],
    );
  }
}
