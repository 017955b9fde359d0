// Safeguarding search terms on the whole program (startPortcullis, wired as
// `portcullis start` is): a plain-HTTP search through the running proxy
// raises a search_term alert that reaches the webhook, and a term the DSL
// adds over the admin API alerts within a second.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPortcullis, type RunningPortcullis } from '../../cli/start.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { addUser } from '../../core/users.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { importSmallLists, startInternetStandIn, waitUntil, type InternetStandIn } from '../support/internet-stand-in.js';
import { requestViaProxy } from '../support/proxy-harness.js';

const PASSWORD = 'search-terms-live-pw';

describe('search terms on a running Portcullis', () => {
  let db: TestDatabase;
  let dataDir: string;
  let internet: InternetStandIn;
  let running: RunningPortcullis;
  let receiver: http.Server;
  const hooks: Array<{ alert: { kind: string; summary: string; accessLogIds: string[] } }> = [];
  let adminBase: string;
  let session: { cookie: string; csrfToken: string };

  beforeAll(async () => {
    db = await createTestDatabase();
    await importSmallLists(db.pool, { gambling: ['888casino.com'] });
    internet = await startInternetStandIn();
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        hooks.push(JSON.parse(Buffer.concat(chunks).toString()));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-search-terms-'));
    await chmod(dataDir, 0o711);
    running = await startPortcullis(
      loadConfig({
        DATABASE_URL: db.url,
        DATA_DIR: dataDir,
        PROXY_HOST: '127.0.0.1',
        PROXY_PORT: '0',
        ADMIN_HOST: '127.0.0.1',
        ADMIN_PORT: '0',
        ADMIN_PASSWORD: 'search-terms-admin-pw',
        UPSTREAM_PROXY: internet.parentUrl,
        ALERT_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
        LOG_LEVEL: 'silent',
      }),
      createLogger('silent'),
    );
    adminBase = `http://127.0.0.1:${running.adminAddress.port}`;
    const { rows } = await db.pool.query<{ id: number }>('SELECT id FROM schools ORDER BY id LIMIT 1');
    await addUser(db.pool, { schoolId: rows[0].id, username: 'lead', groupKey: 'staff', roles: ['staff', 'dsl'], password: PASSWORD });
    const login = await fetch(`${adminBase}/api/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'lead', password: PASSWORD }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.getSetCookie().find((c) => c.startsWith('portcullis_session='));
    if (!cookie) throw new Error('no session cookie from /api/login');
    session = { cookie: cookie.split(';')[0], csrfToken: ((await login.json()) as { csrfToken: string }).csrfToken };
  }, 60_000);

  afterAll(async () => {
    await running?.stop();
    await internet?.close();
    await new Promise((resolve) => receiver?.close(resolve));
    await db?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
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
    const added = await fetch(`${adminBase}/api/search-terms`, {
      method: 'POST',
      headers: { cookie: session.cookie, 'x-csrf-token': session.csrfToken, 'Content-Type': 'application/json' },
      body: JSON.stringify({ term: 'Skull Breaker Challenge', theme: 'bullying_harassment' }),
    });
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
