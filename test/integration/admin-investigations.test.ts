// Investigations: who may request, approve, refuse, list and close them,
// the limits on their window and expiry, and that every step is audited.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../core/users.js';
import { startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';

let h: AdminHarness;
const DAY = 86_400_000;
const at = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();

interface Person {
  id: number;
  username: string;
  session: SignedIn;
}
type Cast = 'admin' | 'dsl' | 'head' | 'head2' | 'gov1' | 'gov2' | 'teacher' | 'teacher2' | 'pupil';
const people = {} as Record<Cast, Person>;

interface Investigation {
  id: number;
  subject: { id: number; username: string };
  requestedBy: { id: number };
  status: string;
  expired: boolean;
  decidedBy: { id: number } | null;
  decisionNote: string | null;
  closedBy: { id: number } | null;
  closeNote: string | null;
}

async function person(username: string, roles: Role[], groupKey = 'staff'): Promise<Person> {
  const id = await h.createUser(username, roles, groupKey);
  return { id, username, session: await h.signIn(username) };
}

function requestBody(subject: Person, overrides: Record<string, unknown> = {}) {
  return {
    subjectUserId: subject.id,
    reason: 'a parent complained about a message sent in school hours',
    windowStart: at(-14 * DAY),
    windowEnd: at(-DAY),
    expiresAt: at(7 * DAY),
    ...overrides,
  };
}

function request(requester: Person, body: Record<string, unknown>) {
  return h.as(requester.session, { method: 'POST', url: '/api/investigations', payload: body });
}

async function requested(requester: Person, subject: Person): Promise<Investigation> {
  const res = await request(requester, requestBody(subject));
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as Investigation;
}

function decide(who: Person, id: number, decision: 'approve' | 'refuse' | 'close', note?: string) {
  return h.as(who.session, { method: 'POST', url: `/api/investigations/${id}/${decision}`, payload: note === undefined ? {} : { note } });
}

async function listed(who: Person): Promise<number[]> {
  const res = await h.as(who.session, { method: 'GET', url: '/api/investigations', query: { limit: '200' } });
  expect(res.statusCode).toBe(200);
  return (res.json().items as Investigation[]).map((i) => i.id);
}

async function lastAudit() {
  const { rows } = await h.db.pool.query('SELECT actor_username, action, target, detail FROM audit_log ORDER BY id DESC LIMIT 1');
  return rows[0] as { actor_username: string; action: string; target: string; detail: Record<string, unknown> };
}

beforeAll(async () => {
  h = await startAdminHarness();
  people.admin = await person('admin', ['staff', 'it_admin']);
  people.dsl = await person('dsl', ['staff', 'dsl']);
  people.head = await person('head', ['staff', 'headteacher']);
  people.head2 = await person('head2', ['staff', 'headteacher']);
  people.gov1 = await person('gov1', ['governor']);
  people.gov2 = await person('gov2', ['governor']);
  people.teacher = await person('t.jones', ['staff']);
  people.teacher2 = await person('k.smith', ['staff']);
  people.pupil = await person('p.one', [], 'pupils');
});

afterAll(() => h.close());

describe('requesting', () => {
  it('lets the headteacher request one into a member of staff, audited without the reason', async () => {
    const res = await request(people.head, requestBody(people.teacher));
    expect(res.statusCode).toBe(201);
    const investigation = res.json() as Investigation;
    expect(investigation).toMatchObject({
      subject: { id: people.teacher.id, username: 't.jones' },
      requestedBy: { id: people.head.id },
      status: 'requested',
      expired: false,
      decidedBy: null,
    });
    const audit = await lastAudit();
    expect(audit).toMatchObject({
      actor_username: 'head',
      action: 'investigation.request',
      target: 'user:t.jones',
      detail: { investigationId: investigation.id, subjectUserId: people.teacher.id },
    });
    expect(JSON.stringify(audit)).not.toContain('parent complained');
  });

  it('leaves an investigation into a headteacher to governors', async () => {
    expect((await request(people.head, requestBody(people.head2))).statusCode).toBe(403);
    expect((await request(people.gov1, requestBody(people.head2))).statusCode).toBe(201);
    // And governors do not request investigations into staff.
    expect((await request(people.gov1, requestBody(people.teacher))).statusCode).toBe(403);
  });

  it.each(['staff', 'it_admin', 'dsl'] as const)('refuses a %s with 403', async (role) => {
    const who = { admin: people.admin, dsl: people.dsl, staff: people.teacher, it_admin: people.admin }[role];
    const before = (await h.db.pool.query('SELECT count(*)::int AS n FROM investigations')).rows[0].n;
    expect((await request(who, requestBody(people.teacher2))).statusCode).toBe(403);
    expect((await h.as(who.session, { method: 'GET', url: '/api/investigations' })).statusCode).toBe(403);
    expect((await h.db.pool.query('SELECT count(*)::int AS n FROM investigations')).rows[0].n).toBe(before);
  });

  it.each([
    ['no reason', { reason: undefined }, 'body/reason'],
    ['a blank reason', { reason: '   ' }, 'body/reason'],
    ['a window that ends before it starts', { windowStart: at(-DAY), windowEnd: at(-2 * DAY) }, 'body/windowEnd'],
    ['a window that ends when it starts', { windowStart: '2025-01-01T00:00:00Z', windowEnd: '2025-01-01T00:00:00Z' }, 'body/windowEnd'],
    ['a window reaching into the future', { windowEnd: at(3 * DAY) }, 'body/windowEnd'],
    ['a window over a year long', { windowStart: at(-400 * DAY) }, 'body/windowStart'],
    ['an expiry in the past', { expiresAt: at(-60_000) }, 'body/expiresAt'],
    ['an expiry more than 30 days ahead', { expiresAt: at(31 * DAY) }, 'body/expiresAt'],
    ['no expiry', { expiresAt: undefined }, 'body/expiresAt'],
    ['a date that is not one', { windowStart: '2025-02-30T00:00:00Z' }, 'body/windowStart'],
    ['a date without an offset', { windowStart: '2025-02-01T00:00:00' }, 'body/windowStart'],
    ['SQL for a date', { windowEnd: "now()'); DROP TABLE investigations; --" }, 'body/windowEnd'],
    ['a subject id as a string', { subjectUserId: '3' }, 'body/subjectUserId'],
    ['an unknown subject', { subjectUserId: 999_999 }, 'body/subjectUserId'],
    ['an unknown field', { approvedBy: 1 }, 'body/approvedBy'],
  ])('refuses %s with a 400', async (_what, overrides, param) => {
    const res = await request(people.head, requestBody(people.teacher2, overrides));
    expect(res.statusCode, res.body).toBe(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()['invalid-params'].map((p: { name: string }) => p.name)).toContain(param);
  });

  it("refuses one into a pupil (the DSL's) or into oneself", async () => {
    const pupil = await request(people.head, requestBody(people.pupil));
    expect(pupil.statusCode).toBe(400);
    expect(pupil.json().detail).toMatch(/DSL/);
    expect((await request(people.head, requestBody(people.head))).statusCode).toBe(400);
  });
});

describe('deciding', () => {
  it('lets a governor approve or refuse with a note, once', async () => {
    const first = await requested(people.head, people.teacher);
    const approved = await decide(people.gov1, first.id, 'approve', 'proportionate and necessary');
    expect(approved.statusCode).toBe(200);
    expect(approved.json()).toMatchObject({ status: 'approved', decidedBy: { id: people.gov1.id }, decisionNote: 'proportionate and necessary' });
    expect(await lastAudit()).toMatchObject({ actor_username: 'gov1', action: 'investigation.approve', target: 'user:t.jones', detail: { investigationId: first.id } });
    expect((await decide(people.gov2, first.id, 'refuse', 'changed my mind')).statusCode).toBe(409);

    const second = await requested(people.head, people.teacher2);
    const refused = await decide(people.gov2, second.id, 'refuse', 'not enough grounds');
    expect(refused.json()).toMatchObject({ status: 'refused', decidedBy: { id: people.gov2.id } });
    expect(await lastAudit()).toMatchObject({ action: 'investigation.refuse', detail: { investigationId: second.id } });
    expect((await decide(people.gov1, second.id, 'approve', 'overrule')).statusCode).toBe(409);
  });

  it('needs a note, and a governor', async () => {
    const investigation = await requested(people.head, people.teacher);
    expect((await decide(people.gov1, investigation.id, 'approve')).statusCode).toBe(400);
    expect((await decide(people.gov1, investigation.id, 'approve', ' ')).statusCode).toBe(400);
    expect((await decide(people.head, investigation.id, 'approve', 'self-approved')).statusCode).toBe(403);
    expect((await decide(people.admin, investigation.id, 'approve', 'ok')).statusCode).toBe(403);
    const row = await h.db.pool.query('SELECT status FROM investigations WHERE id = $1', [investigation.id]);
    expect(row.rows[0].status).toBe('requested');
  });

  it('does not let the requester approve their own request', async () => {
    const investigation = await requested(people.gov1, people.head);
    const res = await decide(people.gov1, investigation.id, 'approve', 'I asked for it');
    expect(res.statusCode).toBe(403);
    expect(res.json().detail).toMatch(/another governor/);
    expect((await decide(people.gov2, investigation.id, 'approve', 'agreed')).statusCode).toBe(200);
  });

  it('does not let a governor decide, or see, an investigation into themselves', async () => {
    const investigation = await requested(people.head, people.gov1);
    expect((await decide(people.gov1, investigation.id, 'approve', 'nothing to see')).statusCode).toBe(404);
    expect((await h.as(people.gov1.session, { method: 'GET', url: `/api/investigations/${investigation.id}` })).statusCode).toBe(404);
    expect(await listed(people.gov1)).not.toContain(investigation.id);
    expect(await listed(people.gov2)).toContain(investigation.id);
    expect((await decide(people.gov2, investigation.id, 'refuse', 'no')).statusCode).toBe(200);
  });

  it('refuses to approve one that expired before it was decided', async () => {
    const investigation = await requested(people.head, people.teacher2);
    await h.db.pool.query(
      "UPDATE investigations SET requested_at = now() - interval '31 days', expires_at = now() - interval '1 day' WHERE id = $1",
      [investigation.id],
    );
    const res = await decide(people.gov1, investigation.id, 'approve', 'late');
    expect(res.statusCode).toBe(409);
    expect(res.json().detail).toMatch(/expired/);
  });
});

describe('listing', () => {
  it('shows governors every investigation except those into themselves, the headteacher only their own requests, and the subject nothing', async () => {
    const intoHead = await requested(people.gov2, people.head);
    const byHead = await requested(people.head, people.teacher2);
    const byHead2 = await requested(people.head2, people.teacher);

    const govSees = await listed(people.gov1);
    expect(govSees).toEqual(expect.arrayContaining([intoHead.id, byHead.id, byHead2.id]));
    const headSees = await listed(people.head);
    expect(headSees).toContain(byHead.id);
    expect(headSees).not.toContain(intoHead.id);
    expect(headSees).not.toContain(byHead2.id);
    const all = await h.db.pool.query<{ id: number }>('SELECT id FROM investigations WHERE requested_by = $1 AND subject_user_id <> $1', [people.head.id]);
    expect([...headSees].sort((a, b) => a - b)).toEqual(all.rows.map((r) => r.id).sort((a, b) => a - b));
    expect((await h.as(people.head.session, { method: 'GET', url: `/api/investigations/${intoHead.id}` })).statusCode).toBe(404);
    expect((await h.as(people.head.session, { method: 'GET', url: `/api/investigations/${byHead.id}` })).json()).toMatchObject({ id: byHead.id });
    // The subject of a staff investigation has no way in at all.
    expect((await h.as(people.teacher2.session, { method: 'GET', url: `/api/investigations/${byHead.id}` })).statusCode).toBe(403);
  });

  it('pages newest first and filters by status', async () => {
    const ids: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await h.as(people.gov1.session, { method: 'GET', url: '/api/investigations', query: { limit: '3', ...(cursor ? { cursor } : {}) } });
      const page = res.json() as { items: Investigation[]; nextCursor: string | null };
      ids.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(ids).toEqual(await listed(people.gov1));

    const approved = await h.as(people.gov1.session, { method: 'GET', url: '/api/investigations', query: { status: 'approved' } });
    expect((approved.json().items as Investigation[]).every((i) => i.status === 'approved')).toBe(true);
    expect((await h.as(people.gov1.session, { method: 'GET', url: '/api/investigations', query: { status: 'open' } })).statusCode).toBe(400);
    expect((await h.as(people.gov1.session, { method: 'GET', url: '/api/investigations', query: { limit: '5000' } })).statusCode).toBe(400);
  });
});

describe('closing', () => {
  it('lets the requester or a governor close one early, once, audited', async () => {
    const investigation = await requested(people.head, people.teacher);
    await decide(people.gov1, investigation.id, 'approve', 'ok');
    const closed = await decide(people.head, investigation.id, 'close', 'resolved informally');
    expect(closed.statusCode).toBe(200);
    expect(closed.json()).toMatchObject({ status: 'closed', closedBy: { id: people.head.id }, closeNote: 'resolved informally', decidedBy: { id: people.gov1.id } });
    expect(await lastAudit()).toMatchObject({ actor_username: 'head', action: 'investigation.close', detail: { investigationId: investigation.id, statusBefore: 'approved' } });
    expect((await decide(people.head, investigation.id, 'close')).statusCode).toBe(409);

    const pending = await requested(people.head, people.teacher2);
    expect((await decide(people.gov2, pending.id, 'close')).json()).toMatchObject({ status: 'closed', closedBy: { id: people.gov2.id } });
    expect((await decide(people.gov1, pending.id, 'approve', 'too late')).statusCode).toBe(409);
  });

  it('does not let another headteacher or the subject close it', async () => {
    const investigation = await requested(people.head, people.teacher);
    expect((await decide(people.head2, investigation.id, 'close')).statusCode).toBe(404);
    expect((await decide(people.teacher, investigation.id, 'close')).statusCode).toBe(403);
    const intoHead = await requested(people.gov1, people.head);
    expect((await decide(people.head, intoHead.id, 'close')).statusCode).toBe(404);
  });
});

it('leaves the audit chain intact', async () => {
  const res = await h.as(people.admin.session, { method: 'GET', url: '/api/audit/verify' });
  expect(res.json()).toMatchObject({ ok: true });
  const { rows } = await h.db.pool.query("SELECT DISTINCT action FROM audit_log WHERE action LIKE 'investigation.%' ORDER BY action");
  expect(rows.map((r) => r.action)).toEqual(['investigation.approve', 'investigation.close', 'investigation.refuse', 'investigation.request']);
});
