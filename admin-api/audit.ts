// The audit chain: one append-only row per admin change or history read,
// each row's hash = SHA-256(previous row's hash || canonical JSON of its own
// fields), per school. Appends to a school's chain are serialised by an
// advisory lock held until the transaction ends, so concurrent changes
// chain one after another and never fork.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { inTransaction, type Pool, type PoolClient } from '../core/db.js';

export interface AuditActor {
  userId: number | null;
  username: string;
}

export interface AuditEntry {
  schoolId: number;
  actor: AuditActor;
  /** resource.verb, e.g. 'user.create', 'history.read'. */
  action: string;
  /** What was acted on, e.g. 'user:j.smith', 'group:pupils'. */
  target: string;
  detail?: Record<string, unknown>;
}

export interface AuditRecord {
  id: number;
  schoolId: number;
  at: string;
  actorUserId: number | null;
  actorUsername: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
}

export type AuditVerification = { ok: true; rows: number; headHash: string | null } | { ok: false; rows: number; firstBrokenId: number; reason: string };

// Two-key advisory lock: (this constant, school id). "audt".
const AUDIT_LOCK_CLASS = 0x61756474;
const VERIFY_BATCH = 1000;

/** JSON with object keys sorted at every level, so the same row always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function rowHash(prevHash: Buffer | null, record: AuditRecord): Buffer {
  const h = createHash('sha256');
  if (prevHash) h.update(prevHash);
  return h.update(canonicalJson(record), 'utf8').digest();
}

/**
 * Appends one row to the school's chain. Given a client, it must be inside a
 * transaction (the row then commits or rolls back with the change it
 * records); given the pool, it runs its own.
 */
export async function appendAudit(db: Pool | PoolClient, entry: AuditEntry): Promise<AuditRecord> {
  if (db instanceof pg.Pool) return inTransaction(db, (client) => appendInTransaction(client, entry));
  return appendInTransaction(db, entry);
}

async function appendInTransaction(client: PoolClient, entry: AuditEntry): Promise<AuditRecord> {
  await client.query('SELECT pg_advisory_xact_lock($1, $2)', [AUDIT_LOCK_CLASS, entry.schoolId]);
  const prev = await client.query<{ hash: Buffer }>('SELECT hash FROM audit_log WHERE school_id = $1 ORDER BY id DESC LIMIT 1', [
    entry.schoolId,
  ]);
  // Milliseconds, so the time hashed is exactly the time that reads back.
  const next = await client.query<{ id: string; at: Date }>(
    `SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) AS id, date_trunc('milliseconds', clock_timestamp()) AS at`,
  );
  const record: AuditRecord = {
    id: Number(next.rows[0].id),
    schoolId: entry.schoolId,
    at: next.rows[0].at.toISOString(),
    actorUserId: entry.actor.userId,
    actorUsername: entry.actor.username,
    action: entry.action,
    target: entry.target,
    // The form jsonb gives back: undefined dropped, -0 as 0, and so on.
    detail: JSON.parse(JSON.stringify(entry.detail ?? {})) as Record<string, unknown>,
  };
  const prevHash = prev.rows[0]?.hash ?? null;
  await client.query(
    `INSERT INTO audit_log (id, school_id, at, actor_user_id, actor_username, action, target, detail, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      record.id,
      record.schoolId,
      record.at,
      record.actorUserId,
      record.actorUsername,
      record.action,
      record.target,
      JSON.stringify(record.detail),
      prevHash,
      rowHash(prevHash, record),
    ],
  );
  return record;
}

interface AuditRow {
  id: string;
  school_id: number;
  at: Date;
  actor_user_id: number | null;
  actor_username: string;
  action: string;
  target: string;
  detail: Record<string, unknown>;
  prev_hash: Buffer | null;
  hash: Buffer;
}

const AUDIT_COLUMNS = 'id, school_id, at, actor_user_id, actor_username, action, target, detail, prev_hash, hash';

function recordOf(row: AuditRow): AuditRecord {
  return {
    id: Number(row.id),
    schoolId: row.school_id,
    at: row.at.toISOString(),
    actorUserId: row.actor_user_id,
    actorUsername: row.actor_username,
    action: row.action,
    target: row.target,
    detail: row.detail,
  };
}

/** One page of the school's audit log, newest first, optionally one action only. */
export async function listAudit(
  pool: Pool,
  schoolId: number,
  options: { beforeId?: number; limit: number; action?: string },
): Promise<Array<AuditRecord & { hash: string }>> {
  const { rows } = await pool.query<AuditRow>(
    `SELECT ${AUDIT_COLUMNS} FROM audit_log
      WHERE school_id = $1 AND ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR action = $3)
      ORDER BY id DESC LIMIT $4`,
    [schoolId, options.beforeId ?? null, options.action ?? null, options.limit],
  );
  return rows.map((row) => ({ ...recordOf(row), hash: row.hash.toString('hex') }));
}

/** Walks the school's chain from the start, recomputing every link. */
export async function verifyAuditChain(pool: Pool, schoolId: number): Promise<AuditVerification> {
  let prevHash: Buffer | null = null;
  let afterId = 0;
  let rows = 0;
  for (;;) {
    const batch: pg.QueryResult<AuditRow> = await pool.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit_log WHERE school_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [schoolId, afterId, VERIFY_BATCH],
    );
    for (const row of batch.rows) {
      const id = Number(row.id);
      const linked = prevHash === null ? row.prev_hash === null : row.prev_hash !== null && prevHash.equals(row.prev_hash);
      if (!linked) {
        return { ok: false, rows, firstBrokenId: id, reason: 'prev_hash does not match the hash of the row before it (a row was removed, inserted or altered)' };
      }
      if (!rowHash(row.prev_hash, recordOf(row)).equals(row.hash)) {
        return { ok: false, rows, firstBrokenId: id, reason: "the row's contents do not match its hash (the row was altered)" };
      }
      prevHash = row.hash;
      afterId = id;
      rows += 1;
    }
    if (batch.rows.length < VERIFY_BATCH) return { ok: true, rows, headHash: prevHash?.toString('hex') ?? null };
  }
}
