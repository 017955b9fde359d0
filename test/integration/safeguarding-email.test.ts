// Alert email over real sockets: requests through a running proxy raise
// alerts, and each reaches a real SMTP receiver (smtp-server on 127.0.0.1)
// as exactly one plain-text message naming the trigger, the person, the time,
// the host, the access-log rows and the alert's link in the admin API. While
// the receiver is not listening yet, or answers 451, the alert is retried
// with back-off and delivered once it accepts.
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backoffMs } from '../../safeguarding/alert-delivery.js';
import { freePort } from '../support/global-postgres.js';
import { waitFor } from '../support/internet-stand-in.js';
import { requestViaProxy, startHttpOrigin, type TestOrigin } from '../support/proxy-harness.js';
import { groupRuleIs, untilPolicy } from '../support/policy-reload.js';
import { startSafeguardingStack, type SafeguardingStack } from '../support/safeguarding-stack.js';

interface Message {
  at: number;
  from: string;
  to: string[];
  raw: string;
}

let s: SafeguardingStack;
let origin: TestOrigin;
let smtpPort: number;
let smtp: SMTPServer | undefined;
const messages: Message[] = [];
const rejections: number[] = [];
/** The receiver answers 451 to this many more messages. */
let rejectsLeft = 0;

const FROM = 'portcullis@school.test';
const TO = ['dsl@school.test', 'deputy.dsl@school.test'];

async function startSmtpReceiver(port: number): Promise<SMTPServer> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (rejectsLeft > 0) {
          rejectsLeft--;
          rejections.push(Date.now());
          callback(Object.assign(new Error('Mailbox busy, try again later'), { responseCode: 451 }));
          return;
        }
        messages.push({
          at: Date.now(),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

function header(raw: string, name: string): string | undefined {
  const head = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
  const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

function body(raw: string): string {
  const text = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  const encoding = header(raw, 'Content-Transfer-Encoding')?.toLowerCase();
  if (encoding === 'base64') return Buffer.from(text, 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    const bytes = text.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8').replace(/\r\n/g, '\n');
  }
  return text.replace(/\r\n/g, '\n');
}

const forAlert = (id: number) => messages.filter((m) => header(m.raw, 'X-Portcullis-Alert') === String(id));

beforeAll(async () => {
  smtpPort = await freePort();
  s = await startSafeguardingStack({
    email: { smtpUrl: new URL(`smtp://127.0.0.1:${smtpPort}`), from: FROM, to: TO },
    repeatedBlocks: 50,
    emailMaxAttempts: 20,
  });
  origin = await startHttpOrigin();
  await s.h.createUser('pupil', ['staff'], 'pupils');
  await s.h.createUser('lead', ['staff', 'dsl']);
  await s.listHosts('iwf', ['illegal.test']);
  await s.listHosts('chat', ['chatroom.test']);
  await s.h.db.pool.query(
    `UPDATE group_rules SET action = 'monitor', schedule_id = NULL
      WHERE group_id = (SELECT id FROM groups WHERE key = 'pupils') AND category_id = (SELECT id FROM categories WHERE key = 'chat')`,
  );
  await untilPolicy(s.store, groupRuleIs('pupils', 'chat', 'monitor'), "pupils' chat rule as monitor");
});

afterAll(async () => {
  await s?.close();
  await origin?.close();
  await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
});

const browse = (host: string) =>
  requestViaProxy(s.proxyPort, `http://${host}:${origin.port}/`, { headers: { 'Proxy-Authorization': s.proxyAuth('pupil') } });


interface AlertRow {
  id: number;
  ids: string[];
  raised_at: Date;
  summary: string;
  email_state: string;
  email_attempts: number;
  email_last_error: string | null;
  webhook_state: string;
}

async function alertsOf(kind: string): Promise<AlertRow[]> {
  const { rows } = await s.h.db.pool.query<AlertRow>(
    `SELECT id, access_log_ids::text[] AS ids, raised_at, summary, email_state, email_attempts, email_last_error, webhook_state
       FROM alerts WHERE kind = $1 ORDER BY id`,
    [kind],
  );
  return rows;
}

const emailed = (kind: string) =>
  waitFor(`an emailed ${kind} alert`, async () => {
    const rows = await alertsOf(kind);
    return rows.length === 1 && rows[0].email_state === 'delivered' ? rows[0] : undefined;
  });

describe('alert email', () => {
  it('retries while the SMTP server is not listening, then sends exactly one message with the alert', async () => {
    const started = Date.now();
    expect((await browse('illegal.test')).status).toBe(403);
    expect((await browse('illegal.test')).status).toBe(403);
    // The proxy answers while SMTP is down; the alert waits, pending, with its failures recorded.
    expect(Date.now() - started).toBeLessThan(2_000);
    const failing = await waitFor('two failed attempts', async () => {
      const rows = await alertsOf('illegal_content');
      return rows.length === 1 && rows[0].email_attempts >= 2 ? rows[0] : undefined;
    });
    expect(failing.email_state).toBe('pending');
    expect(failing.email_last_error).toMatch(/ECONNREFUSED/);
    expect(failing.webhook_state).toBe('none');
    expect(messages).toHaveLength(0);

    smtp = await startSmtpReceiver(smtpPort);
    const alert = await emailed('illegal_content');
    expect(alert.email_attempts).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 300));
    expect(forAlert(alert.id)).toHaveLength(1);
    expect(messages).toHaveLength(1);

    const [message] = messages;
    expect(message.from).toBe(FROM);
    expect(message.to).toEqual(TO);
    expect(header(message.raw, 'Subject')).toBe(`[Portcullis] Alert #${alert.id}: Illegal content - pupil - illegal.test`);
    expect(header(message.raw, 'Content-Type')).toMatch(/^text\/plain/);
    // The alert is raised as the event is recorded; its row reaches access_log with the writer's next batch.
    const rows = await waitFor('both visits in the access log', async () => {
      const { rows: logged } = await s.h.db.pool.query<{ id: string }>("SELECT id::text FROM access_log WHERE host = 'illegal.test' ORDER BY time");
      return logged.length >= 2 ? logged : undefined;
    });
    expect(alert.ids).toEqual([rows[0].id]);
    const text = body(message.raw);
    expect(text).toContain('Trigger:     Illegal content (illegal_content)');
    expect(text).toContain(`Summary:     ${alert.summary}`);
    expect(text).toContain('Who:         pupil at 127.0.0.1');
    expect(text).toContain(`When:        ${alert.raised_at.toISOString()} (UTC)`);
    expect(text).toContain('Host:        illegal.test');
    expect(text).toContain(`Access-log rows (1):\n  ${rows[0].id}\n`);
    const link = `${s.adminBaseUrl}/api/alerts/${alert.id}`;
    expect(text).toContain(`\n${link}\n`);
    // The link opens the alert for the DSL.
    const lead = await s.h.signIn('lead');
    const opened = await s.h.as(lead, { method: 'GET', url: new URL(link).pathname });
    expect(opened.statusCode).toBe(200);
    expect(opened.json()).toMatchObject({ id: alert.id, kind: 'illegal_content' });
  });

  it('retries with back-off while the SMTP server answers 451, and delivers once it accepts', async () => {
    rejectsLeft = 2;
    expect((await browse('chatroom.test')).status).toBe(200);
    expect((await browse('chatroom.test')).status).toBe(200);
    const alert = await emailed('monitored_category');
    expect(alert.email_attempts).toBe(3);
    expect(alert.email_last_error).toMatch(/451/);
    expect(rejections).toHaveLength(2);
    const sent = forAlert(alert.id);
    expect(sent).toHaveLength(1);
    expect(header(sent[0].raw, 'Subject')).toBe(`[Portcullis] Alert #${alert.id}: Monitored category - pupil - chatroom.test`);
    expect(body(sent[0].raw)).toContain('Host:        chatroom.test');
    // Exponential: the waits are about 100 ms, then 200 ms.
    expect(rejections[1] - rejections[0]).toBeGreaterThanOrEqual(backoffMs(1, 100, 400) - 20);
    expect(sent[0].at - rejections[1]).toBeGreaterThanOrEqual(backoffMs(2, 100, 400) - 20);
    await new Promise((r) => setTimeout(r, 300));
    expect(forAlert(alert.id)).toHaveLength(1);
    expect(messages).toHaveLength(2);
  });
});
