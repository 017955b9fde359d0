// The access log's indexes that are built on each day's partition once that
// UTC day has closed, instead of being kept up row by row as the day's rows
// arrive: a person's history in time order, and the index by host.
//
// Kept up live they were the dearest part of writing a row (docs/design-
// notes.md, "Writing the access log fast"), at the busiest time of the school
// day. The current day is served without them: a person's rows by the live
// (school_id, user_id) index (migration 013), sorted by time in memory; a
// query by host by scanning that one day's partition. The builds run at
// night, once per day (but for the backlog of days after an upgrade, which
// the first run builds at once), and CONCURRENTLY, so rows still arriving for
// a closed day (a replayed spool, a tunnel that closed after midnight) are
// never held up.
import { cancelOnAbort, type Pool, type PoolClient } from '../core/db.js';
import { DAY_MS, partitionStart } from './partitions.js';

/** Session advisory lock: one builder at a time across processes sharing the database. */
const CLOSED_DAY_INDEX_LOCK = 7_099_746_012;

export interface ClosedDayIndex {
  /** The index is named after its partition and this: access_log_pYYYYMMDD_<suffix>. */
  suffix: string;
  columns: string;
}

/** In the order they are built: an investigation's history first. */
export const CLOSED_DAY_INDEXES: readonly ClosedDayIndex[] = [
  { suffix: 'user_time', columns: 'school_id, user_id, time' },
  { suffix: 'host_time', columns: 'school_id, host, time' },
];

export interface BuiltIndex {
  partition: string;
  index: string;
  milliseconds: number;
}

export const closedDayIndexName = (partition: string, index: ClosedDayIndex): string => `${partition}_${index.suffix}`;

/** Builds one of the indexes on one partition; an earlier, interrupted build (left invalid) is dropped first. */
export async function buildClosedDayIndex(client: PoolClient, partition: string, index: ClosedDayIndex): Promise<void> {
  const name = closedDayIndexName(partition, index);
  const invalid = await client.query('SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid', [name]);
  if (invalid.rowCount) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${client.escapeIdentifier(name)}`);
  await client.query(
    `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${client.escapeIdentifier(name)} ON ${client.escapeIdentifier(partition)} (${index.columns})`,
  );
}

/**
 * Builds the indexes on every partition whose day ended by `now` and lacks
 * a valid one, newest day first (after an upgrade the recent days matter
 * most). Returns what it built. Does nothing if another process is building.
 * An abort cancels the build in progress; the next run starts it again.
 */
export async function indexClosedPartitions(pool: Pool, now: Date, signal?: AbortSignal): Promise<BuiltIndex[]> {
  const client = await pool.connect();
  let session: { locked: boolean; pid: number };
  try {
    const { rows } = await client.query<{ locked: boolean; pid: number }>(
      'SELECT pg_try_advisory_lock($1) AS locked, pg_backend_pid() AS pid',
      [CLOSED_DAY_INDEX_LOCK],
    );
    session = rows[0];
  } catch (err) {
    client.release(err as Error);
    throw err;
  }
  if (!session.locked) {
    client.release();
    return [];
  }
  const stopCancelling = cancelOnAbort(pool, session.pid, signal);
  const built: BuiltIndex[] = [];
  try {
    build: for (const { partition, missing } of await closedPartitionsMissingIndexes(client, now)) {
      for (const index of missing) {
        if (signal?.aborted) break build;
        const started = performance.now();
        try {
          await buildClosedDayIndex(client, partition, index);
        } catch (err) {
          if (cancelledBy(signal, err)) break build; // the stop's cancel: not a failure
          throw err;
        }
        built.push({ partition, index: closedDayIndexName(partition, index), milliseconds: Math.round(performance.now() - started) });
      }
    }
    await stopCancelling();
    await client.query('SELECT pg_advisory_unlock($1)', [CLOSED_DAY_INDEX_LOCK]);
    client.release();
    return built;
  } catch (err) {
    // Ending the session also releases the advisory lock.
    client.release(err as Error);
    // The abort's cancel may have caught a query other than a build: still a stop, not a failure.
    if (cancelledBy(signal, err)) return built;
    throw err;
  } finally {
    // Done already on success; after an error the session has ended (release(err)), so nothing can be hit.
    await stopCancelling();
  }
}

/** Whether `err` is Postgres cancelling a statement (57014) because of the stop; anything else is a failure to report. */
function cancelledBy(signal: AbortSignal | undefined, err: unknown): boolean {
  return signal?.aborted === true && (err as { code?: unknown }).code === '57014';
}

async function closedPartitionsMissingIndexes(client: PoolClient, now: Date): Promise<{ partition: string; missing: ClosedDayIndex[] }[]> {
  const { rows } = await client.query<{ name: string; missing: string[] }>(
    `SELECT c.relname AS name, array_agg(s.suffix) AS missing
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       CROSS JOIN unnest($1::text[]) AS s(suffix)
       LEFT JOIN pg_index x ON x.indexrelid = to_regclass(quote_ident(c.relname || '_' || s.suffix))
      WHERE i.inhparent = 'access_log'::regclass AND x.indisvalid IS NOT TRUE
      GROUP BY c.relname
      ORDER BY c.relname DESC`,
    [CLOSED_DAY_INDEXES.map((index) => index.suffix)],
  );
  return rows
    .filter((row) => {
      const start = partitionStart(row.name); // undefined for a table not ours
      return start !== undefined && start.getTime() + DAY_MS <= now.getTime();
    })
    .map((row) => ({ partition: row.name, missing: CLOSED_DAY_INDEXES.filter((index) => row.missing.includes(index.suffix)) }));
}
