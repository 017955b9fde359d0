// The access log's index by host, (school_id, host, time), built on each
// day's partition once that UTC day has closed instead of being kept up row
// by row as the day's rows arrive.
//
// Kept up live it cost Postgres about a third of its CPU per row written
// (docs/design-notes.md, "Writing the access log fast"), at the busiest time
// of the school day, and no query of the current day needs it: a person's
// history and the reports have indexes of their own. A query by host over
// the current day scans that one day's partition. The build runs at night,
// once per day, and CONCURRENTLY, so rows still arriving for a closed day (a
// replayed spool, a tunnel that closed after midnight) are never held up.
import { cancelOnAbort, type Pool, type PoolClient } from '../core/db.js';
import { DAY_MS, partitionStart } from './partitions.js';

/** Session advisory lock: one builder at a time across processes sharing the database. */
const HOST_INDEX_LOCK = 7_099_746_012;

export interface BuiltHostIndex {
  partition: string;
  index: string;
  milliseconds: number;
}

export const hostIndexName = (partition: string): string => `${partition}_host_time`;

/** Builds the index by host on one partition; an earlier, interrupted build (left invalid) is dropped first. */
export async function buildHostIndex(client: PoolClient, partition: string): Promise<void> {
  const index = client.escapeIdentifier(hostIndexName(partition));
  const invalid = await client.query(
    'SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid',
    [hostIndexName(partition)],
  );
  if (invalid.rowCount) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
  await client.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${index} ON ${client.escapeIdentifier(partition)} (school_id, host, time)`);
}

/**
 * Builds the index by host on every partition whose day ended by `now` and
 * lacks a valid one, newest first (after an upgrade the recent days matter
 * most). Returns what it built. Does nothing if another process is building.
 * An abort cancels the build in progress; the next run starts it again.
 */
export async function indexClosedPartitions(pool: Pool, now: Date, signal?: AbortSignal): Promise<BuiltHostIndex[]> {
  const client = await pool.connect();
  let session: { locked: boolean; pid: number };
  try {
    const { rows } = await client.query<{ locked: boolean; pid: number }>(
      'SELECT pg_try_advisory_lock($1) AS locked, pg_backend_pid() AS pid',
      [HOST_INDEX_LOCK],
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
  const built: BuiltHostIndex[] = [];
  try {
    for (const partition of await closedPartitionsWithoutHostIndex(client, now)) {
      if (signal?.aborted) break;
      const started = performance.now();
      try {
        await buildHostIndex(client, partition);
      } catch (err) {
        if (signal?.aborted) break; // cancelled by the abort: not a failure
        throw err;
      }
      built.push({ partition, index: hostIndexName(partition), milliseconds: Math.round(performance.now() - started) });
    }
    await stopCancelling();
    await client.query('SELECT pg_advisory_unlock($1)', [HOST_INDEX_LOCK]);
    client.release();
    return built;
  } catch (err) {
    // Ending the session also releases the advisory lock.
    client.release(err as Error);
    // The abort's cancel may have caught a query other than a build: still a stop, not a failure.
    if (signal?.aborted) return built;
    throw err;
  } finally {
    // Done already on success; after an error the session has ended (release(err)), so nothing can be hit.
    await stopCancelling();
  }
}

async function closedPartitionsWithoutHostIndex(client: PoolClient, now: Date): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       LEFT JOIN pg_index x ON x.indexrelid = to_regclass(quote_ident(c.relname || '_host_time'))
      WHERE i.inhparent = 'access_log'::regclass AND x.indisvalid IS NOT TRUE
      ORDER BY c.relname DESC`,
  );
  return rows
    .map((r) => r.name)
    .filter((name) => {
      const start = partitionStart(name); // undefined for a table not ours
      return start !== undefined && start.getTime() + DAY_MS <= now.getTime();
    });
}
