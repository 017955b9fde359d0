// Alerts over real sockets: requests through a running proxy raise alerts
// for the DSL (illegal content, a monitored category, repeated blocks), each
// once per trigger and linked to its access-log rows; each reaches a local
// webhook receiver, retried with back-off while the receiver answers 503;
// the DSL acknowledges with a note; raising and acknowledging are audited.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backoffMs } from '../../safeguarding/webhook-delivery.js';
import { waitFor } from '../support/internet-stand-in.js';
import { requestViaProxy, startHttpOrigin, type TestOrigin } from '../support/proxy-harness.js';
import { groupRuleIs, untilPolicy } from '../support/policy-reload.js';
import { startSafeguardingStack, type SafeguardingStack } from '../support/safeguarding-stack.js';

interface Received {
  at: number;
  body: { alert: { id: number; kind: string; accessLogIds: string[]; link: string } };
  answered: number;
}

let s: SafeguardingStack;
let origin: TestOrigin;
let receiver: http.Server;
const received: Received[] = [];
/** The receiver is "down" (503) for this many more requests. */
let failuresLeft = 0;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answered = failuresLeft > 0 ? 503 : 204;
      if (failuresLeft > 0) failuresLeft--;
      received.push({ at: Date.now(), body: JSON.parse(Buffer.concat(chunks).toString()), answered });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { port } = receiver.address() as AddressInfo;
  s = await startSafeguardingStack({ webhookUrl: new URL(`http://127.0.0.1:${port}/hook`), repeatedBlocks: 3 });
  origin = await startHttpOrigin();
  await s.h.createUser('pupil', ['staff'], 'pupils');
  await s.h.createUser('lead', ['staff', 'dsl']);
  await s.listHosts('iwf', ['illegal.test']);
  await s.listHosts('gambling', ['casino.test', 'dice.test']);
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
  await new Promise((resolve) => receiver?.close(resolve));
});

const browse = (host: string) =>
  requestViaProxy(s.proxyPort, `http://${host}:${origin.port}/`, { headers: { 'Proxy-Authorization': s.proxyAuth('pupil') } });


async function alertsOf(kind: string) {
  const { rows } = await s.h.db.pool.query(
    'SELECT id, access_log_ids::text[] AS ids, webhook_state, webhook_attempts, webhook_last_error FROM alerts WHERE kind = $1 ORDER BY id',
    [kind],
  );
  return rows as Array<{ id: number; ids: string[]; webhook_state: string; webhook_attempts: number; webhook_last_error: string | null }>;
}

/** Waits until there are `count` alerts of this kind, all delivered. */
const delivered = (kind: string, count: number) => waitFor(`${count} delivered ${kind} alerts`, async () => {
  const rows = await alertsOf(kind);
  return rows.length === count && rows.every((r) => r.webhook_state === 'delivered') ? rows : undefined;
});

describe('alerts', () => {
  it('fires once for repeated hits on illegal content, links its row, and reaches the webhook through 503s with back-off', async () => {
    failuresLeft = 2;
    expect((await browse('illegal.test')).status).toBe(403);
    expect((await browse('illegal.test')).status).toBe(403);
    const [alert] = await delivered('illegal_content', 1);
    expect(await alertsOf('illegal_content')).toHaveLength(1);
    expect(alert.webhook_attempts).toBe(3);
    // The alert is raised as the event is recorded; its row reaches access_log with the writer's next batch.
    const rows = await waitFor('both visits in the access log', async () => {
      const { rows: logged } = await s.h.db.pool.query<{ id: string }>("SELECT id::text FROM access_log WHERE host = 'illegal.test' ORDER BY time");
      return logged.length >= 2 ? logged : undefined;
    });
    expect(alert.ids).toEqual([rows[0].id]);
    const posts = received.filter((r) => r.body.alert.id === alert.id);
    expect(posts.map((p) => p.answered)).toEqual([503, 503, 204]);
    expect(posts[2].body.alert).toMatchObject({ kind: 'illegal_content', accessLogIds: [rows[0].id], link: `${s.adminBaseUrl}/api/alerts/${alert.id}` });
    // Exponential: the second wait is about twice the first (100 ms, then 200 ms).
    expect(posts[1].at - posts[0].at).toBeGreaterThanOrEqual(backoffMs(1, 100, 400) - 20);
    expect(posts[2].at - posts[1].at).toBeGreaterThanOrEqual(backoffMs(2, 100, 400) - 20);
  });

  it('fires once per monitored host, and once per run of repeated blocks', async () => {
    expect((await browse('chatroom.test')).status).toBe(200);
    expect((await browse('chatroom.test')).status).toBe(200);
    const monitored = await delivered('monitored_category', 1);
    expect(monitored).toHaveLength(1);

    // With the two illegal-content blocks above, these five make seven attempts: two runs of three, and one over.
    for (let i = 0; i < 5; i++) expect((await browse(i % 2 ? 'casino.test' : 'dice.test')).status).toBe(403);
    const repeated = await delivered('repeated_blocks', 2);
    expect(repeated).toHaveLength(2);
    expect(repeated.every((alert) => alert.ids.length === 3)).toBe(true);
    expect(new Set(repeated.flatMap((alert) => alert.ids)).size).toBe(6);
    // One more block leaves the run at two: no alert; the next completes it.
    expect((await browse('casino.test')).status).toBe(403);
    await new Promise((r) => setTimeout(r, 200));
    expect(await alertsOf('repeated_blocks')).toHaveLength(2);
    expect((await browse('casino.test')).status).toBe(403);
    await waitFor('the third run', async () => ((await alertsOf('repeated_blocks')).length === 3 ? true : undefined));
    expect(received.filter((r) => r.body.alert.kind === 'monitored_category')).toHaveLength(1);
  });

  it('lists alerts for the DSL only, acknowledged with a note, all audited', async () => {
    const lead = await s.h.signIn('lead');
    const pupil = await s.h.signIn('pupil');
    expect((await s.h.as(pupil, { method: 'GET', url: '/api/alerts' })).statusCode).toBe(403);
    const list = await s.h.as(lead, { method: 'GET', url: '/api/alerts?acknowledged=false' });
    expect(list.statusCode).toBe(200);
    const items = list.json().items as Array<{ id: number; kind: string; username: string }>;
    expect(items.map((a) => a.kind).sort()).toEqual(['illegal_content', 'monitored_category', 'repeated_blocks', 'repeated_blocks', 'repeated_blocks']);
    expect(items.every((a) => a.username === 'pupil')).toBe(true);
    const id = items[0].id;
    expect((await s.h.as(lead, { method: 'POST', url: `/api/alerts/${id}/acknowledge`, payload: {} })).statusCode).toBe(400);
    const acked = await s.h.as(lead, { method: 'POST', url: `/api/alerts/${id}/acknowledge`, payload: { note: 'spoke to the pupil and parents' } });
    expect(acked.json()).toMatchObject({ acknowledgedBy: 'lead', acknowledgeNote: 'spoke to the pupil and parents' });
    expect((await s.h.as(lead, { method: 'POST', url: `/api/alerts/${id}/acknowledge`, payload: { note: 'again' } })).statusCode).toBe(409);
    expect((await s.h.as(lead, { method: 'GET', url: '/api/alerts/999999' })).statusCode).toBe(404);
    const { rows } = await s.h.db.pool.query<{ action: string; n: number }>(
      "SELECT action, count(*)::int AS n FROM audit_log WHERE action LIKE 'alert.%' GROUP BY action ORDER BY action",
    );
    expect(rows).toEqual([
      { action: 'alert.acknowledge', n: 1 },
      { action: 'alert.raise', n: 5 },
    ]);
  });
});
