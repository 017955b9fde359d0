// The alerting side of the access log: an AccessRecorder composed next to
// the log writer. record() inspects the event in memory (AlertDetector) and
// queues what it finds; a drain loop stores each alert (once per trigger,
// audited) off the request path. A database outage keeps alerts queued and
// retried; the queue is bounded, and anything it must drop is logged with
// the alert itself, never lost silently.
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import { appendAudit } from '../admin-api/audit.js';
import { inTransaction } from '../core/db.js';
import type { AccessEvent, AccessRecorder } from '../proxy/types.js';
import type { AlertCandidate, AlertDetector } from './alert-detector.js';

export interface AlertRecorderOptions {
  pool: Pool;
  schoolId: number;
  detector: AlertDetector;
  log: Logger;
  /** A webhook is configured: new alerts start as pending delivery. */
  webhook: boolean;
  /** Email (SMTP) is configured: new alerts start as pending email delivery. */
  email?: boolean;
  /** Called after an alert is stored, e.g. to deliver it at once. */
  onRaised?: (alertId: number) => void;
  queueCap?: number;
  retryMs?: number;
}

/** Who raises alerts in the audit log. */
export const SYSTEM_ACTOR = { userId: null, username: 'portcullis' };

export class AlertRecorder implements AccessRecorder {
  private readonly queue: AlertCandidate[] = [];
  private draining: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly queueCap: number;
  private readonly retryMs: number;

  constructor(private readonly options: AlertRecorderOptions) {
    this.queueCap = options.queueCap ?? 1_000;
    this.retryMs = options.retryMs ?? 1_000;
  }

  record(event: AccessEvent): void {
    for (const candidate of this.options.detector.inspect(event)) {
      if (this.queue.length >= this.queueCap) {
        this.options.log.error({ alert: candidate }, 'alert queue full; this alert is not stored');
        continue;
      }
      this.queue.push(candidate);
    }
    if (this.queue.length > 0) this.drainSoon();
  }

  /** Stores what is queued, then stops retrying. */
  async close(): Promise<void> {
    clearTimeout(this.retryTimer);
    await this.drain();
    this.closed = true;
    for (const candidate of this.queue) this.options.log.error({ alert: candidate }, 'shutting down with an alert not stored');
  }

  private drainSoon(): void {
    if (this.draining || this.retryTimer || this.closed) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const candidate = this.queue[0];
      try {
        const id = await this.store(candidate);
        this.queue.shift();
        if (id !== undefined) this.options.onRaised?.(id);
      } catch (err) {
        this.options.log.error({ err, pending: this.queue.length }, 'could not store an alert; will retry');
        if (!this.closed) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.drainSoon();
          }, this.retryMs);
          this.retryTimer.unref();
        }
        return;
      }
    }
  }

  /** The new alert's id, or undefined when this trigger was already raised. */
  private store(candidate: AlertCandidate): Promise<number | undefined> {
    const { pool, schoolId, webhook, email = false } = this.options;
    return inTransaction(pool, async (client) => {
      const { rows } = await client.query<{ id: number }>(
        `INSERT INTO alerts (school_id, kind, dedupe_key, raised_at, user_id, username, client_ip, host, category, summary, access_log_ids,
                             webhook_state, webhook_next_attempt_at, email_state, email_next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $12 = 'pending' THEN now() END,
                 $13, CASE WHEN $13 = 'pending' THEN now() END)
         ON CONFLICT (school_id, dedupe_key) DO NOTHING RETURNING id`,
        [
          schoolId, candidate.kind, candidate.dedupeKey, candidate.time, candidate.userId, candidate.username, candidate.clientIp.replace(/%.*$/, ''),
          candidate.host, candidate.category, candidate.summary, candidate.accessLogIds, webhook ? 'pending' : 'none',
          email ? 'pending' : 'none',
        ],
      );
      const id = rows[0]?.id;
      if (id === undefined) return undefined;
      await appendAudit(client, {
        schoolId,
        actor: SYSTEM_ACTOR,
        action: 'alert.raise',
        target: `alert:${id}`,
        detail: { kind: candidate.kind, userId: candidate.userId, host: candidate.host, category: candidate.category, accessLogIds: candidate.accessLogIds },
      });
      return id;
    });
  }
}

/** Passes each event to every recorder; one failing never stops the others. */
export function fanOutRecorder(recorders: readonly AccessRecorder[], log: Logger): AccessRecorder {
  return {
    record(event) {
      for (const recorder of recorders) {
        try {
          recorder.record(event);
        } catch (err) {
          log.error({ err, id: event.id }, 'an access recorder failed');
        }
      }
    },
  };
}
