// Writes one batch of encoded access events to Postgres, exactly once.
//
// A batch of events never offered to Postgres before is COPY'd straight into
// access_log: one statement, its own transaction (with the rollup's mark for
// its days when their UTC day is over, see LATE_ROWS_GRACE_HOURS). A batch
// that may have been written already (replayed from the spool after a write
// that timed out but committed), or a first write that meets a row with the
// same (id, time), is COPY'd into a session temp table instead and moved
// with INSERT ... ON CONFLICT (id, time) DO NOTHING, so those rows are
// skipped, and the days of the rows it did add are marked for the rollup.
// The direct path spares Postgres that INSERT ... SELECT, most of a batch's
// work; the staging path is what makes a replay idempotent. The whole attempt
// has a deadline; past it the connection is destroyed, which makes Postgres
// roll the transaction back if it had not committed yet.
import copyStreams from 'pg-copy-streams';
import type { Pool, PoolClient } from '../core/db.js';
import { deadlineIn } from '../core/deadline.js';
import { COPY_COLUMNS } from './copy-row.js';
import { MARK_UTC_DAYS_STALE, markDaysStaleSql } from './rollup.js';

export class WriteTimeoutError extends Error {
  constructor(ms: number) {
    super(`writing to Postgres took longer than ${ms} ms`);
    this.name = 'WriteTimeoutError';
  }
}

/** Postgres refused the data itself (SQLSTATE class 22 or 23): retrying the same batch will not help. */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}

const COLUMN_LIST = COPY_COLUMNS.join(', ');
const STAGING_TABLE = `CREATE TEMP TABLE IF NOT EXISTS access_log_staging (LIKE access_log INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`;
const COPY_INTO_STAGING = `COPY access_log_staging (${COLUMN_LIST}) FROM STDIN`;
// The rows it adds may belong to days already rolled up, however long ago: their days are marked for the rollup.
const MOVE_FROM_STAGING = `
  WITH moved AS (
    INSERT INTO access_log (${COLUMN_LIST}) SELECT ${COLUMN_LIST} FROM access_log_staging
    ON CONFLICT (id, time) DO NOTHING
    RETURNING school_id, time
  ), marked AS (${markDaysStaleSql('moved')})
  SELECT count(*)::int AS moved FROM moved`;
const COPY_INTO_LOG = `COPY access_log (${COLUMN_LIST}) FROM STDIN`;
const UNIQUE_VIOLATION = '23505';

/** Whether the rows of a batch may already be in access_log. */
export type WriteKind = 'first' | 'again';

export class PostgresSink {
  /** UTC days whose partition this process has seen to exist. */
  private readonly knownDays = new Set<string>();
  /** Pooled sessions that already have the staging table. */
  private readonly withStaging = new WeakSet<PoolClient>();

  constructor(
    private readonly pool: Pool,
    private readonly timeoutMs: number,
  ) {}

  /** Writes the COPY text lines for rows on `days`, given in pieces; resolves with the number of rows that were new. */
  async write(pieces: readonly string[], days: ReadonlySet<string>, kind: WriteKind): Promise<number> {
    const deadline = deadlineIn(this.timeoutMs, () => new WriteTimeoutError(this.timeoutMs));
    const connecting = this.pool.connect();
    try {
      let client: PoolClient;
      try {
        client = await Promise.race([connecting, deadline.expired]);
      } catch (err) {
        connecting.then((late) => late.release(true), () => undefined);
        throw err;
      }
      const work = this.writeWith(client, pieces, days, kind);
      work.catch(() => undefined); // after a timeout its failure is already accounted for
      try {
        const inserted = await Promise.race([work, deadline.expired]);
        client.release();
        return inserted;
      } catch (err) {
        // Mid-transaction or stalled: never hand this session back to the pool.
        client.release(true);
        if ((err as { code?: unknown }).code === '23514') this.knownDays.clear(); // a partition may have been dropped
        throw err;
      }
    } finally {
      deadline.cancel();
    }
  }

  /** Resolves once Postgres answers a trivial query within the deadline. */
  async ping(): Promise<void> {
    await this.write([], new Set(), 'again');
  }

  private async writeWith(client: PoolClient, pieces: readonly string[], days: ReadonlySet<string>, kind: WriteKind): Promise<number> {
    const missing = [...days].filter((d) => !this.knownDays.has(d));
    if (missing.length) {
      await client.query('SELECT access_log_ensure_partition(d) FROM unnest($1::date[]) AS d', [missing]);
      for (const d of missing) this.knownDays.add(d);
    }
    if (kind === 'first' && pieces.length > 0) {
      const pastDays = pastUtcDays(days);
      try {
        if (pastDays.length === 0) return await copy(client, COPY_INTO_LOG, pieces);
        // Rows of a UTC day already over (a tunnel that closed after midnight):
        // their days may be rolled up already, so they are marked for the
        // next rollup, in the COPY's transaction as a replay's are.
        await client.query('BEGIN');
        const copied = await copy(client, COPY_INTO_LOG, pieces);
        await client.query(MARK_UTC_DAYS_STALE, [pastDays]);
        await client.query('COMMIT');
        return copied;
      } catch (err) {
        if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
        // The COPY is rolled back, and the session is usable again.
        if (pastDays.length > 0) await client.query('ROLLBACK');
      }
    }
    if (!this.withStaging.has(client)) {
      await client.query(STAGING_TABLE);
      this.withStaging.add(client);
    }
    if (pieces.length === 0) return 0;
    await client.query('BEGIN');
    await copy(client, COPY_INTO_STAGING, pieces);
    const moved = await client.query<{ moved: number }>(MOVE_FROM_STAGING);
    await client.query('COMMIT');
    return moved.rows[0].moved;
  }
}

/** The days in `days` (UTC, YYYY-MM-DD) before today's. */
function pastUtcDays(days: ReadonlySet<string>): string[] {
  const today = new Date().toISOString().slice(0, 10);
  return [...days].filter((day) => day < today);
}

/**
 * Runs a COPY ... FROM STDIN with `pieces` as its data; resolves with the
 * number of rows copied once Postgres has confirmed them ('finish'). The
 * pieces are written straight to the COPY stream: stream.pipeline() would
 * build and throw away an AbortError, stack trace and all, at the end of
 * every batch.
 */
function copy(client: PoolClient, statement: string, pieces: readonly string[]): Promise<number> {
  const stream = client.query(copyStreams.from(statement));
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.once('finish', () => resolve(stream.rowCount ?? 0));
    for (const piece of pieces) stream.write(piece);
    stream.end();
  });
}
