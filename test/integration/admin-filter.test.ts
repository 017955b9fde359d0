// Running the filter through the admin API: categories, list entries,
// overrides, group rules, schedules, blocklist import jobs and "why is this
// blocked?". Who may do what, that bad input is refused with a clear 4xx,
// that a change reaches a running PolicyStore within a second, and that
// every change is audited with its actor.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdminApp } from '../../admin-api/app.js';
import { importBlocklists } from '../../blocklists/import.js';
import { loadListEntries } from '../../blocklists/load.js';
import { MatcherBuilder } from '../../blocklists/matcher.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { decide } from '../../core/policy/decide.js';
import { explainerOn } from '../../core/policy/explain.js';
import { PolicyStore } from '../../core/policy/store.js';
import type { Role } from '../../core/users.js';
import { startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';

// Europe/London: Tuesday 4 March 2025 is GMT, so local time = UTC.
const TUESDAY_10AM = '2025-03-04T10:00:00.000Z';
const TUESDAY_6PM = '2025-03-04T18:00:00.000Z';
const GAMBLING_DOMAIN = '000-online-casino.com'; // from /work/shared/ut1/gambling/domains
const UPLOAD_LIMIT = 64 * 1024;

let h: AdminHarness;
let admin: SignedIn;
let store: PolicyStore;
let dataDir: string;
/** An admin app like the harness's, with the running store's snapshot, its own data folder and a small upload limit. */
let filterApp: FastifyInstance;
let groupId: Record<string, number>;

beforeAll(async () => {
  h = await startAdminHarness();
  await h.createUser('admin', ['staff', 'it_admin']);
  admin = await h.signIn('admin');
  // A small real slice of UT1: the gambling lists.
  await importBlocklists(h.db.pool, '/work/shared/ut1/gambling');
  const groups = await h.db.pool.query<{ id: number; key: string }>('SELECT id, key FROM groups WHERE school_id = $1', [h.schoolId]);
  groupId = Object.fromEntries(groups.rows.map((g) => [g.key, g.id]));
  store = await PolicyStore.start({
    pool: h.db.pool,
    schoolId: h.schoolId,
    log: createLogger('silent'),
    debounceMs: 20,
    buildLists: async () => {
      const builder = new MatcherBuilder();
      await loadListEntries(h.db.pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
      return builder.build();
    },
  });
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-filter-'));
  filterApp = await buildAdminApp({
    config: { ...loadConfig({}), dataDir },
    pool: h.db.pool,
    log: createLogger('silent'),
    policyStatus: () => store.status(),
    metrics: async () => '',
    explainOnProxy: explainerOn(() => store.current),
    blocklistUploadLimitBytes: UPLOAD_LIMIT,
  });
  await filterApp.ready();
});

afterAll(async () => {
  await filterApp?.close();
  await store?.close();
  await h.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** filterApp.inject as the signed-in user (sessions live in the shared database). */
function onFilterApp(who: SignedIn, request: InjectOptions) {
  return filterApp.inject({ ...request, headers: { ...request.headers, cookie: who.cookie, 'x-csrf-token': who.csrfToken } });
}

async function signedInAs(username: string, roles: Role[], groupKey = 'staff'): Promise<SignedIn> {
  await h.createUser(username, roles, groupKey);
  return h.signIn(username);
}

async function auditCount(): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log');
  return rows[0].n;
}

async function lastAudit(): Promise<{ action: string; target: string; actor_username: string; detail: Record<string, unknown> }> {
  const { rows } = await h.db.pool.query('SELECT action, target, actor_username, detail FROM audit_log ORDER BY id DESC LIMIT 1');
  return rows[0];
}

async function ruleOf(groupKey: string, categoryKey: string) {
  const { rows } = await h.db.pool.query<{ id: number; action: string; reason: string; decided_by: string }>(
    `SELECT r.id, r.action, r.reason, r.decided_by FROM group_rules r JOIN categories c ON c.id = r.category_id
      WHERE r.group_id = $1 AND c.key = $2`,
    [groupId[groupKey], categoryKey],
  );
  return rows[0];
}

const why = (who: SignedIn, payload: object, app: 'harness' | 'filter' = 'harness') =>
  app === 'harness' ? h.as(who, { method: 'POST', url: '/api/why', payload }) : onFilterApp(who, { method: 'POST', url: '/api/why', payload });

describe('who may run the filter', () => {
  const itAdminOnly = [
    { method: 'PUT', url: '/api/categories/gambling/groups/1', payload: { enabled: false, reason: 'sneaky' } },
    { method: 'GET', url: '/api/list-entries' },
    { method: 'POST', url: '/api/list-entries', payload: { category: 'gambling', kind: 'domain', value: 'x.example' } },
    { method: 'DELETE', url: `/api/list-entries?category=gambling&kind=domain&value=${GAMBLING_DOMAIN}` },
    { method: 'GET', url: '/api/overrides' },
    { method: 'POST', url: '/api/overrides', payload: { action: 'allow', kind: 'domain', value: GAMBLING_DOMAIN, reason: 'sneaky' } },
    { method: 'POST', url: '/api/overrides/1/expire' },
    { method: 'DELETE', url: '/api/overrides/1' },
    { method: 'GET', url: '/api/filtering-record' },
    { method: 'GET', url: '/api/groups/1/rules' },
    { method: 'PUT', url: '/api/groups/1/rules/gambling', payload: { action: 'allow', reason: 'sneaky' } },
    { method: 'DELETE', url: '/api/groups/1/rules/gambling' },
    { method: 'GET', url: '/api/schedules' },
    { method: 'POST', url: '/api/schedules', payload: { key: 'sneaky', name: 'S', windows: [{ days: [1], start: '09:00', end: '10:00' }] } },
    { method: 'PATCH', url: '/api/schedules/1', payload: { name: 'Sneaky' } },
    { method: 'DELETE', url: '/api/schedules/1' },
    { method: 'GET', url: '/api/calendar' },
    { method: 'POST', url: '/api/calendar', payload: { kind: 'holiday', name: 'H', startsOn: '2025-01-01', endsOn: '2025-01-02' } },
    { method: 'PATCH', url: '/api/calendar/1', payload: { name: 'Sneaky' } },
    { method: 'DELETE', url: '/api/calendar/1' },
    { method: 'POST', url: '/api/blocklists/fetch', payload: { url: 'http://127.0.0.1:9/lists.tar.gz' } },
    { method: 'GET', url: '/api/blocklists/status' },
    { method: 'GET', url: '/api/blocklists/jobs/00000000-0000-4000-8000-000000000000' },
  ] as const;

  it.each(['staff', 'dsl', 'headteacher', 'governor'] as const)('refuses %s with 403 on every it_admin operation, changing nothing', async (role) => {
    const session = await signedInAs(`filter-${role}`, [role]);
    const before = await auditCount();
    for (const op of itAdminOnly) {
      const res = await h.as(session, { ...op });
      expect(res.statusCode, `${role} ${op.method} ${op.url}`).toBe(403);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    const upload = await onFilterApp(session, { method: 'POST', url: '/api/blocklists/upload', ...(await multipart('x.tar.gz', Buffer.from('x'))) });
    expect(upload.statusCode).toBe(403);
    expect(await auditCount()).toBe(before);
    expect((await ruleOf('staff', 'gambling')).action).toBe('block');
  });

  it('refuses the anonymous with 401', async () => {
    for (const op of [...itAdminOnly, { method: 'GET', url: '/api/categories' }, { method: 'POST', url: '/api/why', payload: { url: 'example.com' } }] as const) {
      expect((await h.app.inject({ ...op })).statusCode, `${op.method} ${op.url}`).toBe(401);
    }
  });

  it('lets every admin role read the categories, and no one else', async () => {
    for (const role of ['it_admin', 'dsl', 'headteacher'] as const) {
      const res = await h.as(await signedInAs(`cats-${role}`, [role]), { method: 'GET', url: '/api/categories' });
      expect(res.statusCode, role).toBe(200);
    }
    for (const role of ['staff', 'governor'] as const) {
      const res = await h.as(await signedInAs(`nocats-${role}`, [role]), { method: 'GET', url: '/api/categories' });
      expect(res.statusCode, role).toBe(403);
    }
  });
});

describe('categories', () => {
  it('lists every category with its metadata and entry counts', async () => {
    const res = await h.as(admin, { method: 'GET', url: '/api/categories' });
    const items = res.json().items as Array<Record<string, unknown>>;
    const gambling = items.find((c) => c.key === 'gambling');
    const { rows } = await h.db.pool.query<{ domains: number; urls: number }>(
      `SELECT count(*) FILTER (WHERE kind = 'domain')::int AS domains, count(*) FILTER (WHERE kind = 'url')::int AS urls
         FROM list_entries e JOIN categories c ON c.id = e.category_id WHERE c.key = 'gambling'`,
    );
    expect(rows[0].domains).toBeGreaterThan(30_000);
    expect(gambling).toMatchObject({ name: 'Gambling', severity: 'high', ukcisClass: 'gambling', illegal: false, source: 'ut1', ...rows[0], localEntries: 0 });
    expect(items.find((c) => c.key === 'iwf')).toMatchObject({ illegal: true, source: 'licensed', domains: 0 });
  });

  it("turns a category's filtering off and on for a group, through its rule", async () => {
    const off = await h.as(admin, { method: 'PUT', url: `/api/categories/dating/groups/${groupId.staff}`, payload: { enabled: false, reason: 'staff wellbeing scheme' } });
    expect(off.statusCode).toBe(200);
    expect(off.json()).toMatchObject({ groupKey: 'staff', category: 'dating', action: 'allow', reason: 'staff wellbeing scheme', decidedBy: 'admin' });
    expect(await lastAudit()).toMatchObject({ action: 'group_rule.set', target: 'group_rule:staff/dating', actor_username: 'admin' });
    const on = await h.as(admin, { method: 'PUT', url: `/api/categories/dating/groups/${groupId.staff}`, payload: { enabled: true, reason: 'scheme ended' } });
    expect(on.json()).toMatchObject({ action: 'block', reason: 'scheme ended' });
    expect((await lastAudit()).detail).toMatchObject({ action: 'block', previous: { action: 'allow', reason: 'staff wellbeing scheme' } });
  });

  it('refuses to allow an illegal category for anyone (409), by rule or by switch', async () => {
    const before = await auditCount();
    for (const action of ['allow', 'monitor'] as const) {
      const res = await h.as(admin, { method: 'PUT', url: `/api/groups/${groupId.staff}/rules/iwf`, payload: { action, reason: 'research' } });
      expect(res.statusCode).toBe(409);
      expect(res.json().detail).toMatch(/illegal content: it is always blocked/);
    }
    const during = await h.as(admin, {
      method: 'PUT',
      url: `/api/groups/${groupId.staff}/rules/ctiru`,
      payload: { action: 'block_during', schedule: 'school-hours', reason: 'research' },
    });
    expect(during.statusCode).toBe(409);
    const off = await h.as(admin, { method: 'PUT', url: `/api/categories/iwf/groups/${groupId.guests}`, payload: { enabled: false, reason: 'x' } });
    expect(off.statusCode).toBe(409);
    expect(await ruleOf('staff', 'iwf')).toBeUndefined();
    expect(await auditCount()).toBe(before);
  });

  it('names an unknown category or group with 404', async () => {
    const res = await h.as(admin, { method: 'PUT', url: `/api/categories/nonesuch/groups/${groupId.staff}`, payload: { enabled: true, reason: 'x' } });
    expect(res.statusCode).toBe(404);
    expect(res.json().detail).toBe('no category "nonesuch"');
    expect((await h.as(admin, { method: 'PUT', url: '/api/categories/gambling/groups/99999', payload: { enabled: true, reason: 'x' } })).statusCode).toBe(404);
  });
});

describe('group rules', () => {
  it("lists a group's rules with their schedules and record", async () => {
    const res = await h.as(admin, { method: 'GET', url: `/api/groups/${groupId.pupils}/rules` });
    expect(res.statusCode).toBe(200);
    const items = res.json().items as Array<Record<string, unknown>>;
    expect(items.find((r) => r.category === 'gambling')).toMatchObject({ action: 'block', schedule: null, decidedBy: 'portcullis' });
    expect(items.find((r) => r.category === 'forums')).toMatchObject({ action: 'block_during', schedule: 'school-hours' });
  });

  it('sets, replaces and deletes a rule, auditing each', async () => {
    const url = `/api/groups/${groupId.staff}/rules/games`;
    const set = await h.as(admin, { method: 'PUT', url, payload: { action: 'block_during', schedule: 'school-hours', reason: 'games after school only' } });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ action: 'block_during', schedule: 'school-hours', reason: 'games after school only', decidedBy: 'admin' });
    expect(await lastAudit()).toMatchObject({ action: 'group_rule.set', target: 'group_rule:staff/games', detail: { previous: { action: 'block' } } });
    const monitor = await h.as(admin, { method: 'PUT', url, payload: { action: 'monitor', reason: 'trial' } });
    expect(monitor.json()).toMatchObject({ action: 'monitor', schedule: null });
    const del = await h.as(admin, { method: 'DELETE', url });
    expect(del.statusCode).toBe(204);
    expect(await ruleOf('staff', 'games')).toBeUndefined();
    expect(await lastAudit()).toMatchObject({ action: 'group_rule.delete', actor_username: 'admin', detail: { action: 'monitor', reason: 'trial' } });
    expect((await h.as(admin, { method: 'DELETE', url })).statusCode).toBe(404);
  });

  it('refuses block_during without a schedule, an unknown schedule, a schedule on another action, and no reason', async () => {
    const url = `/api/groups/${groupId.staff}/rules/chat`;
    const before = await ruleOf('staff', 'chat');
    const cases: Array<[object, string]> = [
      [{ action: 'block_during', reason: 'x' }, 'body/schedule'],
      [{ action: 'block_during', schedule: 'nonesuch', reason: 'x' }, 'body/schedule'],
      [{ action: 'allow', schedule: 'school-hours', reason: 'x' }, 'body/schedule'],
      [{ action: 'allow' }, 'body/reason'],
      [{ action: 'allow', reason: '   ' }, 'body/reason'],
      [{ action: 'permit', reason: 'x' }, 'body/action'],
    ];
    for (const [payload, field] of cases) {
      const res = await h.as(admin, { method: 'PUT', url, payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json()['invalid-params'].map((p: { name: string }) => p.name), JSON.stringify(payload)).toContain(field);
    }
    expect(await ruleOf('staff', 'chat')).toEqual(before);
  });

  it('refuses, whole, a change after which the policy would not compile, naming the problem', async () => {
    // A schedule written straight into the database, past the API's checks: no policy compiles now.
    const { rows } = await h.db.pool.query<{ id: number }>(
      `INSERT INTO schedules (school_id, key, name, windows) VALUES ($1, 'broken', 'Broken', '[{"days":[9],"start":"09:00","end":"10:00"}]') RETURNING id`,
      [h.schoolId],
    );
    try {
      const before = await auditCount();
      const res = await h.as(admin, { method: 'PUT', url: `/api/groups/${groupId.staff}/rules/chat`, payload: { action: 'allow', reason: 'x' } });
      expect(res.statusCode).toBe(409);
      expect(res.json().detail).toMatch(/^the change was not made: .*schedule "broken".*day 9 is not an ISO weekday/);
      expect((await ruleOf('staff', 'chat')).action).toBe('block_during');
      expect(await auditCount()).toBe(before);
      const listed = await h.as(admin, { method: 'GET', url: '/api/schedules' });
      expect(listed.json().items.find((s: { key: string }) => s.key === 'broken').description).toMatch(/^invalid: .*day 9/);
    } finally {
      await h.db.pool.query('DELETE FROM schedules WHERE id = $1', [rows[0].id]);
    }
  });
});

describe('schedules and the calendar', () => {
  it('creates, changes and deletes a schedule, auditing each', async () => {
    const created = await h.as(admin, {
      method: 'POST',
      url: '/api/schedules',
      payload: { key: 'lunch', name: 'Lunchtime', windows: [{ days: [1, 2, 3, 4, 5], start: '12:00', end: '13:00' }] },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ key: 'lunch', termTimeOnly: false, description: 'Lunchtime (Mon–Fri 12:00–13:00)', rules: 0 });
    expect(await lastAudit()).toMatchObject({ action: 'schedule.create', target: 'schedule:lunch', actor_username: 'admin' });
    const id = created.json().id as number;
    const changed = await h.as(admin, { method: 'PATCH', url: `/api/schedules/${id}`, payload: { windows: [{ days: [3], start: '12:30', end: '13:30' }], termTimeOnly: true } });
    expect(changed.json()).toMatchObject({ description: 'Lunchtime (Wed 12:30–13:30)', termTimeOnly: true });
    expect(await lastAudit()).toMatchObject({ action: 'schedule.update', detail: { from: { termTimeOnly: false }, to: { termTimeOnly: true } } });
    expect((await h.as(admin, { method: 'POST', url: '/api/schedules', payload: { key: 'lunch', name: 'Again', windows: [{ days: [1], start: '09:00', end: '10:00' }] } })).statusCode).toBe(409);

    await h.as(admin, { method: 'PUT', url: `/api/groups/${groupId.staff}/rules/games`, payload: { action: 'block_during', schedule: 'lunch', reason: 'x' } });
    const inUse = await h.as(admin, { method: 'DELETE', url: `/api/schedules/${id}` });
    expect(inUse.statusCode).toBe(409);
    expect(inUse.json().detail).toMatch(/used by the rules staff\/games/);
    await h.as(admin, { method: 'PUT', url: `/api/groups/${groupId.staff}/rules/games`, payload: { action: 'block', reason: 'back to blocked' } });
    expect((await h.as(admin, { method: 'DELETE', url: `/api/schedules/${id}` })).statusCode).toBe(204);
    expect(await lastAudit()).toMatchObject({ action: 'schedule.delete', target: 'schedule:lunch' });
  });

  it('refuses bad weekly windows with 400 naming the window', async () => {
    const post = (windows: unknown) => h.as(admin, { method: 'POST', url: '/api/schedules', payload: { key: 'bad', name: 'Bad', windows } });
    const endBeforeStart = await post([{ days: [1], start: '15:00', end: '09:00' }]);
    expect(endBeforeStart.statusCode).toBe(400);
    expect(endBeforeStart.json().detail).toMatch(/window 1: end 09:00 must be after start 15:00/);
    for (const windows of [[], [{ days: [0], start: '09:00', end: '10:00' }], [{ days: [1], start: '25:00', end: '26:00' }], [{ days: [], start: '09:00', end: '10:00' }], 'always', [{ days: [1], start: '9:00', end: '10:00', extra: 1 }]]) {
      const res = await post(windows);
      expect(res.statusCode, JSON.stringify(windows)).toBe(400);
      expect(res.json()['invalid-params'][0].name, JSON.stringify(windows)).toMatch(/^body\/windows/);
    }
    expect((await h.db.pool.query("SELECT 1 FROM schedules WHERE key = 'bad'")).rowCount).toBe(0);
  });

  it('keeps term dates and holidays, refusing impossible ones', async () => {
    const term = await h.as(admin, { method: 'POST', url: '/api/calendar', payload: { kind: 'term', name: 'Spring term', startsOn: '2025-01-06', endsOn: '2025-04-04' } });
    expect(term.statusCode).toBe(201);
    expect(term.json()).toMatchObject({ kind: 'term', name: 'Spring term', startsOn: '2025-01-06', endsOn: '2025-04-04' });
    expect(await lastAudit()).toMatchObject({ action: 'calendar_period.create', actor_username: 'admin' });
    const id = term.json().id as number;
    const moved = await h.as(admin, { method: 'PATCH', url: `/api/calendar/${id}`, payload: { endsOn: '2025-04-11' } });
    expect(moved.json().endsOn).toBe('2025-04-11');
    expect(await lastAudit()).toMatchObject({ action: 'calendar_period.update', detail: { from: { endsOn: '2025-04-04' }, to: { endsOn: '2025-04-11' } } });
    const backwards = await h.as(admin, { method: 'PATCH', url: `/api/calendar/${id}`, payload: { startsOn: '2025-05-01' } });
    expect(backwards.statusCode).toBe(400);
    expect(backwards.json()['invalid-params']).toEqual([{ name: 'body/endsOn', reason: 'is before startsOn' }]);
    const notADate = await h.as(admin, { method: 'POST', url: '/api/calendar', payload: { kind: 'holiday', name: 'x', startsOn: '2025-02-30', endsOn: '2025-03-01' } });
    expect(notADate.statusCode).toBe(400);
    const list = await h.as(admin, { method: 'GET', url: '/api/calendar' });
    expect(list.json().items).toHaveLength(1);
    expect((await h.as(admin, { method: 'DELETE', url: `/api/calendar/${id}` })).statusCode).toBe(204);
    expect(await lastAudit()).toMatchObject({ action: 'calendar_period.delete', detail: { name: 'Spring term' } });
  });
});

describe('list entries', () => {
  it('adds a local entry, normalised, finds it, and removes it, auditing each', async () => {
    const add = await h.as(admin, { method: 'POST', url: '/api/list-entries', payload: { category: 'gambling', kind: 'domain', value: 'Bets.Example.ORG.', reason: 'seen in a lesson' } });
    expect(add.statusCode).toBe(201);
    expect(add.json()).toEqual({ category: 'gambling', kind: 'domain', value: 'bets.example.org', source: 'local' });
    expect(await lastAudit()).toMatchObject({ action: 'list_entry.add', target: 'list_entry:gambling/domain/bets.example.org', actor_username: 'admin' });
    const url = await h.as(admin, { method: 'POST', url: '/api/list-entries', payload: { category: 'gambling', kind: 'url', value: 'https://WWW.Example.org/Poker/' } });
    expect(url.json().value).toBe('www.example.org/Poker/');
    const again = await h.as(admin, { method: 'POST', url: '/api/list-entries', payload: { category: 'gambling', kind: 'domain', value: 'bets.example.org' } });
    expect(again.statusCode).toBe(409);

    const found = await h.as(admin, { method: 'GET', url: '/api/list-entries', query: { search: 'EXAMPLE.org', source: 'local' } });
    expect(found.json().items).toEqual([
      { category: 'gambling', kind: 'domain', value: 'bets.example.org', source: 'local' },
      { category: 'gambling', kind: 'url', value: 'www.example.org/Poker/', source: 'local' },
    ]);

    const removed = await h.as(admin, { method: 'DELETE', url: '/api/list-entries', query: { category: 'gambling', kind: 'url', value: 'www.example.org/Poker/' } });
    expect(removed.statusCode).toBe(204);
    expect(await lastAudit()).toMatchObject({ action: 'list_entry.remove', detail: { source: 'local' } });
    const imported = await h.as(admin, { method: 'DELETE', url: '/api/list-entries', query: { category: 'gambling', kind: 'domain', value: '0-casino.info' } });
    expect(imported.statusCode).toBe(204);
    expect(await lastAudit()).toMatchObject({ action: 'list_entry.remove', target: 'list_entry:gambling/domain/0-casino.info', detail: { source: 'import' } });
    const gone = await h.as(admin, { method: 'DELETE', url: '/api/list-entries', query: { category: 'gambling', kind: 'domain', value: '0-casino.info' } });
    expect(gone.statusCode).toBe(404);
  });

  it('searches by prefix and pages through the results with a cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string> = { search: '000', match: 'prefix', category: 'gambling', limit: '2', ...(cursor ? { cursor } : {}) };
      const res = await h.as(admin, { method: 'GET', url: '/api/list-entries', query });
      expect(res.statusCode).toBe(200);
      seen.push(...res.json().items.map((e: { value: string }) => e.value));
      cursor = res.json().nextCursor;
    } while (cursor);
    const { rows } = await h.db.pool.query<{ value: string }>(
      "SELECT value FROM list_entries e JOIN categories c ON c.id = e.category_id WHERE c.key = 'gambling' AND value LIKE '000%' ORDER BY kind, value",
    );
    expect(rows.length).toBeGreaterThan(4);
    expect(seen).toEqual(rows.map((r) => r.value));
  });

  it('treats SQL and LIKE wildcards in a search as plain text', async () => {
    for (const search of ["%' OR '1'='1", '%', "x'; DROP TABLE list_entries; --"]) {
      const res = await h.as(admin, { method: 'GET', url: '/api/list-entries', query: { search } });
      expect(res.statusCode, search).toBe(200);
      expect(res.json().items, search).toEqual([]);
    }
    const underscore = await h.as(admin, { method: 'GET', url: '/api/list-entries', query: { search: '_' } });
    expect(underscore.json().items.length).toBeGreaterThan(0);
    expect(underscore.json().items.every((e: { value: string }) => e.value.includes('_'))).toBe(true);
    expect((await h.db.pool.query('SELECT 1 FROM list_entries LIMIT 1')).rowCount).toBe(1);
  });

  it('refuses bad values, huge strings and made-up cursors with 400', async () => {
    const bad = [
      { category: 'gambling', kind: 'domain', value: 'not a domain' },
      { category: 'gambling', kind: 'domain', value: "example.com'; DROP TABLE list_entries; --" },
      { category: 'gambling', kind: 'url', value: 'example.com' },
      { category: 'gambling', kind: 'url', value: 'example.com/a path' },
      { category: 'gambling', kind: 'domain', value: 'a'.repeat(5000) },
      { category: 'gambling', kind: 'domain', value: 'nul\u0000.example' },
      { category: 'Gambling!', kind: 'domain', value: 'ok.example' },
      { category: 'gambling', kind: 'ip', value: 'ok.example' },
    ];
    for (const payload of bad) {
      const res = await h.as(admin, { method: 'POST', url: '/api/list-entries', payload });
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    const cursor = await h.as(admin, { method: 'GET', url: '/api/list-entries', query: { cursor: 'bm9wZQ' } });
    expect(cursor.statusCode).toBe(400);
    const unknown = await h.as(admin, { method: 'POST', url: '/api/list-entries', payload: { category: 'nonesuch', kind: 'domain', value: 'ok.example' } });
    expect(unknown.statusCode).toBe(404);
  });
});

describe('overrides', () => {
  it('is in effect in a running PolicyStore within a second of the API call', async () => {
    const host = 'fast-change.example';
    const guest = { userId: null, username: null, groupId: groupId.guests, groupKey: 'guests', source: 'default' as const };
    expect(decide(store.current, guest, { host, port: 443 }, new Date()).action).toBe('allow');
    const started = performance.now();
    const res = await h.as(admin, { method: 'POST', url: '/api/overrides', payload: { action: 'block', kind: 'domain', value: host, reason: 'phishing reported by staff' } });
    expect(res.statusCode).toBe(201);
    let decision = decide(store.current, guest, { host, port: 443 }, new Date());
    while (decision.action !== 'block' && performance.now() - started < 1000) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      decision = decide(store.current, guest, { host, port: 443 }, new Date());
    }
    const ms = performance.now() - started;
    expect(decision).toMatchObject({ action: 'block', ruleKind: 'override', ruleId: res.json().id });
    expect(decision.rule).toBe(`local override #${res.json().id} by admin: block fast-change.example ("phishing reported by staff")`);
    expect(ms).toBeLessThan(1000);
  });

  it('records who, why, when and expiry; lists active and expired; expires and deletes, auditing each', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const res = await h.as(admin, {
      method: 'POST',
      url: '/api/overrides',
      payload: { action: 'allow', kind: 'url', value: 'http://Games.Example/maths/', groupKey: 'pupils', reason: 'maths games for year 7', expiresAt },
    });
    expect(res.statusCode).toBe(201);
    const created = res.json();
    expect(created).toMatchObject({ action: 'allow', kind: 'url', value: 'games.example/maths/', groupKey: 'pupils', reason: 'maths games for year 7', decidedBy: 'admin', expiresAt, active: true });
    expect(await lastAudit()).toMatchObject({ action: 'override.create', target: `override:${created.id}`, actor_username: 'admin', detail: { reason: 'maths games for year 7' } });
    const duplicate = await h.as(admin, { method: 'POST', url: '/api/overrides', payload: { action: 'allow', kind: 'url', value: 'games.example/maths/', groupKey: 'pupils', reason: 'again' } });
    expect(duplicate.statusCode).toBe(409);

    const expired = await h.as(admin, { method: 'POST', url: `/api/overrides/${created.id}/expire` });
    expect(expired.json()).toMatchObject({ id: created.id, active: false });
    expect(await lastAudit()).toMatchObject({ action: 'override.expire', detail: { previousExpiresAt: expiresAt } });
    const active = await h.as(admin, { method: 'GET', url: '/api/overrides' });
    expect(active.json().items.map((o: { id: number }) => o.id)).not.toContain(created.id);
    const past = await h.as(admin, { method: 'GET', url: '/api/overrides', query: { status: 'expired' } });
    expect(past.json().items.map((o: { id: number }) => o.id)).toEqual([created.id]);

    expect((await h.as(admin, { method: 'DELETE', url: `/api/overrides/${created.id}` })).statusCode).toBe(204);
    expect(await lastAudit()).toMatchObject({ action: 'override.delete', detail: { value: 'games.example/maths/', reason: 'maths games for year 7' } });
    expect((await h.as(admin, { method: 'GET', url: `/api/overrides/${created.id}` })).statusCode).toBe(404);
  });

  it('requires a reason and refuses bad targets, past expiries, unknown groups, huge strings and SQL with 400', async () => {
    const before = await auditCount();
    const base = { action: 'block', kind: 'domain', value: 'ok.example', reason: 'why not' };
    const cases: Array<[object, string]> = [
      [{ action: 'block', kind: 'domain', value: 'ok.example' }, 'body/reason'],
      [{ ...base, reason: '' }, 'body/reason'],
      [{ ...base, reason: ' \t ' }, 'body/reason'],
      [{ ...base, reason: 'r'.repeat(1001) }, 'body/reason'],
      [{ ...base, value: 'bad domain.example' }, 'body/value'],
      [{ ...base, value: "ok.example' OR 1=1; --" }, 'body/value'],
      [{ ...base, value: 'x'.repeat(3000) }, 'body/value'],
      [{ ...base, kind: 'url', value: 'ok.example' }, 'body/value'],
      [{ ...base, groupKey: "pupils' OR '1'='1" }, 'body/groupKey'],
      [{ ...base, expiresAt: '2001-01-01T00:00:00Z' }, 'body/expiresAt'],
      [{ ...base, expiresAt: 'tomorrow' }, 'body/expiresAt'],
      [{ ...base, action: 'maybe' }, 'body/action'],
      [{ ...base, decidedBy: 'someone else' }, 'body/decidedBy'],
    ];
    for (const [payload, field] of cases) {
      const res = await h.as(admin, { method: 'POST', url: '/api/overrides', payload });
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(res.json()['invalid-params'].map((p: { name: string }) => p.name), JSON.stringify(payload).slice(0, 80)).toContain(field);
    }
    expect(await auditCount()).toBe(before);
  });

  it('refuses to allow a site on an illegal list (409)', async () => {
    const add = await h.as(admin, { method: 'POST', url: '/api/list-entries', payload: { category: 'iwf', kind: 'domain', value: 'abuse.example' } });
    expect(add.statusCode).toBe(201);
    const res = await h.as(admin, { method: 'POST', url: '/api/overrides', payload: { action: 'allow', kind: 'domain', value: 'www.abuse.example', reason: 'mistake?' } });
    expect(res.statusCode).toBe(409);
    expect(res.json().detail).toBe('www.abuse.example is listed in IWF child sexual abuse list: illegal content is always blocked, for everyone, and no override can allow it');
  });

  it('exports the filtering record, every override and group rule with reason, decider and time, as CSV and JSON', async () => {
    const formula = await h.as(admin, { method: 'POST', url: '/api/overrides', payload: { action: 'block', kind: 'domain', value: 'sheet.example', reason: '=HYPERLINK("x"), "quoted"' } });
    expect(formula.statusCode).toBe(201);
    const csv = await h.as(admin, { method: 'GET', url: '/api/filtering-record' });
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="filtering-record-\d{4}-\d{2}-\d{2}\.csv"$/);
    const lines = csv.body.trimEnd().split('\r\n');
    expect(lines[0]).toBe('record,id,action,targetKind,target,group,schedule,reason,decidedBy,decidedAt,expiresAt,status');
    expect(lines).toContain(`override,${formula.json().id},block,domain,sheet.example,all groups,,"'=HYPERLINK(""x""), ""quoted""",admin,${formula.json().decidedAt},,active`);
    const json = await h.as(admin, { method: 'GET', url: '/api/filtering-record', query: { format: 'json' } });
    const items = json.json().items as Array<Record<string, unknown>>;
    const counts = await h.db.pool.query<{ overrides: number; rules: number }>(
      'SELECT (SELECT count(*)::int FROM overrides) AS overrides, (SELECT count(*)::int FROM group_rules) AS rules',
    );
    expect(items.filter((i) => i.record === 'override')).toHaveLength(counts.rows[0].overrides);
    expect(items.filter((i) => i.record === 'group_rule')).toHaveLength(counts.rows[0].rules);
    expect(lines).toHaveLength(1 + items.length);
    expect(items.find((i) => i.record === 'group_rule' && i.target === 'dating' && i.group === 'staff')).toMatchObject({
      action: 'block',
      targetKind: 'category',
      reason: 'scheme ended',
      decidedBy: 'admin',
      status: 'active',
    });
    expect(items.find((i) => i.record === 'group_rule' && i.target === 'forums' && i.group === 'pupils')).toMatchObject({ action: 'block_during', schedule: 'school-hours' });
  });
});

describe('why is this blocked?', () => {
  it("answers for a UT1 gambling domain with the deciding rule, like the proxy", async () => {
    const res = await why(admin, { url: `https://WWW.${GAMBLING_DOMAIN.toUpperCase()}:443/play?x=1#top`, group: 'pupils', at: TUESDAY_10AM });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      host: `www.${GAMBLING_DOMAIN}`,
      path: '/play?x=1',
      user: null,
      group: 'pupils',
      at: TUESDAY_10AM,
      action: 'block',
      categories: [{ key: 'gambling', name: 'Gambling' }],
      category: { key: 'gambling', name: 'Gambling' },
      rule: 'pupils: gambling is blocked',
      ruleKind: 'group_rule',
      ruleId: (await ruleOf('pupils', 'gambling')).id,
      policy: 'compiled',
    });
    // A url entry (top-lasvegas.com/en) matches only with the path.
    const url = await why(admin, { url: 'top-lasvegas.com/en/slots', group: 'staff' });
    expect(url.json()).toMatchObject({ action: 'block', category: { key: 'gambling' } });
    expect((await why(admin, { url: 'top-lasvegas.com', group: 'staff' })).json()).toMatchObject({ action: 'allow', ruleKind: 'default' });
  });

  it('says 503, and why, when the proxy cannot answer (every worker restarting); health says degraded with no policy in service', async () => {
    const restarting = await buildAdminApp({
      config: { ...loadConfig({}), dataDir },
      pool: h.db.pool,
      log: createLogger('silent'),
      policyStatus: () => undefined,
      metrics: async () => '',
      explainOnProxy: async () => {
        throw new Error('no proxy worker answered within 2 s');
      },
    });
    try {
      const res = await restarting.inject({
        method: 'POST',
        url: '/api/why',
        payload: { url: GAMBLING_DOMAIN, group: 'staff' },
        headers: { cookie: admin.cookie, 'x-csrf-token': admin.csrfToken },
      });
      expect(res.statusCode).toBe(503);
      expect(res.json().detail).toBe('the proxy could not answer just now (no proxy worker answered within 2 s); ask again in a moment');
      const health = await restarting.inject({ method: 'GET', url: '/healthz' });
      expect(health.statusCode).toBe(503);
      expect(health.json()).toEqual({ status: 'degraded', database: 'ok' });
    } finally {
      await restarting.close();
    }
  });

  it("takes a user's group, a time for block_during rules, and the running proxy's snapshot when given one", async () => {
    await h.createUser('pupil-why', [], 'pupils');
    await h.as(admin, { method: 'POST', url: '/api/list-entries', payload: { category: 'forums', kind: 'domain', value: 'forum.example' } });
    // The filter app answers from the store, which reloads the lists on their change.
    let during = await why(admin, { url: 'forum.example', user: 'Pupil-Why', at: TUESDAY_10AM }, 'filter');
    for (const started = Date.now(); during.json().action !== 'block' && Date.now() - started < 1000; ) {
      during = await why(admin, { url: 'forum.example', user: 'pupil-why', at: TUESDAY_10AM }, 'filter');
    }
    expect(during.json()).toMatchObject({ user: 'pupil-why', group: 'pupils', action: 'block', policy: 'running', rule: 'pupils: forums are blocked during School hours (Mon–Fri 08:30–15:30)' });
    const after = await why(admin, { url: 'forum.example', user: 'pupil-why', at: TUESDAY_6PM }, 'filter');
    expect(after.json()).toMatchObject({ action: 'allow', ruleKind: 'group_rule', rule: 'pupils: forums are allowed outside School hours (Mon–Fri 08:30–15:30)' });
  });

  it('names illegal content and overrides as the deciding rule', async () => {
    const illegal = await why(admin, { url: 'http://abuse.example/', group: 'staff' });
    expect(illegal.json()).toMatchObject({ action: 'block', ruleKind: 'illegal', ruleId: null, category: { key: 'iwf' }, rule: 'IWF child sexual abuse list: illegal content, always blocked' });
    const override = await h.as(admin, { method: 'POST', url: '/api/overrides', payload: { action: 'allow', kind: 'domain', value: GAMBLING_DOMAIN, groupKey: 'staff', reason: 'finance team research' } });
    const allowed = await why(admin, { url: GAMBLING_DOMAIN, group: 'staff' });
    expect(allowed.json()).toMatchObject({ action: 'allow', ruleKind: 'override', ruleId: override.json().id, categories: [{ key: 'gambling', name: 'Gambling' }] });
    expect(allowed.json().rule).toMatch(/^local override #\d+ by admin for staff: allow 000-online-casino\.com \("finance team research"\)$/);
  });

  it('lets staff ask about themselves only, and any admin role about anyone', async () => {
    const staff = await signedInAs('why-staff', ['staff']);
    const own = await why(staff, { url: GAMBLING_DOMAIN });
    expect(own.statusCode).toBe(200);
    // Staff have an allow override for this domain (set above).
    expect(own.json()).toMatchObject({ user: 'why-staff', group: 'staff', action: 'allow', ruleKind: 'override' });
    expect((await why(staff, { url: GAMBLING_DOMAIN, user: 'why-staff' })).statusCode).toBe(200);
    expect((await why(staff, { url: GAMBLING_DOMAIN, user: 'pupil-why' })).statusCode).toBe(403);
    expect((await why(staff, { url: GAMBLING_DOMAIN, group: 'pupils' })).statusCode).toBe(403);
    const governor = await signedInAs('why-governor', ['governor']);
    expect((await why(governor, { url: GAMBLING_DOMAIN })).statusCode).toBe(200);
    const dsl = await signedInAs('why-dsl', ['dsl']);
    expect((await why(dsl, { url: GAMBLING_DOMAIN, user: 'pupil-why' })).json()).toMatchObject({ group: 'pupils', action: 'block' });
    expect((await why(dsl, { url: GAMBLING_DOMAIN })).json()).toMatchObject({ group: 'guests', user: null });
  });

  it('refuses URLs it cannot read, unknown people and groups, and huge input with 400', async () => {
    const cases: Array<[object, string]> = [
      [{ url: 'ftp://example.com/file' }, 'body/url'],
      [{ url: 'exa mple.com' }, 'body/url'],
      [{ url: 'http://example.com:99999/' }, 'body/url'],
      [{ url: 'http:///nohost' }, 'body/url'],
      [{ url: `${'a'.repeat(5000)}.com` }, 'body/url'],
      [{ url: "example.com'; DROP TABLE users; --" }, 'body/url'],
      [{ url: 'example.com', user: 'nobody' }, 'body/user'],
      [{ url: 'example.com', group: 'nonesuch' }, 'body/group'],
      [{ url: 'example.com', user: 'admin', group: 'staff' }, 'body/group'],
      [{ url: 'example.com', at: 'yesterday' }, 'body/at'],
    ];
    for (const [payload, field] of cases) {
      const res = await why(admin, payload);
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(res.json()['invalid-params'].map((p: { name: string }) => p.name), JSON.stringify(payload).slice(0, 80)).toContain(field);
    }
  });
});

// --- blocklist imports --------------------------------------------------------

async function multipart(filename: string, content: Buffer): Promise<{ payload: Buffer; headers: Record<string, string> }> {
  const form = new FormData();
  form.append('file', new Blob([content]), filename);
  const request = new Request('http://localhost/', { method: 'POST', body: form });
  return { payload: Buffer.from(await request.arrayBuffer()), headers: { 'content-type': request.headers.get('content-type') as string } };
}

/** A UT1-layout .tar.gz of one category holding `domains`. */
async function archiveOf(category: string, domains: string): Promise<Buffer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-archive-'));
  try {
    await mkdir(path.join(dir, category));
    await writeFile(path.join(dir, category, 'domains'), domains);
    const file = path.join(dir, 'lists.tar.gz');
    await tar.c({ gzip: true, file, cwd: dir }, [category]);
    return await readFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function finishedJob(id: string): Promise<Record<string, unknown>> {
  for (const started = Date.now(); Date.now() - started < 20_000; ) {
    const res = await onFilterApp(admin, { method: 'GET', url: `/api/blocklists/jobs/${id}` });
    expect(res.statusCode).toBe(200);
    if (res.json().state !== 'running') return res.json();
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`job ${id} still running`);
}

async function entriesOf(category: string): Promise<string[]> {
  const { rows } = await h.db.pool.query<{ value: string }>(
    'SELECT value FROM list_entries e JOIN categories c ON c.id = e.category_id WHERE c.key = $1 ORDER BY value',
    [category],
  );
  return rows.map((r) => r.value);
}

describe('blocklist imports', () => {
  it('imports an uploaded archive as a background job, with its summary, and audits it', async () => {
    const upload = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/upload', ...(await multipart('lists.tar.gz', await archiveOf('upload_test', 'Upload-One.example\n# a comment\nupload-two.example\n'))) });
    expect(upload.statusCode).toBe(202);
    const { job } = upload.json();
    expect(upload.headers.location).toBe(`/api/blocklists/jobs/${job.id}`);
    expect(job).toMatchObject({ kind: 'upload', source: 'lists.tar.gz', startedBy: 'admin' });
    const done = await finishedJob(job.id);
    expect(done).toMatchObject({ state: 'succeeded', error: null, summary: { categories: 1, domains: 2, urls: 0, perCategory: [{ category: 'upload_test', domains: 2, urls: 0 }] } });
    expect(done.progress).toMatchObject({ phase: 'importing', category: 'upload_test', entries: 2 });
    expect(await entriesOf('upload_test')).toEqual(['upload-one.example', 'upload-two.example']);
    const { rows } = await h.db.pool.query('SELECT action, actor_username, detail FROM audit_log WHERE target = $1 ORDER BY id', [`blocklist_import:${job.id}`]);
    expect(rows).toMatchObject([
      { action: 'blocklist_import.start', actor_username: 'admin', detail: { source: 'lists.tar.gz' } },
      { action: 'blocklist_import.finish', actor_username: 'admin', detail: { state: 'succeeded', domains: 2 } },
    ]);
    expect(await readdir(path.join(dataDir, 'uploads'))).toEqual([]);
    const status = await onFilterApp(admin, { method: 'GET', url: '/api/blocklists/status' });
    expect(status.json().lastImports[0]).toMatchObject({ source: 'upload: lists.tar.gz', domains: 2 });
    expect(status.json().categories.find((c: { key: string }) => c.key === 'upload_test')).toMatchObject({ domains: 2 });
  });

  it('fails a job on a malformed line, naming the file and line, and leaves the lists unchanged', async () => {
    const before = await entriesOf('upload_test');
    const upload = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/upload', ...(await multipart('bad.tgz', await archiveOf('upload_test', 'fine.example\nnot a domain\n'))) });
    expect(upload.statusCode).toBe(202);
    const done = await finishedJob(upload.json().job.id);
    expect(done).toMatchObject({ state: 'failed', summary: null, error: { file: 'upload_test/domains', line: 2 } });
    expect((done.error as { message: string }).message).toMatch(/upload_test\/domains line 2: .*"not a domain"/);
    expect(await entriesOf('upload_test')).toEqual(before);
    expect(await lastAudit()).toMatchObject({ action: 'blocklist_import.finish', detail: { state: 'failed', error: { line: 2 } } });
  });

  it('runs one job at a time (409), fetches over http, and refuses what is not an archive or too large', async () => {
    let answer: http.ServerResponse | undefined;
    const server = http.createServer((_req, res) => {
      answer = res;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/lists.tar.gz`;
      const fetch = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/fetch', payload: { url } });
      expect(fetch.statusCode).toBe(202);
      expect(fetch.json().job).toMatchObject({ kind: 'fetch', source: url, state: 'running', progress: { phase: 'downloading' } });
      const second = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/upload', ...(await multipart('lists.tar.gz', await archiveOf('upload_test', 'x.example\n'))) });
      expect(second.statusCode).toBe(409);
      expect((await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/fetch', payload: { url } })).statusCode).toBe(409);
      while (!answer) await new Promise((resolve) => setTimeout(resolve, 10));
      answer.writeHead(404).end();
      const done = await finishedJob(fetch.json().job.id);
      expect(done).toMatchObject({ state: 'failed', error: { file: null, line: null } });
      expect((done.error as { message: string }).message).toMatch(/answered 404/);
    } finally {
      server.close();
    }
    const notArchive = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/upload', ...(await multipart('lists.txt', Buffer.from('example.com\n'))) });
    expect(notArchive.statusCode).toBe(415);
    const tooLarge = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/upload', ...(await multipart('big.tar.gz', Buffer.alloc(UPLOAD_LIMIT + 1))) });
    expect(tooLarge.statusCode).toBe(413);
    const noUrl = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/fetch', payload: {} });
    expect(noUrl.statusCode).toBe(400);
    expect(noUrl.json().detail).toMatch(/BLOCKLIST_URL is not set/);
    const ftp = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/fetch', payload: { url: 'ftp://example.com/lists.tar.gz' } });
    expect(ftp.statusCode).toBe(400);
    expect((await onFilterApp(admin, { method: 'GET', url: '/api/blocklists/jobs/not-a-uuid' })).statusCode).toBe(400);
    expect((await onFilterApp(admin, { method: 'GET', url: '/api/blocklists/jobs/00000000-0000-4000-8000-000000000000' })).statusCode).toBe(404);
    expect(await readdir(path.join(dataDir, 'uploads'))).toEqual([]);
    // Nothing left running: a new job may start.
    const again = await onFilterApp(admin, { method: 'POST', url: '/api/blocklists/upload', ...(await multipart('lists.tar.gz', await archiveOf('upload_test', 'upload-one.example\n'))) });
    expect(again.statusCode).toBe(202);
    expect(await finishedJob(again.json().job.id)).toMatchObject({ state: 'succeeded' });
  });
});

describe('the audit log', () => {
  it('holds every kind of change made here, each with its actor', async () => {
    const { rows } = await h.db.pool.query<{ action: string; actors: string[] }>(
      'SELECT action, array_agg(DISTINCT actor_username) AS actors FROM audit_log GROUP BY action ORDER BY action',
    );
    const actors = Object.fromEntries(rows.map((r) => [r.action, r.actors]));
    for (const action of [
      'blocklist_import.finish',
      'blocklist_import.start',
      'calendar_period.create',
      'calendar_period.delete',
      'calendar_period.update',
      'group_rule.delete',
      'group_rule.set',
      'list_entry.add',
      'list_entry.remove',
      'override.create',
      'override.delete',
      'override.expire',
      'schedule.create',
      'schedule.delete',
      'schedule.update',
    ]) {
      expect(actors[action], action).toEqual(['admin']);
    }
    expect((await h.as(admin, { method: 'GET', url: '/api/audit/verify' })).json()).toMatchObject({ ok: true });
  });
});
