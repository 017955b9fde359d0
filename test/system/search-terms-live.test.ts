// Safeguarding search terms on the whole program (startPortcullis, wired as
// `portcullis start` is): a plain-HTTP search through the running proxy
// raises a search_term alert that reaches the webhook, and a term the DSL
// adds over the admin API alerts within a second.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningPortcullis } from '../../cli/start.js';
import { addUser } from '../../core/users.js';
import type { TestDatabase } from '../support/database.js';
import { waitUntil, type InternetStandIn } from '../support/internet-stand-in.js';
import { requestViaProxy } from '../support/proxy-harness.js';
import { signIn, startWholeProgram, type AdminSession, type WholeProgram } from '../support/whole-program.js';

const PASSWORD = 'search-terms-live-pw';

describe('search terms on a running Portcullis', () => {
  let program: WholeProgram;
  let running: RunningPortcullis;
  let internet: InternetStandIn;
  let db: TestDatabase;
  let receiver: http.Server;
  const hooks: Array<{ alert: { kind: string; summary: string; accessLogIds: string[] } }> = [];
  let lead: AdminSession;

  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        hooks.push(JSON.parse(Buffer.concat(chunks).toString()));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    program = await startWholeProgram({
      adminPassword: 'search-terms-admin-pw',
      lists: { gambling: ['888casino.com'] },
      env: { ALERT_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook` },
    });
    ({ running, internet, db } = program);
    const { rows } = await db.pool.query<{ id: number }>('SELECT id FROM schools ORDER BY id LIMIT 1');
    await addUser(db.pool, { schoolId: rows[0].id, username: 'lead', groupKey: 'staff', roles: ['staff', 'dsl'], password: PASSWORD });
    lead = await signIn(program.adminBase, 'lead', PASSWORD);
  }, 60_000);

  afterAll(async () => {
    await program?.stop();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  const searchFor = (query: string) => requestViaProxy(running.proxyAddress.port, `http://www.search.example/search?q=${query}`);
  const searchAlerts = async () =>
    (await db.pool.query<{ summary: string }>("SELECT summary FROM alerts WHERE kind = 'search_term' ORDER BY id")).rows.map((r) => r.summary);

  it('alerts on a default term, delivered to the webhook', async () => {
    expect((await searchFor('how+to+make+a+pipe+bomb')).status).toBe(200);
    expect(internet.httpRequests.at(-1)).toMatchObject({ host: 'www.search.example', path: '/search?q=how+to+make+a+pipe+bomb' });
    await waitUntil(() => hooks.length === 1, 5_000, 'the webhook');
    expect(hooks[0].alert).toMatchObject({ kind: 'search_term', summary: expect.stringContaining('weapons or violence ("how to make a pipe bomb")') });
    expect(await searchAlerts()).toHaveLength(1);
  });

  it('alerts on a term the DSL adds within a second of adding it', async () => {
    const started = performance.now();
    const added = await lead.request('POST', '/api/search-terms', { term: 'Skull Breaker Challenge', theme: 'bullying_harassment' });
    expect(added.status).toBe(201);
    for (;;) {
      expect((await searchFor('skull+breaker+challenge+video')).status).toBe(200);
      if ((await searchAlerts()).length === 2) break;
      expect(performance.now() - started, 'the new term alerting').toBeLessThan(1_000);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await searchAlerts())[1]).toContain('bullying or harassment ("skull breaker challenge")');
  });
});
