// The daily rollup: requests and bytes per school, local day, person, group,
// category and action, computed from access_log for one day.
//
// `day` is each school's local day (schools.timezone), so a London school's
// Monday runs from 00:00 to 24:00 London time. A request in several
// categories counts once in each; one in none counts under category ''
// (reports show it as "uncategorised"). Rows whose school no longer exists
// are left out. Re-running a day replaces that day's rows.
import { cancelOnAbort, inTransaction, type Pool } from '../core/db.js';

/** With the day, the two int keys of the rollup's advisory lock. */
const ROLLUP_LOCK = 0x726f6c6c; // "roll"
const DAY = /^\d{4}-\d{2}-\d{2}$/;

export const UNCATEGORISED = '';

const ROLLUP = `
  WITH bounds AS (
    SELECT id AS school_id,
           $1::date::timestamp AT TIME ZONE timezone AS day_start,
           ($1::date + 1)::timestamp AT TIME ZONE timezone AS day_end
    FROM schools
  )
  INSERT INTO access_log_daily (school_id, day, user_id, group_id, category, action, requests, bytes)
  SELECT l.school_id, $1::date, l.user_id, l.group_id, c.category, l.action, count(*), sum(l.bytes_in + l.bytes_out)
  FROM bounds b
  JOIN access_log l ON l.school_id = b.school_id AND l.time >= b.day_start AND l.time < b.day_end
  CROSS JOIN LATERAL unnest(CASE WHEN cardinality(l.categories) = 0 THEN ARRAY[$2::text] ELSE l.categories END) AS c(category)
  -- Bounds every school's day, so only the partitions that can hold it are scanned.
  WHERE l.time >= (SELECT min(day_start) FROM bounds) AND l.time < (SELECT max(day_end) FROM bounds)
  GROUP BY l.school_id, l.user_id, l.group_id, c.category, l.action
  ON CONFLICT ON CONSTRAINT access_log_daily_key
  DO UPDATE SET requests = EXCLUDED.requests, bytes = EXCLUDED.bytes`;

/**
 * Recomputes the rollup for `day` (YYYY-MM-DD); returns the number of rollup
 * rows it now has. An abort cancels it (a busy day's rollup can take a minute
 * or more): the transaction rolls back, the day keeps its rows as they were,
 * and this rejects.
 */
export async function rollupDay(pool: Pool, day: string, signal?: AbortSignal): Promise<number> {
  if (!DAY.test(day) || Number.isNaN(new Date(`${day}T00:00:00Z`).getTime())) {
    throw new Error(`rollup day must be a date as YYYY-MM-DD, got "${day}"`);
  }
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const stopCancelling = cancelOnAbort(pool, rows[0].pid, signal);
    try {
      // Checked before each statement too: a cancel that arrives after its statement ended would miss the next one.
      signal?.throwIfAborted();
      // One rollup of a day at a time, so two processes cannot interleave delete and insert.
      await client.query('SELECT pg_advisory_xact_lock($1, $2::date - DATE \'2000-01-01\')', [ROLLUP_LOCK, day]);
      signal?.throwIfAborted();
      await client.query('DELETE FROM access_log_daily WHERE day = $1::date', [day]);
      signal?.throwIfAborted();
      const inserted = await client.query(ROLLUP, [day, UNCATEGORISED]);
      return inserted.rowCount ?? 0;
    } finally {
      await stopCancelling();
    }
  });
}
