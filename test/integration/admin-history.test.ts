// Reading one person's browsing history: who may read whose, the
// investigation window and expiry, that every read and refusal is audited,
// paging and filters, the streamed CSV export, and bad input.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';
import { recordVisits, type Visit } from '../support/browsing.js';

let h: AdminHarness;
const now = Date.now();
const hoursAgo = (hours: number) => new Date(now - hours * 3_600_000);

interface Person {
  id: number;
  username: string;
  session: SignedIn;
}

type Cast = 'admin' | 'dsl' | 'head' | 'gov1' | 'gov2' | 'teacher' | 'teacher2' | 'pupil' | 'pupil2' | 'csvPupil';
const people = {} as Record<Cast, Person>;

interface Entry {
  id: string;
  time: string;
  host: string;
  path: string | null;
  categories: string[];
  action: string;
}
interface HistoryPage {
  subject: { id: number; username: string };
  access: { basis: string; investigationId?: number; windowStart?: string; windowEnd?: string };
  items: Entry[];
  nextCursor: string | null;
}

async function person(username: string, roles: Parameters<AdminHarness['createUser']>[1], groupKey = 'staff'): Promise<Person> {
  const id = await h.createUser(username, roles, groupKey);
  return { id, username, session: await h.signIn(username) };
}

function history(reader: Person, subject: Person, query: Record<string, string | number> = {}) {
  const q = Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)]));
  return h.as(reader.session, { method: 'GET', url: `/api/users/${subject.id}/history`, query: q });
}

async function historyAuditRows() {
  const { rows } = await h.db.pool.query<{ actor_username: string; action: string; target: string; detail: Record<string, unknown> }>(
    "SELECT actor_username, action, target, detail FROM audit_log WHERE action LIKE 'history.%' ORDER BY id",
  );
  return rows;
}

async function lastHistoryAudit() {
  const rows = await historyAuditRows();
  return rows[rows.length - 1];
}

/** Visits by `who`, one per entry of [hoursAgo, host, extra]. */
function visitsOf(who: Person, groupKey: string, list: Array<[number, string, Partial<Visit>?]>): Visit[] {
  return list.map(([hours, host, extra]) => ({ user: who, groupKey, time: hoursAgo(hours), host, ...extra }));
}

async function requestAndApprove(requester: Person, approver: Person, subject: Person, window: [number, number]) {
  const requested = await h.as(requester.session, {
    method: 'POST',
    url: '/api/investigations',
    payload: {
      subjectUserId: subject.id,
      reason: 'allegation received by the headteacher',
      windowStart: hoursAgo(window[0]).toISOString(),
      windowEnd: hoursAgo(window[1]).toISOString(),
      expiresAt: new Date(now + 7 * 86_400_000).toISOString(),
    },
  });
  expect(requested.statusCode, requested.body).toBe(201);
  const id = requested.json().id as number;
  const approved = await h.as(approver.session, { method: 'POST', url: `/api/investigations/${id}/approve`, payload: { note: 'proportionate' } });
  expect(approved.statusCode, approved.body).toBe(200);
  return id;
}

beforeAll(async () => {
  h = await startAdminHarness();
  people.admin = await person('admin', ['staff', 'it_admin']);
  people.dsl = await person('dsl', ['staff', 'dsl']);
  people.head = await person('head', ['staff', 'headteacher']);
  people.gov1 = await person('gov1', ['governor']);
  people.gov2 = await person('gov2', ['governor']);
  people.teacher = await person('t.jones', ['staff']);
  people.teacher2 = await person('k.smith', ['staff']);
  people.pupil = await person('p.one', [], 'pupils');
  people.pupil2 = await person('p.two', [], 'pupils');
  people.csvPupil = await person('p.csv', [], 'pupils');

  await recordVisits(h.db.pool, h.schoolId, [
    ...visitsOf(people.teacher, 'staff', [
      [240, 'old.example.com'],
      [100, 'news.example.com'],
      [50, 'shop.example.net', { action: 'block', categories: ['shopping'] }],
      [30, 'mail.example.com'],
      [2, 'recent.example.com'],
    ]),
    ...visitsOf(people.teacher2, 'staff', [[5, 'teacher2.example.com']]),
    ...visitsOf(people.admin, 'staff', [[4, 'admin-own.example.com']]),
    ...visitsOf(people.head, 'staff', [
      [60, 'head-a.example.com'],
      [3, 'head-b.example.com'],
    ]),
    ...visitsOf(people.pupil, 'pupils', [
      [9, 'games.example.org', { action: 'block', categories: ['games'] }],
      [8, 'gamesite.com', { action: 'block', categories: ['games', 'chat'] }],
      [7, 'www.bbc.co.uk'],
      [6, 'a_b.example'],
      [6, 'axb.example'],
      [5, 'www.wikipedia.org', { action: 'monitor', categories: ['forums'] }],
      [1, 'classroom.google.com'],
    ]),
    ...visitsOf(people.pupil2, 'pupils', [[3, 'pupil2.example.com']]),
    ...visitsOf(people.csvPupil, 'pupils', [
      [4, 'csv.example.com', { path: '/search?q=a,b "quoted"\nnext line', rule: 'pupils: allowed, by default' }],
      [3, 'csv.example.com', { path: '=HYPERLINK("http://evil.example","click")', rule: '+SUM(A1)' }],
      [2, 'csv.example.com', { path: '-2+3', rule: '@cmd' }],
    ]),
  ]);
});

afterAll(() => h.close());

describe('who may read whose history', () => {
  it('lets anyone read their own history, and only their own', async () => {
    const own = await history(people.teacher, people.teacher);
    expect(own.statusCode).toBe(200);
    const page = own.json() as HistoryPage;
    expect(page.access).toEqual({ basis: 'self' });
    expect(page.items.map((e) => e.host)).toEqual([
      'recent.example.com',
      'mail.example.com',
      'shop.example.net',
      'news.example.com',
      'old.example.com',
    ]);

    const other = await history(people.teacher, people.teacher2);
    expect(other.statusCode).toBe(403);
    expect(other.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(other.body).not.toContain('teacher2.example.com');
    const refusal = await lastHistoryAudit();
    expect(refusal).toMatchObject({ actor_username: 't.jones', action: 'history.refused', target: 'user:k.smith', detail: { userId: people.teacher2.id } });
  });

  it("does not let an it_admin read anyone's history but their own", async () => {
    expect((await history(people.admin, people.admin)).json().items.map((e: Entry) => e.host)).toEqual(['admin-own.example.com']);
    for (const subject of [people.teacher, people.pupil, people.head]) {
      const res = await history(people.admin, subject);
      expect(res.statusCode, subject.username).toBe(403);
      expect(await lastHistoryAudit()).toMatchObject({ actor_username: 'admin', action: 'history.refused', target: `user:${subject.username}` });
    }
  });

  it("lets the DSL read pupils' histories but not staff's", async () => {
    const pupil = await history(people.dsl, people.pupil);
    expect(pupil.statusCode).toBe(200);
    expect((pupil.json() as HistoryPage).access).toEqual({ basis: 'pupil' });
    expect((pupil.json() as HistoryPage).items).toHaveLength(7);
    expect(await lastHistoryAudit()).toMatchObject({ actor_username: 'dsl', action: 'history.read', target: 'user:p.one', detail: { basis: 'pupil', rows: 7 } });
    for (const subject of [people.teacher, people.head]) {
      expect((await history(people.dsl, subject)).statusCode).toBe(403);
    }
  });

  it("refuses a staff member's history to the headteacher until a governor approves, then shows only the window until expiry", async () => {
    const noInvestigation = await history(people.head, people.teacher);
    expect(noInvestigation.statusCode).toBe(403);
    expect(noInvestigation.json().detail).toMatch(/investigation/);

    const requested = await h.as(people.head.session, {
      method: 'POST',
      url: '/api/investigations',
      payload: {
        subjectUserId: people.teacher.id,
        reason: 'complaint about use of school laptop',
        windowStart: hoursAgo(120).toISOString(),
        windowEnd: hoursAgo(20).toISOString(),
        expiresAt: new Date(now + 7 * 86_400_000).toISOString(),
      },
    });
    const investigationId = requested.json().id as number;
    const unapproved = await history(people.head, people.teacher, { investigationId });
    expect(unapproved.statusCode).toBe(403);
    expect(unapproved.json().detail).toMatch(/not been approved/);
    expect(await lastHistoryAudit()).toMatchObject({
      action: 'history.refused',
      target: 'user:t.jones',
      detail: { investigationId, reason: expect.stringMatching(/not been approved/) },
    });

    await h.as(people.gov1.session, { method: 'POST', url: `/api/investigations/${investigationId}/approve`, payload: { note: 'agreed' } });
    const approved = await history(people.head, people.teacher, { investigationId });
    expect(approved.statusCode).toBe(200);
    const page = approved.json() as HistoryPage;
    expect(page.access).toMatchObject({ basis: 'investigation', investigationId, windowStart: hoursAgo(120).toISOString() });
    expect(page.items.map((e) => e.host)).toEqual(['mail.example.com', 'shop.example.net', 'news.example.com']);
    expect(await lastHistoryAudit()).toMatchObject({
      actor_username: 'head',
      action: 'history.read',
      target: 'user:t.jones',
      detail: { basis: 'investigation', investigationId, rows: 3, filters: { investigationId } },
    });

    // Asking for more than the window gives no more than the window.
    const wider = await history(people.head, people.teacher, { investigationId, from: hoursAgo(1000).toISOString(), to: new Date(now).toISOString() });
    expect((wider.json() as HistoryPage).items.map((e) => e.host)).toEqual(['mail.example.com', 'shop.example.net', 'news.example.com']);
    const outside = await history(people.head, people.teacher, { investigationId, from: hoursAgo(10).toISOString() });
    expect(outside.statusCode).toBe(200);
    expect((outside.json() as HistoryPage).items).toEqual([]);
    const exported = await h.as(people.head.session, {
      method: 'GET',
      url: `/api/users/${people.teacher.id}/history/export`,
      query: { investigationId: String(investigationId) },
    });
    expect(exported.statusCode).toBe(200);
    expect(exported.body).toContain('mail.example.com');
    expect(exported.body).not.toContain('old.example.com');
    expect(exported.body).not.toContain('recent.example.com');

    // The investigation is about t.jones only.
    expect((await history(people.head, people.teacher2, { investigationId })).statusCode).toBe(403);
    // Governors approve; they do not read a member of staff's history.
    expect((await history(people.gov1, people.teacher, { investigationId })).statusCode).toBe(403);

    // Time passes: the approval lapses at its expiry.
    await h.db.pool.query(
      "UPDATE investigations SET requested_at = requested_at - interval '8 days', expires_at = now() - interval '1 second' WHERE id = $1",
      [investigationId],
    );
    const expired = await history(people.head, people.teacher, { investigationId });
    expect(expired.statusCode).toBe(403);
    expect(expired.json().detail).toMatch(/expired/);
    const expiredExport = await h.as(people.head.session, {
      method: 'GET',
      url: `/api/users/${people.teacher.id}/history/export`,
      query: { investigationId: String(investigationId) },
    });
    expect(expiredExport.statusCode).toBe(403);
    expect(await lastHistoryAudit()).toMatchObject({ action: 'history.refused', detail: { investigationId } });
  });

  it('stops access when an investigation is closed early', async () => {
    const investigationId = await requestAndApprove(people.head, people.gov2, people.teacher2, [48, 1]);
    expect((await history(people.head, people.teacher2, { investigationId })).statusCode).toBe(200);
    const closed = await h.as(people.head.session, { method: 'POST', url: `/api/investigations/${investigationId}/close`, payload: {} });
    expect(closed.statusCode).toBe(200);
    expect((await history(people.head, people.teacher2, { investigationId })).statusCode).toBe(403);
  });

  it('keeps an investigation into the headteacher from them, and lets governors only read under it', async () => {
    const investigationId = await requestAndApprove(people.gov1, people.gov2, people.head, [100, 10]);
    const listed = await h.as(people.head.session, { method: 'GET', url: '/api/investigations' });
    expect(listed.json().items.map((i: { id: number }) => i.id)).not.toContain(investigationId);
    expect((await h.as(people.head.session, { method: 'GET', url: `/api/investigations/${investigationId}` })).statusCode).toBe(404);

    // Their own history they may read, but naming the investigation shows them nothing about it.
    const own = await history(people.head, people.head, { investigationId });
    expect(own.statusCode).toBe(200);
    expect((own.json() as HistoryPage).access).toEqual({ basis: 'self' });

    for (const governor of [people.gov1, people.gov2]) {
      const read = await history(governor, people.head, { investigationId });
      expect(read.statusCode).toBe(200);
      expect((read.json() as HistoryPage).items.map((e) => e.host)).toEqual(['head-a.example.com']);
      expect(await lastHistoryAudit()).toMatchObject({ actor_username: governor.username, action: 'history.read', target: 'user:head', detail: { investigationId } });
    }
    for (const reader of [people.dsl, people.admin, people.teacher]) {
      expect((await history(reader, people.head, { investigationId })).statusCode, reader.username).toBe(403);
    }
    expect((await history(people.gov1, people.head)).statusCode).toBe(403);
  });

  it('audits a read of an unknown user as refused, with a 404', async () => {
    const res = await h.as(people.dsl.session, { method: 'GET', url: '/api/users/999999/history' });
    expect(res.statusCode).toBe(404);
    expect(await lastHistoryAudit()).toMatchObject({ action: 'history.refused', target: 'user-id:999999' });
  });

  it('audits every read and refusal, with the filters asked for', async () => {
    const before = (await historyAuditRows()).length;
    await history(people.dsl, people.pupil, { host: 'games', action: 'blocked' });
    await history(people.dsl, people.teacher);
    await h.as(people.dsl.session, { method: 'GET', url: `/api/users/${people.pupil.id}/history/export` });
    const rows = (await historyAuditRows()).slice(before);
    expect(rows.map((r) => [r.action, r.target])).toEqual([
      ['history.read', 'user:p.one'],
      ['history.refused', 'user:t.jones'],
      ['history.export', 'user:p.one'],
    ]);
    expect(rows[0].detail).toMatchObject({ filters: { host: 'games', action: 'blocked' }, rows: 2, investigationId: null });
    expect((await h.as(people.admin.session, { method: 'GET', url: '/api/audit/verify' })).json()).toMatchObject({ ok: true });
  });
});

describe('paging and filters', () => {
  it('pages newest first with a stable order, even for rows at the same instant', async () => {
    const seen: Entry[] = [];
    let cursor: string | null = null;
    do {
      const res = await history(people.dsl, people.pupil, { limit: 2, ...(cursor ? { cursor } : {}) });
      expect(res.statusCode).toBe(200);
      const page = res.json() as HistoryPage;
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    const all = (await history(people.dsl, people.pupil)).json() as HistoryPage;
    expect(seen.map((e) => e.id)).toEqual(all.items.map((e) => e.id));
    expect(new Set(seen.map((e) => e.id)).size).toBe(7);
    const times = seen.map((e) => Date.parse(e.time));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('filters by host (substring or prefix, wildcards literal), category, action and time', async () => {
    const hosts = async (query: Record<string, string>) =>
      ((await history(people.dsl, people.pupil, query)).json() as HistoryPage).items.map((e) => e.host);
    expect(await hosts({ host: 'games' })).toEqual(['gamesite.com', 'games.example.org']);
    expect(await hosts({ host: 'Games', hostMatch: 'prefix' })).toEqual(['gamesite.com', 'games.example.org']);
    expect(await hosts({ host: 'example', hostMatch: 'prefix' })).toEqual([]);
    expect(await hosts({ host: 'a_b' })).toEqual(['a_b.example']);
    expect(await hosts({ category: 'chat' })).toEqual(['gamesite.com']);
    expect(await hosts({ action: 'monitored' })).toEqual(['www.wikipedia.org']);
    expect(await hosts({ from: hoursAgo(7.5).toISOString(), to: hoursAgo(5.5).toISOString() }).then((h) => h.sort())).toEqual(
      ['a_b.example', 'axb.example', 'www.bbc.co.uk'],
    );
  });
});

/** The whole body of a GET over a real socket, as the chunks it arrived in. */
function getOverSocket(url: string, headers: http.OutgoingHttpHeaders): Promise<{ res: http.IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ res, body }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** RFC 4180 parsing, to read back what the export wrote. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\r' && text[i + 1] === '\n') row.push(field), rows.push(row), (row = []), (field = ''), i++;
    else field += c;
  }
  return rows;
}

describe('CSV export', () => {
  it('escapes commas, quotes and newlines and neutralises formulas', async () => {
    const res = await h.as(people.dsl.session, { method: 'GET', url: `/api/users/${people.csvPupil.id}/history/export` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="history-p\.csv-\d{4}-\d{2}-\d{2}\.csv"$/);
    const rows = parseCsv(res.body);
    const header = rows[0];
    const column = (name: string) => rows.slice(1).map((r) => r[header.indexOf(name)]);
    expect(header).toContain('path');
    expect(rows.slice(1).every((r) => r.length === header.length)).toBe(true);
    expect(column('path')).toEqual(['\'-2+3', '\'=HYPERLINK("http://evil.example","click")', '/search?q=a,b "quoted"\nnext line']);
    expect(column('rule')).toEqual(["'@cmd", "'+SUM(A1)", 'pupils: allowed, by default']);
    expect(column('username')).toEqual(['p.csv', 'p.csv', 'p.csv']);
    expect(res.body).toContain('"/search?q=a,b ""quoted""\nnext line"');
  });

  it('streams a large export batch by batch instead of building it in memory', async () => {
    const bulk = await person('p.bulk', [], 'pupils');
    const rows = 10_000;
    const visits: Visit[] = Array.from({ length: rows }, (_, i) => ({
      user: bulk,
      groupKey: 'pupils',
      time: new Date(now - 3_600_000 - i * 1000),
      host: `site-${i}.example.com`,
      // About 20 MB in all: far more than the socket buffers hold, so the server must wait for the reader.
      path: `/page/${'x'.repeat(2000)}`,
    }));
    await recordVisits(h.db.pool, h.schoolId, visits);

    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}/api/users/${bulk.id}/history/export`;
    const headers = { cookie: people.dsl.session.cookie };

    // Read the first chunk, then stop reading: the server must be holding its place in the result, not a finished copy of it.
    const paused = await new Promise<{ res: http.IncomingMessage; first: string }>((resolve, reject) => {
      http
        .get(url, { headers }, (res) => {
          res.setEncoding('utf8');
          res.once('data', (first: string) => {
            res.pause();
            resolve({ res, first });
          });
        })
        .on('error', reject);
    });
    expect(paused.res.statusCode).toBe(200);
    expect(paused.res.headers['transfer-encoding']).toBe('chunked');
    expect(paused.res.headers['content-length']).toBeUndefined();
    expect(paused.first.startsWith('time,username,')).toBe(true);
    // The export was audited before its first row left.
    expect(await lastHistoryAudit()).toMatchObject({ action: 'history.export', target: 'user:p.bulk' });
    const openExports = () =>
      h.db.pool
        .query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'")
        .then((r) => r.rows[0].n as number);
    await new Promise((r) => setTimeout(r, 300));
    expect(await openExports()).toBe(1);
    paused.res.destroy();

    const full = await getOverSocket(url, headers);
    const lines = parseCsv(full.body);
    expect(lines).toHaveLength(rows + 1);
    expect(lines[1][lines[0].indexOf('host')]).toBe('site-0.example.com');
    expect(lines[rows][lines[0].indexOf('host')]).toBe(`site-${rows - 1}.example.com`);
    expect(new Set(lines.slice(1).map((l) => l[lines[0].indexOf('host')])).size).toBe(rows);
    await new Promise((r) => setTimeout(r, 100));
    expect(await openExports()).toBe(0);
  });
});

describe('bad input', () => {
  it.each([
    ['a date that is not one', { from: '2024-02-30T00:00:00Z' }, 'query/from'],
    ['a date without an offset', { from: '2024-02-01T00:00:00' }, 'query/from'],
    ['a date in the year 0', { to: '0000-01-01T00:00:00Z' }, 'query/to'],
    ['to before from', { from: '2024-02-02T00:00:00Z', to: '2024-02-01T00:00:00Z' }, 'query/to'],
    ['SQL in the host filter', { host: "x' OR '1'='1" }, 'query/host'],
    ['a LIKE wildcard in the host filter', { host: '%' }, 'query/host'],
    ['a huge limit', { limit: '100000' }, 'query/limit'],
    ['a made-up cursor', { cursor: 'bm90LWEtY3Vyc29y' }, 'query/cursor'],
    ['a cursor with SQL in it', { cursor: Buffer.from(JSON.stringify(["2024-01-01T00:00:00Z'; DROP TABLE users; --", 'x'])).toString('base64url') }, 'query/cursor'],
    ['an unknown action', { action: 'deleted' }, 'query/action'],
    ['a category with SQL in it', { category: "games' --" }, 'query/category'],
    ['an investigation id that is not a number', { investigationId: '1 OR 1=1' }, 'query/investigationId'],
  ])('refuses %s with a 400', async (_what, query, param) => {
    const res = await h.as(people.dsl.session, { method: 'GET', url: `/api/users/${people.pupil.id}/history`, query });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()['invalid-params'].map((p: { name: string }) => p.name)).toContain(param);
  });

  it('refuses bad input to the export too, and a user id that is not one', async () => {
    const exported = await h.as(people.dsl.session, { method: 'GET', url: `/api/users/${people.pupil.id}/history/export`, query: { host: 'a b' } });
    expect(exported.statusCode).toBe(400);
    expect((await h.as(people.dsl.session, { method: 'GET', url: '/api/users/1.5/history' })).statusCode).toBe(400);
    expect((await h.as(people.dsl.session, { method: 'GET', url: '/api/users/abc/history' })).statusCode).toBe(400);
  });

  it('refuses the anonymous with 401', async () => {
    expect((await h.app.inject({ method: 'GET', url: `/api/users/${people.pupil.id}/history` })).statusCode).toBe(401);
    expect((await h.app.inject({ method: 'GET', url: `/api/users/${people.pupil.id}/history/export` })).statusCode).toBe(401);
  });
});
