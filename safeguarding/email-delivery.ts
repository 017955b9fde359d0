// Emails each alert to the DSL (ALERT_EMAIL_TO) through SMTP_URL: one
// plain-text message per alert, saying what triggered it, who, when, the
// host, the access-log rows it links, and where to open it in the admin API.
// Retries, back-off, the delivery state on the alert row (email_* columns)
// and claiming are the shared AlertDelivery's (alert-delivery.ts), as for the
// webhook; this is only the message and the SMTP submission. A server that
// is down, or answers 4xx, fails the attempt and the alert is tried again.
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type { AlertEmailConfig } from '../core/config.js';
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import { AlertDelivery, type AlertDeliveryTiming, type DueAlert } from './alert-delivery.js';
import type { AlertKind } from './alert-detector.js';

export interface EmailDeliveryOptions extends AlertDeliveryTiming {
  pool: Pool;
  email: AlertEmailConfig;
  log: Logger;
  maxAttempts: number;
  /** Where the DSL opens an alert, for the message's link (the admin API's base URL). */
  adminBaseUrl: string;
}

const KIND_LABELS: Record<AlertKind, string> = {
  illegal_content: 'Illegal content',
  monitored_category: 'Monitored category',
  repeated_blocks: 'Repeated blocked requests',
  search_term: 'Safeguarding search term',
};

export interface AlertEmail {
  subject: string;
  text: string;
}

/** The message for one alert. */
export function composeAlertEmail(alert: DueAlert, adminBaseUrl: string): AlertEmail {
  const label = KIND_LABELS[alert.kind];
  const who = alert.username ?? 'an unidentified user';
  const link = `${adminBaseUrl}/api/alerts/${alert.id}`;
  const lines = [
    `Portcullis raised a safeguarding alert for the DSL.`,
    '',
    `Alert:       #${alert.id}`,
    `Trigger:     ${label} (${alert.kind})`,
    `Summary:     ${alert.summary}`,
    `Who:         ${who} at ${alert.client_ip}`,
    `When:        ${alert.raised_at.toISOString()} (UTC)`,
    `Host:        ${alert.host}`,
    `Category:    ${alert.category ?? '-'}`,
    '',
    `Access-log rows (${alert.access_log_ids.length}):`,
    ...alert.access_log_ids.map((id) => `  ${id}`),
    '',
    `Open and acknowledge the alert in the admin API:`,
    link,
    '',
  ];
  return { subject: `[Portcullis] Alert #${alert.id}: ${label} - ${who} - ${alert.host}`, text: lines.join('\n') };
}

function transportFor(smtpUrl: URL, timeoutMs: number): Transporter {
  const secure = smtpUrl.protocol === 'smtps:';
  return nodemailer.createTransport({
    host: smtpUrl.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: smtpUrl.port === '' ? (secure ? 465 : 587) : Number(smtpUrl.port),
    secure,
    auth: smtpUrl.username === '' ? undefined : { user: decodeURIComponent(smtpUrl.username), pass: decodeURIComponent(smtpUrl.password) },
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    disableFileAccess: true,
    disableUrlAccess: true,
  });
}

export class EmailDelivery {
  private readonly delivery: AlertDelivery;
  private readonly transport: Transporter;

  constructor(private readonly options: EmailDeliveryOptions) {
    const timeoutMs = options.timeoutMs ?? 10_000;
    this.transport = transportFor(options.email.smtpUrl, timeoutMs);
    this.delivery = new AlertDelivery({
      ...options,
      timeoutMs,
      channel: 'email',
      send: (alert) => this.send(alert),
    });
  }

  start(): void {
    this.delivery.start();
  }

  /** Delivers what is due now (a new alert, say) without waiting for the next poll. */
  poke(): void {
    this.delivery.poke();
  }

  async stop(): Promise<void> {
    await this.delivery.stop();
    this.transport.close();
  }

  private async send(alert: DueAlert): Promise<void> {
    const { email, adminBaseUrl } = this.options;
    const message = composeAlertEmail(alert, adminBaseUrl);
    const info = (await this.transport.sendMail({
      from: email.from,
      to: email.to,
      subject: message.subject,
      text: message.text,
      headers: { 'X-Portcullis-Alert': String(alert.id) },
    })) as { rejected?: unknown[] };
    // Some recipients refused, others accepted: the message went out, but say so.
    if (info.rejected && info.rejected.length > 0) {
      this.options.log.warn({ alertId: alert.id, rejected: info.rejected }, 'some alert email recipients were refused');
    }
  }
}
