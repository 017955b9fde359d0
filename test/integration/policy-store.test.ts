import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATEGORY_METADATA, upsertCategoryMetadata } from '../../blocklists/categories.js';
import { loadListEntries } from '../../blocklists/load.js';
import { MatcherBuilder } from '../../blocklists/matcher.js';
import { createLogger } from '../../core/logger.js';
import { decide } from '../../core/policy/decide.js';
import { seedDefaultPolicy } from '../../core/policy/default-policy.js';
import { loadPolicyInput } from '../../core/policy/load.js';
import { PolicyStore, type ReloadOutcome } from '../../core/policy/store.js';
import type { CategoryLookup, Identity, RequestTarget } from '../../core/policy/types.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

// Europe/London instants. Tuesday 4 March 2025 is GMT (local = UTC).
const TUESDAY_10AM = new Date('2025-03-04T10:00:00Z');
const TUESDAY_6PM = new Date('2025-03-04T18:00:00Z');
const SATURDAY_10AM = new Date('2025-03-08T10:00:00Z');
// Tuesday 1 July 2025, 10:00 BST.
const SUMMER_TUESDAY_10AM = new Date('2025-07-01T09:00:00Z');

const log = createLogger('silent');

let db: TestDatabase;
let schoolId: number;
let store: PolicyStore;
let listBuilds = 0;

async function buildLists(): Promise<CategoryLookup> {
  listBuilds++;
  const builder = new MatcherBuilder();
  await loadListEntries(db.pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
  return builder.build();
}

async function addListEntry(categoryKey: string, value: string): Promise<void> {
  await db.pool.query(
    "INSERT INTO list_entries (category_id, kind, value) SELECT id, 'domain', $2 FROM categories WHERE key = $1",
    [categoryKey, value],
  );
}

function member(groupKey: string): Identity {
  const group = store.current.groupByKey.get(groupKey);
  if (!group) throw new Error(`no group ${groupKey}`);
  return { userId: null, username: null, groupId: group.id, groupKey, source: 'ip-group' };
}

const site = (host: string): RequestTarget => ({ host, port: 443 });

/** Runs `change`, then waits for the reload it causes; fails the test if none comes within `withinMs`. */
async function reloadAfter(change: () => Promise<unknown>, withinMs = 1000): Promise<ReloadOutcome & { ms: number }> {
  const next = store.nextReload();
  const started = Date.now();
  await change();
  const outcome = await Promise.race([
    next,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no reload within ${withinMs} ms`)), withinMs)),
  ]);
  return { ...outcome, ms: Date.now() - started };
}

beforeAll(async () => {
  db = await createTestDatabase();
  const school = await db.pool.query<{ id: number }>("INSERT INTO schools (name, timezone) VALUES ('Test Academy', 'Europe/London') RETURNING id");
  schoolId = school.rows[0].id;
});

afterAll(async () => {
  await store?.close();
  await db.drop();
});

describe('the default policy', () => {
  it('refuses to seed when a category it names is missing, and leaves nothing behind', async () => {
    await upsertCategoryMetadata(db.pool, CATEGORY_METADATA.filter((c) => c.key !== 'doh' && c.key !== 'stalkerware'));
    await expect(seedDefaultPolicy(db.pool, schoolId)).rejects.toThrow(
      /categories missing from the categories table: stalkerware, doh/,
    );
    const groups = await db.pool.query('SELECT 1 FROM groups WHERE school_id = $1', [schoolId]);
    expect(groups.rowCount).toBe(0);
  });

  it('seeds groups, the school-hours schedule and the rules, once', async () => {
    await upsertCategoryMetadata(db.pool);
    expect(await seedDefaultPolicy(db.pool, schoolId)).toBe(true);
    expect(await seedDefaultPolicy(db.pool, schoolId)).toBe(false);
    const counts = await db.pool.query<{ key: string; is_default: boolean; blocks: string; during: string }>(
      `SELECT g.key, g.is_default,
              count(*) FILTER (WHERE r.action = 'block') AS blocks,
              count(*) FILTER (WHERE r.action = 'block_during') AS during
         FROM groups g JOIN group_rules r ON r.group_id = g.id
        WHERE g.school_id = $1 GROUP BY g.key, g.is_default ORDER BY g.key`,
      [schoolId],
    );
    expect(counts.rows).toEqual([
      { key: 'guests', is_default: true, blocks: '27', during: '1' },
      { key: 'pupils', is_default: false, blocks: '27', during: '1' },
      { key: 'staff', is_default: false, blocks: '16', during: '4' },
    ]);
  });

  it('refuses to seed a school that does not exist', async () => {
    await expect(seedDefaultPolicy(db.pool, 9999)).rejects.toThrow(/school #9999 does not exist/);
  });
});

describe('loading the policy input', () => {
  it('reads dates as dates, leaves out expired overrides and disabled people', async () => {
    await db.pool.query(
      "INSERT INTO calendar_periods (school_id, kind, name, starts_on, ends_on) VALUES ($1, 'term', 'Summer', '2025-04-22', '2025-07-18')",
      [schoolId],
    );
    const staff = await db.pool.query<{ id: number }>("SELECT id FROM groups WHERE school_id = $1 AND key = 'staff'", [schoolId]);
    const users = await db.pool.query<{ id: number }>(
      `INSERT INTO users (school_id, username, group_id, disabled) VALUES ($1, 'active', $2, false), ($1, 'gone', $2, true) RETURNING id`,
      [schoolId, staff.rows[0].id],
    );
    await db.pool.query(
      `INSERT INTO ip_assignments (school_id, cidr, user_id) VALUES ($1, '10.9.0.1/32', $2), ($1, '10.9.0.2/32', $3)`,
      [schoolId, users.rows[0].id, users.rows[1].id],
    );
    await db.pool.query(
      `INSERT INTO overrides (school_id, action, kind, value, reason, decided_by, expires_at)
       VALUES ($1, 'allow', 'domain', 'old.example', 'was needed', 'jsmith', now() - interval '1 hour'),
              ($1, 'allow', 'domain', 'new.example', 'is needed', 'jsmith', now() + interval '1 hour')`,
      [schoolId],
    );
    const input = await loadPolicyInput(db.pool, schoolId);
    expect(input.timeZone).toBe('Europe/London');
    expect(input.calendar).toEqual([{ kind: 'term', name: 'Summer', startsOn: '2025-04-22', endsOn: '2025-07-18' }]);
    expect(input.overrides.map((o) => o.value)).toEqual(['new.example']);
    expect(input.overrides[0].expiresAt).toBeInstanceOf(Date);
    expect(input.ipAssignments).toEqual([
      { id: expect.any(Number), cidr: '10.9.0.1/32', groupId: null, user: { id: users.rows[0].id, username: 'active', groupId: staff.rows[0].id } },
    ]);
    expect(input.schedules[0]).toMatchObject({ key: 'school-hours', termTimeOnly: true, windows: [{ days: [1, 2, 3, 4, 5], start: '08:30', end: '15:30' }] });
    await expect(loadPolicyInput(db.pool, 9999)).rejects.toThrow(/school #9999 does not exist/);
  });
});

describe('the policy store', () => {
  beforeAll(async () => {
    // Terms recorded: the spring term covers March; the summer term from the previous test covers July.
    await db.pool.query(
      "INSERT INTO calendar_periods (school_id, kind, name, starts_on, ends_on) VALUES ($1, 'term', 'Spring', '2025-01-06', '2025-04-04')",
      [schoolId],
    );
    await addListEntry('social_networks', 'social.example');
    await addListEntry('gambling', 'bet.example');
    store = await PolicyStore.start({ pool: db.pool, schoolId, log, buildLists });
  });

  it('serves the seeded policy: staff blocked from social networks in school hours only', () => {
    const s = store.current;
    expect(store.version).toBe(1);
    expect(listBuilds).toBe(1);
    expect(decide(s, member('staff'), site('www.social.example'), TUESDAY_10AM)).toMatchObject({
      action: 'block',
      category: 'social_networks',
      rule: 'staff: social networks are blocked during School hours (Mon–Fri 08:30–15:30)',
    });
    expect(decide(s, member('staff'), site('social.example'), SUMMER_TUESDAY_10AM).action).toBe('block');
    for (const now of [TUESDAY_6PM, SATURDAY_10AM]) {
      expect(decide(s, member('staff'), site('social.example'), now)).toMatchObject({
        action: 'allow',
        rule: 'staff: social networks are allowed outside School hours (Mon–Fri 08:30–15:30)',
      });
    }
    expect(decide(s, member('pupils'), site('social.example'), TUESDAY_6PM)).toMatchObject({ action: 'block', rule: 'pupils: social networks are blocked' });
    expect(decide(s, member('staff'), site('bet.example'), TUESDAY_6PM)).toMatchObject({ action: 'block', rule: 'staff: gambling is blocked' });
    expect(store.status()).toMatchObject({ version: 1, listening: true, lastError: null, domains: 2, urls: 0, groups: 3 });
  });

  it('applies a holiday added by SQL: no school hours that day', async () => {
    const outcome = await reloadAfter(() =>
      db.pool.query(
        "INSERT INTO calendar_periods (school_id, kind, name, starts_on, ends_on) VALUES ($1, 'holiday', 'INSET day', '2025-03-04', '2025-03-04')",
        [schoolId],
      ),
    );
    expect(outcome).toMatchObject({ ok: true, tables: ['calendar_periods'] });
    expect(decide(store.current, member('staff'), site('social.example'), TUESDAY_10AM).action).toBe('allow');
    expect(decide(store.current, member('staff'), site('social.example'), new Date('2025-03-05T10:00:00Z')).action).toBe('block');
  });

  it('applies a rule change made by SQL within a second, without rebuilding the lists', async () => {
    const before = store.version;
    const outcome = await reloadAfter(() =>
      db.pool.query(
        `UPDATE group_rules SET action = 'block', schedule_id = NULL
          WHERE group_id = (SELECT id FROM groups WHERE school_id = $1 AND key = 'staff')
            AND category_id = (SELECT id FROM categories WHERE key = 'social_networks')`,
        [schoolId],
      ),
    );
    expect(outcome.ok).toBe(true);
    expect(outcome.ms).toBeLessThan(1000);
    expect(store.version).toBe(before + 1);
    expect(listBuilds).toBe(1);
    expect(decide(store.current, member('staff'), site('social.example'), TUESDAY_6PM)).toMatchObject({
      action: 'block',
      rule: 'staff: social networks are blocked',
    });
  });

  it('applies an override added by SQL', async () => {
    await reloadAfter(() =>
      db.pool.query(
        `INSERT INTO overrides (school_id, action, kind, value, group_id, reason, decided_by)
         SELECT $1, 'allow', 'domain', 'social.example', id, 'department page', 'jsmith' FROM groups WHERE school_id = $1 AND key = 'staff'`,
        [schoolId],
      ),
    );
    expect(decide(store.current, member('staff'), site('social.example'), TUESDAY_6PM)).toMatchObject({
      action: 'allow',
      ruleKind: 'override',
      rule: expect.stringMatching(/^local override #\d+ by jsmith for staff: allow social\.example \("department page"\)$/),
    });
  });

  it('rebuilds the lists when list entries change', async () => {
    const outcome = await reloadAfter(() => addListEntry('gambling', 'casino.example'));
    expect(outcome).toMatchObject({ ok: true, tables: ['list_entries'] });
    expect(listBuilds).toBe(2);
    expect(decide(store.current, member('pupils'), site('casino.example'), TUESDAY_10AM).category).toBe('gambling');
  });

  it('debounces a burst of changes into one reload', async () => {
    const before = store.version;
    const outcome = await reloadAfter(async () => {
      for (const name of ['A', 'B', 'C']) {
        await db.pool.query("INSERT INTO calendar_periods (school_id, kind, name, starts_on, ends_on) VALUES ($1, 'holiday', $2, '2026-01-01', '2026-01-02')", [schoolId, name]);
      }
      await db.pool.query("UPDATE groups SET name = 'All staff' WHERE school_id = $1 AND key = 'staff'", [schoolId]);
    });
    expect(outcome.tables).toEqual(['calendar_periods', 'groups']);
    await new Promise((r) => setTimeout(r, 300));
    expect(store.version).toBe(before + 1);
  });

  it('keeps the old snapshot in service when a change does not compile', async () => {
    const served = store.current;
    const version = store.version;
    const outcome = await reloadAfter(() =>
      db.pool.query(
        `INSERT INTO schedules (school_id, key, name, windows) VALUES ($1, 'broken', 'Broken', '[{"days":[9],"start":"08:30","end":"15:30"}]')`,
        [schoolId],
      ),
    );
    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.error.message).toMatch(/schedule "broken" \(#\d+\), window 1: day 9 is not an ISO weekday/);
    expect(store.current).toBe(served);
    expect(store.version).toBe(version);
    expect(store.status().lastError?.message).toMatch(/day 9/);

    const fixed = await reloadAfter(() => db.pool.query("DELETE FROM schedules WHERE key = 'broken'"));
    expect(fixed.ok).toBe(true);
    expect(store.version).toBe(version + 1);
    expect(store.status().lastError).toBeNull();
  });

  it('listens again after losing its connection, and reloads', async () => {
    const reconnected = store.nextReload();
    const killed = await db.pool.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN portcullis_policy'",
    );
    expect(killed.rowCount).toBe(1);
    const outcome = await Promise.race([
      reconnected,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no reload after reconnecting')), 5000)),
    ]);
    expect(outcome).toMatchObject({ ok: true, tables: ['(reconnected)'] });
    expect(store.status().listening).toBe(true);

    const change = await reloadAfter(() => addListEntry('games', 'play.example'));
    expect(change.ok).toBe(true);
    expect(decide(store.current, member('staff'), site('play.example'), TUESDAY_6PM).category).toBe('games');
  });

  it('refuses to start when there is no policy to serve', async () => {
    await expect(PolicyStore.start({ pool: db.pool, schoolId: 9999, log, buildLists })).rejects.toThrow(/school #9999 does not exist/);
    const bare = await db.pool.query<{ id: number }>("INSERT INTO schools (name) VALUES ('No groups yet') RETURNING id");
    await expect(PolicyStore.start({ pool: db.pool, schoolId: bare.rows[0].id, log, buildLists })).rejects.toThrow(
      /policy for school #\d+: school #\d+ has no default group/,
    );
  });
});
