// The admin API while Postgres is away, reached through a cable the test
// cuts: every route that needs the database says so with a 503 the client
// can act on, within its query timeout when Postgres hangs, and GET /metrics
// goes on answering a scraper whose token Postgres confirmed just before,
// since the access log's spool counters are what a monitor needs to see
// during an outage.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_CHECK_MS } from '../../core/db.js';
import { DATABASE_RETRY_AFTER_SECONDS } from '../../admin-api/problem.js';
import { startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';

const METRICS = 'portcullis_access_events_spooled_total 20\n';
// Shorter than in service (ADMIN_QUERY_TIMEOUT_MS), so that the hung cases end soon.
const QUERY_TIMEOUT_MS = 1_000;

let h: AdminHarness;
let admin: SignedIn;

beforeAll(async () => {
  h = await startAdminHarness({ throughCable: true, metrics: async () => METRICS, queryTimeoutMs: QUERY_TIMEOUT_MS });
  await h.createUser('admin', ['staff', 'it_admin']);
  await h.createUser('teacher', ['staff']);
  admin = await h.signIn('admin');
});
afterEach(async () => {
  await h.cable!.mend();
});
afterAll(() => h.close());

async function newToken(who: SignedIn, name: string): Promise<{ id: number; token: string }> {
  const res = await h.as(who, { method: 'POST', url: '/api/tokens', payload: { name } });
  expect(res.statusCode).toBe(201);
  return res.json() as { id: number; token: string };
}

const scrape = (token: string) => h.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}` } });

function expectDatabaseUnavailable(res: Awaited<ReturnType<typeof scrape>>): void {
  expect(res.statusCode, res.body).toBe(503);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.headers['retry-after']).toBe(String(DATABASE_RETRY_AFTER_SECONDS));
  expect(res.json()).toMatchObject({ status: 503, title: 'Service unavailable', type: expect.stringMatching(/database-unavailable$/) });
  expect((res.json() as { detail: string }).detail).toMatch(/^the database could not be reached \(.+\); try again shortly/);
}

describe('the admin API while Postgres refuses connections', () => {
  it('answers routes that need the database with a 503 problem, not a 500', async () => {
    const { token } = await newToken(admin, 'script');
    expect((await h.app.inject({ method: 'GET', url: '/api/me', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
    await h.cable!.cut('refuse');

    expectDatabaseUnavailable(await h.app.inject({ method: 'GET', url: '/api/me', headers: { authorization: `Bearer ${token}` } }));
    expectDatabaseUnavailable(await h.as(admin, { method: 'GET', url: '/api/users' }));
    expectDatabaseUnavailable(await h.as(admin, { method: 'POST', url: '/api/tokens', payload: { name: 'during the outage' } }));
    expectDatabaseUnavailable(await h.app.inject({ method: 'POST', url: '/api/login', payload: { username: 'admin', password: 'x' } }));
    const health = await h.app.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(503);
    expect((health.json() as { database: string }).database).toMatch(/^unreachable: .*ECONNREFUSED/);

    await h.cable!.mend();
    expect((await h.app.inject({ method: 'GET', url: '/api/me', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200);
    expect((await h.as(admin, { method: 'GET', url: '/api/users' })).statusCode).toBe(200);
  });
});

describe('the admin API while Postgres hangs', () => {
  it("answers with a 503 once a request's query has waited its timeout, rather than for as long as Postgres hangs", async () => {
    // Sessions open and idle in the pool, as after a morning's use: the hang catches them mid-conversation.
    await Promise.all([1, 2, 3].map(() => h.as(admin, { method: 'GET', url: '/api/users' })));
    await h.cable!.cut('hang');
    for (const request of [
      { method: 'GET', url: '/api/users' },
      { method: 'POST', url: '/api/tokens', payload: { name: 'during the hang' } },
      { method: 'GET', url: '/api/users' },
    ] as const) {
      const began = performance.now();
      const res = await h.as(admin, request);
      expectDatabaseUnavailable(res);
      expect(performance.now() - began, request.url).toBeLessThan(QUERY_TIMEOUT_MS + 1_500);
    }
    await h.cable!.mend();
    expect((await h.as(admin, { method: 'GET', url: '/api/users' })).statusCode).toBe(200);
  });
});

describe('GET /metrics while Postgres is away', () => {
  for (const how of ['refuse', 'hang'] as const) {
    it(`answers a scraper whose token Postgres confirmed before it went away (${how})`, async () => {
      const scraper = await newToken(admin, `prometheus ${how}`);
      const unused = await newToken(admin, `never scraped ${how}`);
      expect((await scrape(scraper.token)).statusCode).toBe(200);
      await h.cable!.cut(how);

      for (let i = 0; i < 2; i++) {
        const began = performance.now();
        const res = await scrape(scraper.token);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.body).toBe(METRICS);
        expect(performance.now() - began).toBeLessThan(DATABASE_CHECK_MS + 1_500);
      }
      // A token Postgres never confirmed here, however real, cannot be checked.
      expectDatabaseUnavailable(await scrape(unused.token));
      expectDatabaseUnavailable(await scrape('pct_madeup'));
      // Nor does a session, which the memory does not cover.
      expectDatabaseUnavailable(await h.as(admin, { method: 'GET', url: '/metrics' }));

      await h.cable!.mend();
      expect((await scrape(scraper.token)).statusCode).toBe(200);
      expect((await scrape(unused.token)).statusCode).toBe(200);
    });
  }

  it('does not answer a token revoked before the outage, nor one whose owner is not an IT admin', async () => {
    const revoked = await newToken(admin, 'revoked');
    expect((await scrape(revoked.token)).statusCode).toBe(200);
    expect((await h.as(admin, { method: 'DELETE', url: `/api/tokens/${revoked.id}` })).statusCode).toBe(204);
    const refused = await scrape(revoked.token);
    expect(refused.statusCode).toBe(401);
    const teacher = await newToken(await h.signIn('teacher'), 'curious');
    expect((await scrape(teacher.token)).statusCode).toBe(403);

    await h.cable!.cut('refuse');
    expectDatabaseUnavailable(await scrape(revoked.token));
    expect((await scrape(teacher.token)).statusCode).toBe(403);
  });

  it('forgets a token whose owner is disabled by any means once Postgres answers again', async () => {
    const owner = await h.createUser('leaving-admin', ['staff', 'it_admin']);
    const { token } = await newToken(await h.signIn('leaving-admin'), 'leaver');
    expect((await scrape(token)).statusCode).toBe(200);
    // Straight in the database, as the CLI would: the API's own process is not told.
    await h.db.pool.query('UPDATE users SET disabled = true WHERE id = $1', [owner]);
    expect((await scrape(token)).statusCode).toBe(401);
    await h.cable!.cut('hang');
    expectDatabaseUnavailable(await scrape(token));
  });
});
