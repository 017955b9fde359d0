// Delivers alerts to ALERT_WEBHOOK_URL: POST JSON. Retries, back-off, the
// delivery state on the alert row (webhook_* columns) and claiming are the
// shared AlertDelivery's (alert-delivery.ts); this is only the POST.
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import { AlertDelivery, type AlertDeliveryTiming, type DueAlert } from './alert-delivery.js';

export { backoffMs } from './alert-delivery.js';

export interface WebhookDeliveryOptions extends AlertDeliveryTiming {
  pool: Pool;
  url: URL;
  log: Logger;
  maxAttempts: number;
  /** Where the DSL opens an alert, for the payload's link (the admin API's base URL). */
  adminBaseUrl: string;
}

export class WebhookDelivery {
  private readonly delivery: AlertDelivery;

  constructor(private readonly options: WebhookDeliveryOptions) {
    this.delivery = new AlertDelivery({
      ...options,
      channel: 'webhook',
      send: (alert, timeoutMs) => this.post(alert, timeoutMs),
    });
  }

  start(): void {
    this.delivery.start();
  }

  /** Delivers what is due now (a new alert, say) without waiting for the next poll. */
  poke(): void {
    this.delivery.poke();
  }

  stop(): Promise<void> {
    return this.delivery.stop();
  }

  private async post(alert: DueAlert, timeoutMs: number): Promise<void> {
    const { url, adminBaseUrl } = this.options;
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
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'portcullis-alerts' },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`the webhook answered ${res.status}`);
  }
}
