// Aggregate reports: totals by category, group and day from the daily
// rollup, the most-blocked hosts from the access log, who may see them, that
// they name nobody, and bad input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rollupDay } from '../../access-log/rollup.js';
import type { Role } from '../../core/users.js';
import { startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';
import { recordVisits, type Visit } from '../support/browsing.js';

let h: AdminHarness;
const sessions = {} as Record<Role, SignedIn>;
const usernames = ['rep-admin', 'rep-dsl', 'rep-head', 'rep-gov', 'rep-staff', 't.jones', 'p.one'];

interface Row {
  key: string | null;
  name: string;
  allowed: number;
  blocked: number;
  monitored: number;
  bytes: number;
}

function report(as: SignedIn, url: string, query: Record<string, string>) {
  return h.as(as, { method: 'GET', url, query });
}

async function requestsBy(by: string, from = '2025-03-10', to = '2025-03-12'): Promise<Row[]> {
  const res = await report(sessions.it_admin, '/api/reports/requests', { from, to, by });
  expect(res.statusCode, res.body).toBe(200);
  for (const name of usernames) expect(res.body).not.toContain(name);
  return res.json().rows as Row[];
}

const counts = (row: Row | undefined) => row && { allowed: row.allowed, blocked: row.blocked, monitored: row.monitored };

beforeAll(async () => {
  h = await startAdminHarness();
  const roles: Role[] = ['it_admin', 'dsl', 'headteacher', 'governor', 'staff'];
  for (const [i, role] of roles.entries()) {
    await h.createUser(usernames[i], [role]);
    sessions[role] = await h.signIn(usernames[i]);
  }
  const teacher = { id: await h.createUser('t.jones', ['staff']), username: 't.jones' };
  const pupil = { id: await h.createUser('p.one', [], 'pupils'), username: 'p.one' };

  const times = (n: number, visit: Omit<Visit, 'time'> & { time: string }): Visit[] =>
    Array.from({ length: n }, (_, i) => ({ ...visit, time: new Date(Date.parse(visit.time) + i * 1000) }));
  // March: London is on GMT, so UTC noon is local noon.
  const visits: Visit[] = [
    ...times(2, { user: teacher, groupKey: 'staff', time: '2025-03-10T12:00:00Z', host: 'news.example.com' }),
    ...times(1, { user: teacher, groupKey: 'staff', time: '2025-03-10T12:00:00Z', host: 'bet.example.com', action: 'block', categories: ['gambling'] }),
    ...times(3, { user: pupil, groupKey: 'pupils', time: '2025-03-10T13:00:00Z', host: 'games.example.org', action: 'block', categories: ['games'] }),
    ...times(1, { user: pupil, groupKey: 'pupils', time: '2025-03-10T13:00:00Z', host: 'chat.example.org', action: 'block', categories: ['games', 'chat'] }),
    ...times(1, { user: pupil, groupKey: 'pupils', time: '2025-03-10T14:00:00Z', host: 'www.bbc.co.uk' }),
    ...times(1, { user: null, groupKey: 'guests', time: '2025-03-10T15:00:00Z', host: 'bet.example.com', action: 'block', categories: ['gambling'] }),
    ...times(2, { user: pupil, groupKey: 'pupils', time: '2025-03-11T10:00:00Z', host: 'forum.example.net', action: 'monitor', categories: ['forums'] }),
    ...times(1, { user: pupil, groupKey: 'pupils', time: '2025-03-11T11:00:00Z', host: 'games.example.org', action: 'block', categories: ['games'] }),
    // Outside the range asked for below.
    ...times(5, { user: teacher, groupKey: 'staff', time: '2025-03-13T09:00:00Z', host: 'games.example.org', action: 'block', categories: ['games'] }),
    // 23:30 UTC on 10 June is 00:30 on 11 June in London (BST).
    ...times(1, { user: pupil, groupKey: 'pupils', time: '2025-06-10T23:30:00Z', host: 'late.example.com', action: 'block', categories: ['games'] }),
  ];
  await recordVisits(h.db.pool, h.schoolId, visits);
  for (const day of ['2025-03-10', '2025-03-11', '2025-03-12', '2025-03-13', '2025-06-10', '2025-06-11']) await rollupDay(h.db.pool, day);
});

afterAll(() => h.close());

describe('requests report (from the rollup)', () => {
  it('totals by category; a request in two categories counts in each, uncategorised has no key', async () => {
    const rows = await requestsBy('category');
    const byKey = new Map(rows.map((r) => [r.key, r]));
    expect(counts(byKey.get('games'))).toEqual({ allowed: 0, blocked: 5, monitored: 0 });
    expect(counts(byKey.get('gambling'))).toEqual({ allowed: 0, blocked: 2, monitored: 0 });
    expect(counts(byKey.get('chat'))).toEqual({ allowed: 0, blocked: 1, monitored: 0 });
    expect(counts(byKey.get('forums'))).toEqual({ allowed: 0, blocked: 0, monitored: 2 });
    expect(byKey.get(null)).toMatchObject({ name: 'Uncategorised', allowed: 3, blocked: 0 });
    expect(byKey.get('gambling')!.name).not.toBe('gambling');
    expect(rows).toHaveLength(5);
    // Most blocked first.
    expect(rows[0].key).toBe('games');
    expect(byKey.get('games')!.bytes).toBe(5 * 2100);
  });

  it('totals by group, counting the unidentified under their group', async () => {
    const rows = await requestsBy('group');
    const byKey = new Map(rows.map((r) => [r.key, r]));
    expect(counts(byKey.get('staff'))).toEqual({ allowed: 2, blocked: 1, monitored: 0 });
    // The chat request sits in two categories, so the rollup holds it twice.
    expect(counts(byKey.get('pupils'))).toEqual({ allowed: 1, blocked: 6, monitored: 2 });
    expect(counts(byKey.get('guests'))).toEqual({ allowed: 0, blocked: 1, monitored: 0 });
    expect(rows.map((r) => r.key).sort()).toEqual(['guests', 'pupils', 'staff']);
  });

  it('totals by day, quiet days included, school local days', async () => {
    const rows = await requestsBy('day');
    expect(rows.map((r) => [r.key, counts(r)])).toEqual([
      ['2025-03-10', { allowed: 3, blocked: 7, monitored: 0 }],
      ['2025-03-11', { allowed: 0, blocked: 1, monitored: 2 }],
      ['2025-03-12', { allowed: 0, blocked: 0, monitored: 0 }],
    ]);
    const june = await requestsBy('day', '2025-06-10', '2025-06-11');
    expect(june.map((r) => [r.key, r.blocked])).toEqual([
      ['2025-06-10', 0],
      ['2025-06-11', 1],
    ]);
  });

  it('defaults to by category and covers a single day', async () => {
    const res = await report(sessions.governor, '/api/reports/requests', { from: '2025-03-11', to: '2025-03-11' });
    expect(res.json()).toMatchObject({ by: 'category', from: '2025-03-11', to: '2025-03-11' });
    expect((res.json().rows as Row[]).map((r) => r.key).sort()).toEqual(['forums', 'games']);
  });
});

describe('top blocked hosts (from the access log)', () => {
  it('ranks hosts by blocked requests with the usual category, naming nobody', async () => {
    const res = await report(sessions.dsl, '/api/reports/top-blocked-hosts', { from: '2025-03-10', to: '2025-03-12' });
    expect(res.statusCode).toBe(200);
    expect(res.json().rows).toEqual([
      { host: 'games.example.org', blocked: 4, category: 'games' },
      { host: 'bet.example.com', blocked: 2, category: 'gambling' },
      { host: 'chat.example.org', blocked: 1, category: 'games' },
    ]);
    for (const name of usernames) expect(res.body).not.toContain(name);
    const top = await report(sessions.dsl, '/api/reports/top-blocked-hosts', { from: '2025-03-10', to: '2025-03-13', limit: '1' });
    expect(top.json().rows).toEqual([{ host: 'games.example.org', blocked: 9, category: 'games' }]);
  });

  it("uses the school's local days", async () => {
    const hosts = async (day: string) =>
      (await report(sessions.headteacher, '/api/reports/top-blocked-hosts', { from: day, to: day })).json().rows.map((r: { host: string }) => r.host);
    expect(await hosts('2025-06-10')).toEqual([]);
    expect(await hosts('2025-06-11')).toEqual(['late.example.com']);
  });
});

describe('who may see reports', () => {
  it.each(['it_admin', 'dsl', 'headteacher', 'governor'] as const)('lets %s see them', async (role) => {
    expect((await report(sessions[role], '/api/reports/requests', { from: '2025-03-10', to: '2025-03-12' })).statusCode).toBe(200);
    expect((await report(sessions[role], '/api/reports/top-blocked-hosts', { from: '2025-03-10', to: '2025-03-12' })).statusCode).toBe(200);
  });

  it('refuses staff with 403 and the anonymous with 401', async () => {
    expect((await report(sessions.staff, '/api/reports/requests', { from: '2025-03-10', to: '2025-03-12' })).statusCode).toBe(403);
    expect((await report(sessions.staff, '/api/reports/top-blocked-hosts', { from: '2025-03-10', to: '2025-03-12' })).statusCode).toBe(403);
    expect((await h.app.inject({ method: 'GET', url: '/api/reports/requests?from=2025-03-10&to=2025-03-12' })).statusCode).toBe(401);
  });
});

describe('bad input', () => {
  it.each([
    ['/api/reports/requests', { from: '2025-03-12', to: '2025-03-10' }, 'query/to'],
    ['/api/reports/requests', { from: '2024-01-01', to: '2025-03-10' }, 'query/from'],
    ['/api/reports/requests', { from: '2025-02-30', to: '2025-03-10' }, 'query/from'],
    ['/api/reports/requests', { from: 'yesterday', to: '2025-03-10' }, 'query/from'],
    ['/api/reports/requests', { from: "2025-03-10' OR '1'='1", to: '2025-03-10' }, 'query/from'],
    ['/api/reports/requests', { from: '0000-03-10', to: '2025-03-10' }, 'query/from'],
    ['/api/reports/requests', { to: '2025-03-10' }, 'query/from'],
    ['/api/reports/requests', { from: '2025-03-10', to: '2025-03-12', by: 'user' }, 'query/by'],
    ['/api/reports/top-blocked-hosts', { from: '2025-01-01', to: '2025-03-10' }, 'query/from'],
    ['/api/reports/top-blocked-hosts', { from: '2025-03-10', to: '2025-03-12', limit: '100000' }, 'query/limit'],
    ['/api/reports/top-blocked-hosts', { from: '2025-03-10', to: '2025-03-12', limit: '-1' }, 'query/limit'],
  ])('%s refuses %o with a 400', async (url, query, param) => {
    const res = await report(sessions.it_admin, url, query);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()['invalid-params'].map((p: { name: string }) => p.name)).toContain(param);
  });
});
