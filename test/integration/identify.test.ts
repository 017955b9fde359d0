import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertCategoryMetadata } from '../../blocklists/categories.js';
import { MatcherBuilder } from '../../blocklists/matcher.js';
import type { ProxyAuthMode } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { seedDefaultPolicy } from '../../core/policy/default-policy.js';
import { PolicyStore } from '../../core/policy/store.js';
import { addUser, disableUser, setPassword } from '../../core/users.js';
import { createIdentifier, type Identifier } from '../../proxy/identify.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { untilPolicy } from '../support/policy-reload.js';

const log = createLogger('silent');
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

let db: TestDatabase;
let schoolId: number;
let store: PolicyStore;
const ids: Record<string, number> = {};
const groupIds: Record<string, number> = {};

function identifier(mode: ProxyAuthMode): Identifier {
  return createIdentifier({ pool: db.pool, mode, snapshotSource: () => store.current, log });
}

/** Runs a change to the users and waits until the policy in service shows it (its users digest moves on). */
async function changeUsers(change: () => Promise<unknown>): Promise<void> {
  const before = store.current.usersDigest;
  await change();
  await untilPolicy(store, (snapshot) => snapshot.usersDigest !== before, 'the change to the users');
}

beforeAll(async () => {
  db = await createTestDatabase();
  await upsertCategoryMetadata(db.pool);
  schoolId = (await db.pool.query<{ id: number }>("INSERT INTO schools (name) VALUES ('Test Academy') RETURNING id")).rows[0].id;
  await seedDefaultPolicy(db.pool, schoolId);
  for (const g of (await db.pool.query<{ id: number; key: string }>('SELECT id, key FROM groups')).rows) groupIds[g.key] = g.id;
  ids.alice = (await addUser(db.pool, { schoolId, username: 'Alice', groupKey: 'staff', password: 'correct horse' })).id;
  ids.bob = (await addUser(db.pool, { schoolId, username: 'bob', groupKey: 'staff', password: 'battery staple' })).id;
  await disableUser(db.pool, schoolId, 'bob');
  ids.carol = (await addUser(db.pool, { schoolId, username: 'carol', groupKey: 'staff' })).id;
  ids.dave = (await addUser(db.pool, { schoolId, username: 'dave', groupKey: 'pupils', password: 'pupil password' })).id;
  await db.pool.query(
    `INSERT INTO ip_assignments (school_id, cidr, group_id, user_id) VALUES
       ($1, '10.0.0.0/8', $2, NULL), ($1, '10.1.0.0/16', $3, NULL), ($1, '10.1.2.3/32', NULL, $4)`,
    [schoolId, groupIds.pupils, groupIds.staff, ids.carol],
  );
  store = await PolicyStore.start({ pool: db.pool, schoolId, log, buildLists: async () => new MatcherBuilder().build() });
});

afterAll(async () => {
  await store?.close();
  await db.drop();
});

describe('proxy authentication (optional mode)', () => {
  it('accepts good credentials, case-insensitively for the username', async () => {
    const id = identifier('optional');
    for (const user of ['alice', 'ALICE']) {
      expect(await id.identify('192.168.0.5', basic(user, 'correct horse'))).toEqual({
        ok: true,
        identity: { userId: ids.alice, username: 'alice', groupId: groupIds.staff, groupKey: 'staff', source: 'proxy-auth' },
      });
    }
  });

  it('refuses a wrong password, an unknown user, a disabled user and a user without a password', async () => {
    const id = identifier('optional');
    const refused = { ok: false, reason: 'invalid' };
    expect(await id.identify('10.1.2.3', basic('alice', 'wrong horse'))).toEqual(refused);
    expect(await id.identify('10.1.2.3', basic('mallory', 'correct horse'))).toEqual(refused);
    expect(await id.identify('10.1.2.3', basic('bob', 'battery staple'))).toEqual(refused);
    expect(await id.identify('10.1.2.3', basic('carol', 'anything at all'))).toEqual(refused);
    expect(id.passwordChecks).toBe(4); // unknown and password-less users cost a hash too: no timing oracle
  });

  it('refuses malformed headers without hashing', async () => {
    const id = identifier('optional');
    for (const header of ['Bearer abc', 'Basic !!!', `Basic ${Buffer.from('nocolon').toString('base64')}`, basic('alice', ''), basic('Not A Name', 'x')]) {
      expect(await id.identify('10.1.2.3', header)).toEqual({ ok: false, reason: 'invalid' });
    }
    expect(id.passwordChecks).toBe(0);
  });

  it('caches verified and refused credentials, and shares a verification in flight', async () => {
    const id = identifier('optional');
    await id.identify('10.0.0.1', basic('dave', 'pupil password'));
    expect(id.passwordChecks).toBe(1);
    const again = await id.identify('10.0.0.1', basic('dave', 'pupil password'));
    expect(again).toMatchObject({ ok: true, identity: { username: 'dave', groupKey: 'pupils' } });
    expect(id.passwordChecks).toBe(1);

    await id.identify('10.0.0.1', basic('dave', 'guessing'));
    await id.identify('10.0.0.1', basic('dave', 'guessing'));
    expect(id.passwordChecks).toBe(2);

    const burst = await Promise.all(Array.from({ length: 6 }, () => id.identify('10.0.0.1', basic('alice', 'correct horse'))));
    expect(burst.every((r) => r.ok)).toBe(true);
    expect(id.passwordChecks).toBe(3);
  });

  it('forgets cached credentials when a user account changes', async () => {
    const id = identifier('optional');
    expect((await id.identify('10.0.0.1', basic('dave', 'pupil password'))).ok).toBe(true);
    await changeUsers(() => setPassword(db.pool, schoolId, 'dave', 'a new password'));
    expect(await id.identify('10.0.0.1', basic('dave', 'pupil password'))).toEqual({ ok: false, reason: 'invalid' });
    expect((await id.identify('10.0.0.1', basic('dave', 'a new password'))).ok).toBe(true);
    expect(id.passwordChecks).toBe(3);

    await changeUsers(() => disableUser(db.pool, schoolId, 'dave'));
    expect(await id.identify('10.0.0.1', basic('dave', 'a new password'))).toEqual({ ok: false, reason: 'invalid' });
  });
});

describe('identification by address', () => {
  it('uses the most specific assignment, else the default group (optional mode, no header)', async () => {
    const id = identifier('optional');
    expect(await id.identify('10.1.2.3', undefined)).toEqual({
      ok: true,
      identity: { userId: ids.carol, username: 'carol', groupId: groupIds.staff, groupKey: 'staff', source: 'ip-user' },
    });
    expect(await id.identify('::ffff:10.1.2.3', undefined)).toMatchObject({ ok: true, identity: { username: 'carol' } });
    expect(await id.identify('10.1.9.9', undefined)).toEqual({
      ok: true,
      identity: { userId: null, username: null, groupId: groupIds.staff, groupKey: 'staff', source: 'ip-group' },
    });
    expect(await id.identify('10.200.0.1', undefined)).toMatchObject({ ok: true, identity: { groupKey: 'pupils', source: 'ip-group' } });
    expect(await id.identify('192.168.1.1', undefined)).toEqual({
      ok: true,
      identity: { userId: null, username: null, groupId: groupIds.guests, groupKey: 'guests', source: 'default' },
    });
  });

  it('in required mode, demands credentials unless the address is a person’s own', async () => {
    const id = identifier('required');
    expect(await id.identify('10.1.9.9', undefined)).toEqual({ ok: false, reason: 'required' });
    expect(await id.identify('192.168.1.1', undefined)).toEqual({ ok: false, reason: 'required' });
    expect(await id.identify('10.1.2.3', undefined)).toMatchObject({ ok: true, identity: { username: 'carol', source: 'ip-user' } });
    expect(await id.identify('192.168.1.1', basic('alice', 'correct horse'))).toMatchObject({ ok: true, identity: { username: 'alice' } });
    expect(await id.identify('192.168.1.1', basic('alice', 'wrong horse'))).toEqual({ ok: false, reason: 'invalid' });
  });

  it('in off mode, ignores the header entirely', async () => {
    const id = identifier('off');
    expect(await id.identify('10.1.9.9', basic('alice', 'correct horse'))).toMatchObject({ ok: true, identity: { source: 'ip-group', groupKey: 'staff' } });
    expect(await id.identify('192.168.1.1', 'Basic garbage')).toMatchObject({ ok: true, identity: { source: 'default' } });
    expect(id.passwordChecks).toBe(0);
  });

  it('refuses an unknown mode', () => {
    expect(() => identifier('sometimes' as ProxyAuthMode)).toThrow(/must be off, optional or required, not "sometimes"/);
  });
});
