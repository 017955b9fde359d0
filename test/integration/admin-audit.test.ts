// The audit chain: appends chain correctly (also concurrently and inside the
// change's transaction), the table is append-only, tampering is found and the
// first broken row named; and the audit routes' access.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, rowHash, verifyAuditChain, type AuditEntry } from '../../admin-api/audit.js';
import { inTransaction } from '../../core/db.js';
import { startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';

let h: AdminHarness;
let admin: SignedIn;

beforeAll(async () => {
  h = await startAdminHarness();
  await h.createUser('admin', ['staff', 'it_admin']);
  admin = await h.signIn('admin');
});

afterAll(() => h.close());

/** A school of its own, so that breaking its chain leaves the others alone. */
async function newSchool(): Promise<number> {
  const { rows } = await h.db.pool.query<{ id: number }>("INSERT INTO schools (name) VALUES ('Chain School') RETURNING id");
  return rows[0].id;
}

const entry = (schoolId: number, n: number): AuditEntry => ({
  schoolId,
  actor: { userId: null, username: 'system' },
  action: 'test.append',
  target: `thing:${n}`,
  detail: { n, nested: { b: [1, 'two', null], a: true } },
});

/** As a superuser would: switch the append-only trigger off, run `sql`, switch it back on. */
async function tamper(sql: string, params: unknown[]): Promise<void> {
  await inTransaction(h.db.pool, async (client) => {
    await client.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
    await client.query(sql, params);
    await client.query('ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only');
  });
}

describe('the chain', () => {
  it('verifies an intact chain, including one written by concurrent appends', async () => {
    const schoolId = await newSchool();
    expect(await verifyAuditChain(h.db.pool, schoolId)).toEqual({ ok: true, rows: 0, headHash: null });
    for (let n = 0; n < 3; n++) await appendAudit(h.db.pool, entry(schoolId, n));
    await Promise.all(Array.from({ length: 30 }, (_, n) => appendAudit(h.db.pool, entry(schoolId, 100 + n))));
    const result = await verifyAuditChain(h.db.pool, schoolId);
    expect(result).toMatchObject({ ok: true, rows: 33 });
    const { rows } = await h.db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM audit_log WHERE school_id = $1 GROUP BY prev_hash HAVING count(*) > 1',
      [schoolId],
    );
    expect(rows).toEqual([]); // no two rows claim the same predecessor: the chain never forked
  });

  it('commits the audit row with the change it records, or neither', async () => {
    const schoolId = await newSchool();
    await expect(
      inTransaction(h.db.pool, async (client) => {
        await client.query("UPDATE schools SET name = 'Renamed' WHERE id = $1", [schoolId]);
        await appendAudit(client, entry(schoolId, 1));
        throw new Error('the change fails after auditing');
      }),
    ).rejects.toThrow('the change fails');
    const { rows } = await h.db.pool.query('SELECT count(*)::int AS n FROM audit_log WHERE school_id = $1', [schoolId]);
    expect(rows[0].n).toBe(0);
    expect((await h.db.pool.query('SELECT name FROM schools WHERE id = $1', [schoolId])).rows[0].name).toBe('Chain School');
  });

  it('refuses UPDATE, DELETE and TRUNCATE', async () => {
    const schoolId = await newSchool();
    await appendAudit(h.db.pool, entry(schoolId, 1));
    await expect(h.db.pool.query("UPDATE audit_log SET target = 'x' WHERE school_id = $1", [schoolId])).rejects.toThrow(/append-only/);
    await expect(h.db.pool.query('DELETE FROM audit_log WHERE school_id = $1', [schoolId])).rejects.toThrow(/append-only/);
    await expect(h.db.pool.query('TRUNCATE audit_log')).rejects.toThrow(/append-only/);
    expect(await verifyAuditChain(h.db.pool, schoolId)).toMatchObject({ ok: true, rows: 1 });
  });

  it('names the first altered row', async () => {
    const schoolId = await newSchool();
    const ids: number[] = [];
    for (let n = 0; n < 5; n++) ids.push((await appendAudit(h.db.pool, entry(schoolId, n))).id);
    await tamper(`UPDATE audit_log SET detail = '{"n": 99}' WHERE id = $1`, [ids[2]]);
    const result = await verifyAuditChain(h.db.pool, schoolId);
    expect(result).toMatchObject({ ok: false, rows: 2, firstBrokenId: ids[2] });
    if (!result.ok) expect(result.reason).toMatch(/contents do not match/);
  });

  it('names the row after a removed one', async () => {
    const schoolId = await newSchool();
    const ids: number[] = [];
    for (let n = 0; n < 4; n++) ids.push((await appendAudit(h.db.pool, entry(schoolId, n))).id);
    await tamper('DELETE FROM audit_log WHERE id = $1', [ids[1]]);
    expect(await verifyAuditChain(h.db.pool, schoolId)).toMatchObject({ ok: false, rows: 1, firstBrokenId: ids[2] });
  });

  it('catches a forged row whose hash was recomputed to match: the next row no longer links to it', async () => {
    const schoolId = await newSchool();
    const records = [];
    for (let n = 0; n < 3; n++) records.push(await appendAudit(h.db.pool, entry(schoolId, n)));
    const prev = await h.db.pool.query<{ hash: Buffer }>('SELECT hash FROM audit_log WHERE id = $1', [records[0].id]);
    const forged = { ...records[1], detail: { n: 1, forged: true } };
    await tamper('UPDATE audit_log SET detail = $2, hash = $3 WHERE id = $1', [
      forged.id,
      JSON.stringify(forged.detail),
      rowHash(prev.rows[0].hash, forged),
    ]);
    const result = await verifyAuditChain(h.db.pool, schoolId);
    expect(result).toMatchObject({ ok: false, rows: 2, firstBrokenId: records[2].id });
    if (!result.ok) expect(result.reason).toMatch(/prev_hash does not match/);
  });
});

describe('audit routes', () => {
  it('lets it_admin, headteacher and governor verify; not staff or dsl', async () => {
    const expected: Array<[string, number]> = [
      ['audit-head', 200],
      ['audit-governor', 200],
      ['audit-staff', 403],
      ['audit-dsl', 403],
    ];
    await h.createUser('audit-head', ['headteacher']);
    await h.createUser('audit-governor', ['governor']);
    await h.createUser('audit-staff', ['staff']);
    await h.createUser('audit-dsl', ['dsl']);
    expect((await h.as(admin, { method: 'GET', url: '/api/audit/verify' })).statusCode).toBe(200);
    for (const [username, status] of expected) {
      const session = await h.signIn(username);
      expect((await h.as(session, { method: 'GET', url: '/api/audit/verify' })).statusCode, username).toBe(status);
      // The log itself is for IT admins only.
      expect((await h.as(session, { method: 'GET', url: '/api/audit' })).statusCode, username).toBe(403);
    }
    expect((await h.app.inject({ method: 'GET', url: '/api/audit/verify' })).statusCode).toBe(401);
  });

  it("lists the school's log newest first, a page at a time, filtered by action", async () => {
    for (let n = 0; n < 5; n++) {
      const payload = { key: `audit-group-${n}`, name: `Audit group ${n}` };
      expect((await h.as(admin, { method: 'POST', url: '/api/groups', payload })).statusCode).toBe(201);
    }
    const targets: string[] = [];
    let cursor: string | undefined;
    do {
      const query: Record<string, string> = { action: 'group.create', limit: '2', ...(cursor ? { cursor } : {}) };
      const page = (await h.as(admin, { method: 'GET', url: '/api/audit', query })).json() as {
        items: Array<{ target: string; action: string; actorUsername: string; hash: string }>;
        nextCursor: string | null;
      };
      for (const item of page.items) {
        expect(item).toMatchObject({ action: 'group.create', actorUsername: 'admin' });
        expect(item.hash).toMatch(/^[0-9a-f]{64}$/);
      }
      targets.push(...page.items.map((i) => i.target));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(targets).toEqual([4, 3, 2, 1, 0].map((n) => `group:audit-group-${n}`));
    // Other schools' rows (the chain tests above) never show.
    const all = (await h.as(admin, { method: 'GET', url: '/api/audit', query: { limit: '200' } })).json().items as Array<{ action: string }>;
    expect(all.some((i) => i.action === 'test.append')).toBe(false);
  });

  it('reports tampering through the route', async () => {
    const before = (await h.as(admin, { method: 'GET', url: '/api/audit/verify' })).json();
    expect(before.ok).toBe(true);
    const { rows } = await h.db.pool.query<{ id: string }>('SELECT id FROM audit_log WHERE school_id = $1 ORDER BY id LIMIT 1 OFFSET 1', [h.schoolId]);
    await tamper(`UPDATE audit_log SET detail = detail || '{"name": "forged"}' WHERE id = $1`, [rows[0].id]);
    const after = (await h.as(admin, { method: 'GET', url: '/api/audit/verify' })).json();
    expect(after).toMatchObject({ ok: false, rows: 1, firstBrokenId: Number(rows[0].id) });
  });
});
