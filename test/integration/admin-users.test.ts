// Users and groups management: who may do it, what it does, and that every
// change is audited.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role } from '../../core/users.js';
import { PASSWORD, startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';

let h: AdminHarness;
let admin: SignedIn;

beforeAll(async () => {
  h = await startAdminHarness();
  await h.createUser('admin', ['staff', 'it_admin']);
  admin = await h.signIn('admin');
});

afterAll(() => h.close());

async function auditActions(): Promise<Array<{ action: string; target: string; detail: Record<string, unknown> }>> {
  const { rows } = await h.db.pool.query('SELECT action, target, detail FROM audit_log ORDER BY id');
  return rows;
}

async function lastAudit() {
  const all = await auditActions();
  return all[all.length - 1];
}

describe('who may manage users and groups', () => {
  const others: Role[] = ['staff', 'dsl', 'headteacher', 'governor'];
  const operations = [
    { method: 'GET', url: '/api/users' },
    { method: 'GET', url: '/api/users/1' },
    { method: 'POST', url: '/api/users', payload: { username: 'sneaky', groupKey: 'staff', roles: ['it_admin'] } },
    { method: 'PATCH', url: '/api/users/1', payload: { roles: ['staff'] } },
    { method: 'POST', url: '/api/users/1/disable' },
    { method: 'POST', url: '/api/users/1/enable' },
    { method: 'PUT', url: '/api/users/1/password', payload: { password: 'taken over!' } },
    { method: 'GET', url: '/api/groups' },
    { method: 'POST', url: '/api/groups', payload: { key: 'sneaky', name: 'Sneaky' } },
    { method: 'PATCH', url: '/api/groups/1', payload: { defaultAction: 'block' } },
  ] as const;

  it.each(others)('refuses %s with 403 on every users and groups operation', async (role) => {
    await h.createUser(`only-${role}`, [role]);
    const session = await h.signIn(`only-${role}`);
    const auditBefore = (await auditActions()).length;
    for (const op of operations) {
      const res = await h.as(session, { ...op });
      expect(res.statusCode, `${role} ${op.method} ${op.url}`).toBe(403);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    expect((await auditActions()).length).toBe(auditBefore);
    expect((await h.db.pool.query("SELECT 1 FROM users WHERE username = 'sneaky'")).rowCount).toBe(0);
  });

  it('refuses the anonymous with 401', async () => {
    for (const op of operations) {
      const res = await h.app.inject({ ...op });
      expect(res.statusCode, `${op.method} ${op.url}`).toBe(401);
    }
  });

  it('lets an it_admin list users and groups', async () => {
    expect((await h.as(admin, { method: 'GET', url: '/api/users' })).statusCode).toBe(200);
    expect((await h.as(admin, { method: 'GET', url: '/api/groups' })).statusCode).toBe(200);
  });
});

describe('users', () => {
  it('creates a user who can then sign in, and audits it', async () => {
    const res = await h.as(admin, {
      method: 'POST',
      url: '/api/users',
      payload: { username: 'J.Bloggs', displayName: ' Jo Bloggs ', groupKey: 'staff', roles: ['staff', 'dsl', 'dsl'], password: 'a new password' },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ username: 'j.bloggs', displayName: 'Jo Bloggs', groupKey: 'staff', roles: ['staff', 'dsl'], hasPassword: true, disabled: false });
    expect(await lastAudit()).toMatchObject({ action: 'user.create', target: 'user:j.bloggs', detail: { roles: ['staff', 'dsl'], groupKey: 'staff' } });
    const me = await h.as(await h.signIn('j.bloggs', 'a new password'), { method: 'GET', url: '/api/me' });
    expect(me.json()).toMatchObject({ username: 'j.bloggs', roles: ['staff', 'dsl'] });
  });

  it('creates a password-less account that cannot sign in', async () => {
    const res = await h.as(admin, { method: 'POST', url: '/api/users', payload: { username: 'nopass', groupKey: 'pupils' } });
    expect(res.json()).toMatchObject({ hasPassword: false, roles: [] });
    const login = await h.app.inject({ method: 'POST', url: '/api/login', payload: { username: 'nopass', password: 'anything at all' } });
    expect(login.statusCode).toBe(401);
  });

  it('refuses duplicates, unknown groups, bad usernames and short passwords with clear 4xx', async () => {
    const post = (payload: object) => h.as(admin, { method: 'POST', url: '/api/users', payload });
    const dup = await post({ username: 'J.BLOGGS', groupKey: 'staff' });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().detail).toBe('user "j.bloggs" already exists');
    const group = await post({ username: 'newbie', groupKey: 'teachers' });
    expect(group.statusCode).toBe(400);
    expect(group.json()['invalid-params']).toEqual([{ name: 'body/groupKey', reason: 'no such group' }]);
    const name = await post({ username: 'has space', groupKey: 'staff' });
    expect(name.statusCode).toBe(400);
    expect(name.json().detail).toMatch(/not a valid username/);
    const short = await post({ username: 'newbie', groupKey: 'staff', password: 'short' });
    expect(short.statusCode).toBe(400);
    expect(short.json()['invalid-params'][0].name).toBe('body/password');
    const role = await post({ username: 'newbie', groupKey: 'staff', roles: ['root'] });
    expect(role.statusCode).toBe(400);
    expect(role.json()['invalid-params'][0].name).toBe('body/roles/0');
  });

  it('lists by username a page at a time and searches names', async () => {
    for (let i = 1; i <= 5; i++) {
      const payload = { username: `pupil-${i}`, displayName: i === 3 ? 'Ada 100% Lovelace' : `Pupil ${i}`, groupKey: 'pupils' };
      expect((await h.as(admin, { method: 'POST', url: '/api/users', payload })).statusCode).toBe(201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: Record<string, string> = { search: 'pupil-', limit: '2', ...(cursor ? { cursor } : {}) };
      const res = await h.as(admin, { method: 'GET', url: '/api/users', query });
      expect(res.statusCode).toBe(200);
      const page = res.json() as { items: Array<{ username: string }>; nextCursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((u) => u.username));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(seen).toEqual(['pupil-1', 'pupil-2', 'pupil-3', 'pupil-4', 'pupil-5']);
    expect(pages).toBe(3);

    const byName = await h.as(admin, { method: 'GET', url: '/api/users', query: { search: 'lovelace' } });
    expect(byName.json().items.map((u: { username: string }) => u.username)).toEqual(['pupil-3']);
    // LIKE wildcards in a search are literal characters.
    const percent = await h.as(admin, { method: 'GET', url: '/api/users', query: { search: '%' } });
    expect(percent.json().items.map((u: { username: string }) => u.username)).toEqual(['pupil-3']);
    const inGroup = await h.as(admin, { method: 'GET', url: '/api/users', query: { groupKey: 'pupils', limit: '200' } });
    expect(inGroup.json().items.every((u: { groupKey: string }) => u.groupKey === 'pupils')).toBe(true);
  });

  it('changes display name, group and roles, auditing each change with before and after', async () => {
    const id = await h.createUser('changeling', ['staff']);
    const res = await h.as(admin, {
      method: 'PATCH',
      url: `/api/users/${id}`,
      payload: { displayName: 'Chris Changeling', groupKey: 'pupils', roles: ['dsl'] },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ displayName: 'Chris Changeling', groupKey: 'pupils', roles: ['dsl'] });
    expect(await lastAudit()).toEqual({
      action: 'user.update',
      target: 'user:changeling',
      detail: {
        userId: id,
        changes: {
          displayName: { from: '', to: 'Chris Changeling' },
          groupKey: { from: 'staff', to: 'pupils' },
          roles: { from: ['staff'], to: ['dsl'] },
        },
      },
    });
    const auditCount = (await auditActions()).length;
    const same = await h.as(admin, { method: 'PATCH', url: `/api/users/${id}`, payload: { roles: ['dsl'] } });
    expect(same.statusCode).toBe(200);
    expect((await auditActions()).length).toBe(auditCount);
    expect((await h.as(admin, { method: 'PATCH', url: '/api/users/999999', payload: { roles: [] } })).statusCode).toBe(404);
    expect((await h.as(admin, { method: 'PATCH', url: `/api/users/${id}`, payload: {} })).statusCode).toBe(400);
  });

  it('disables a user at once (no sign-in, sessions and tokens end) and enables them again', async () => {
    const id = await h.createUser('departing', ['staff']);
    const session = await h.signIn('departing');
    const token = (await h.as(session, { method: 'POST', url: '/api/tokens', payload: { name: 'script' } })).json().token as string;

    const res = await h.as(admin, { method: 'POST', url: `/api/users/${id}/disable` });
    expect(res.statusCode).toBe(200);
    expect(res.json().disabled).toBe(true);
    const row = await h.db.pool.query('SELECT disabled FROM users WHERE id = $1', [id]);
    expect(row.rows[0].disabled).toBe(true);
    expect(await lastAudit()).toMatchObject({ action: 'user.disable', detail: { userId: id, sessionsEnded: 1, tokensRevoked: 1 } });
    expect((await h.as(session, { method: 'GET', url: '/api/me' })).statusCode).toBe(401);
    expect((await h.app.inject({ url: '/api/me', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(401);
    await expect(h.signIn('departing')).rejects.toThrow(/401/);

    expect((await h.as(admin, { method: 'POST', url: `/api/users/${id}/enable` })).json().disabled).toBe(false);
    expect(await lastAudit()).toMatchObject({ action: 'user.enable', target: 'user:departing' });
    expect((await h.as(await h.signIn('departing'), { method: 'GET', url: '/api/me' })).statusCode).toBe(200);
  });

  it('sets a password: the old one stops working and other sessions end', async () => {
    const id = await h.createUser('forgetful', ['staff']);
    const old = await h.signIn('forgetful');
    const res = await h.as(admin, { method: 'PUT', url: `/api/users/${id}/password`, payload: { password: 'brand new secret' } });
    expect(res.statusCode).toBe(200);
    expect(await lastAudit()).toMatchObject({ action: 'user.set_password', target: 'user:forgetful', detail: { sessionsEnded: 1 } });
    expect(JSON.stringify(await lastAudit())).not.toContain('brand new secret');
    expect((await h.as(old, { method: 'GET', url: '/api/me' })).statusCode).toBe(401);
    await expect(h.signIn('forgetful', PASSWORD)).rejects.toThrow(/401/);
    await h.signIn('forgetful', 'brand new secret');
  });

  it('keeps at least one enabled it_admin', async () => {
    const me = (await h.as(admin, { method: 'GET', url: '/api/me' })).json() as { id: number };
    const demote = await h.as(admin, { method: 'PATCH', url: `/api/users/${me.id}`, payload: { roles: ['staff'] } });
    expect(demote.statusCode).toBe(409);
    expect((await h.as(admin, { method: 'POST', url: `/api/users/${me.id}/disable` })).statusCode).toBe(409);
    const row = await h.db.pool.query('SELECT roles, disabled FROM users WHERE id = $1', [me.id]);
    expect(row.rows[0]).toEqual({ roles: ['staff', 'it_admin'], disabled: false });

    // With a second admin, the first may step down.
    await h.createUser('deputy', ['it_admin']);
    expect((await h.as(admin, { method: 'PATCH', url: `/api/users/${me.id}`, payload: { roles: ['staff', 'it_admin'] } })).statusCode).toBe(200);
    const deputy = await h.signIn('deputy');
    const deputyId = (await h.as(deputy, { method: 'GET', url: '/api/me' })).json().id as number;
    expect((await h.as(admin, { method: 'POST', url: `/api/users/${deputyId}/disable` })).statusCode).toBe(200);
  });
});

describe('groups', () => {
  it('lists the default groups with their member counts', async () => {
    const res = await h.as(admin, { method: 'GET', url: '/api/groups' });
    const items = res.json().items as Array<{ key: string; isDefault: boolean; members: number }>;
    expect(items.map((g) => g.key)).toEqual(expect.arrayContaining(['guests', 'pupils', 'staff']));
    expect(items.find((g) => g.key === 'guests')?.isDefault).toBe(true);
    expect(items.find((g) => g.key === 'staff')!.members).toBeGreaterThan(0);
  });

  it('creates, renames and sets the default action, auditing each', async () => {
    const created = await h.as(admin, { method: 'POST', url: '/api/groups', payload: { key: 'sixth-form', name: 'Sixth form' } });
    expect(created.statusCode).toBe(201);
    const group = created.json() as { id: number; defaultAction: string; members: number };
    expect(group).toMatchObject({ defaultAction: 'allow', isDefault: false, members: 0 });
    expect(await lastAudit()).toMatchObject({ action: 'group.create', target: 'group:sixth-form' });

    const renamed = await h.as(admin, { method: 'PATCH', url: `/api/groups/${group.id}`, payload: { name: 'Sixth Form', defaultAction: 'block' } });
    expect(renamed.json()).toMatchObject({ name: 'Sixth Form', defaultAction: 'block' });
    expect(await lastAudit()).toEqual({
      action: 'group.update',
      target: 'group:sixth-form',
      detail: { groupId: group.id, changes: { name: { from: 'Sixth form', to: 'Sixth Form' }, defaultAction: { from: 'allow', to: 'block' } } },
    });
    const row = await h.db.pool.query('SELECT name, default_action FROM groups WHERE id = $1', [group.id]);
    expect(row.rows[0]).toEqual({ name: 'Sixth Form', default_action: 'block' });
  });

  it('refuses duplicates, bad keys, blank names and unknown ids', async () => {
    const post = (payload: object) => h.as(admin, { method: 'POST', url: '/api/groups', payload });
    expect((await post({ key: 'staff', name: 'Again' })).statusCode).toBe(409);
    const badKey = await post({ key: 'Bad Key!', name: 'x' });
    expect(badKey.statusCode).toBe(400);
    expect(badKey.json()['invalid-params'][0].name).toBe('body/key');
    expect((await post({ key: 'blank', name: '   ' })).statusCode).toBe(400);
    expect((await post({ key: 'x', name: 'x', defaultAction: 'maybe' })).statusCode).toBe(400);
    expect((await h.as(admin, { method: 'PATCH', url: '/api/groups/999999', payload: { name: 'x' } })).statusCode).toBe(404);
  });

  it('audited every change in a chain that verifies', async () => {
    const res = await h.as(admin, { method: 'GET', url: '/api/audit/verify' });
    expect(res.json()).toMatchObject({ ok: true });
    expect(res.json().rows).toBe((await auditActions()).length);
  });
});
