// The daily rollup: requests and bytes per school, local day, person, group,
// category and action, computed from access_log for one day.
//
// `day` is each school's local day (schools.timezone), so a London school's
// Monday runs from 00:00 to 24:00 London time. A request in several
// categories counts once in each; one in none counts under category ''
// (reports show it as "uncategorised"). Rows whose school no longer exists
// are left out. Re-running a day replaces that day's rows. Which days are
// due, and the marks late rows leave, are below (daysToRollUp, markDaysStaleSql).
import { cancelOnAbort, inTransaction, type Pool } from '../core/db.js';

/** With the day, the two int keys of the rollup's advisory lock. */
const ROLLUP_LOCK = 0x726f6c6c; // "roll"
const DAY = /^\d{4}-\d{2}-\d{2}$/;

export const UNCATEGORISED = '';

/** Each school's local day as UTC instants. */
const SCHOOL_DAYS = `
  SELECT id, $1::date::timestamp AT TIME ZONE timezone AS day_start, ($1::date + 1)::timestamp AT TIME ZONE timezone AS day_end
  FROM schools ORDER BY id`;

/**
 * One pass over the day's partitions for every school: rows counted per set
 * of categories first, and the sets split into categories after (splitting
 * each row cost more than counting it). The schools' bounds come as arrays
 * of values, and the widest span as two more, so that only the day's
 * partitions are read and the planner knows the scan covers them. It cannot
 * know that a day holds a few thousand (person, group, categories, action)
 * groups, not millions: left to itself it walked the person index and sorted
 * the whole day on disk, so the rollup's transaction turns sorting off
 * (ROLLUP_PLAN) and it counts in a hash table, which spills to disk by
 * itself if the groups outgrow memory. On a day of 16.5 million rows: 36 s
 * before 5 Dec 2026, 7.8–13.7 s now (three runs), on one core.
 */
const ROLLUP_PLAN = 'SET LOCAL enable_sort = off; SET LOCAL enable_incremental_sort = off';
const ROLLUP = `
  INSERT INTO access_log_daily (school_id, day, user_id, group_id, category, action, requests, bytes)
  SELECT g.school_id, $1::date, g.user_id, g.group_id, c.category, g.action, sum(g.requests), sum(g.bytes)
  FROM (
    SELECT l.school_id, l.user_id, l.group_id, l.categories, l.action, count(*) AS requests, sum(l.bytes_in + l.bytes_out) AS bytes
    FROM access_log l
    JOIN unnest($2::int[], $3::timestamptz[], $4::timestamptz[]) AS b(school_id, day_start, day_end)
      ON b.school_id = l.school_id AND l.time >= b.day_start AND l.time < b.day_end
    WHERE l.time >= $5 AND l.time < $6
    GROUP BY l.school_id, l.user_id, l.group_id, l.categories, l.action
  ) AS g
  CROSS JOIN LATERAL unnest(CASE WHEN cardinality(g.categories) = 0 THEN ARRAY[$7::text] ELSE g.categories END) AS c(category)
  GROUP BY g.school_id, g.user_id, g.group_id, c.category, g.action`;

export interface RollupOptions {
  /** Aborting cancels the rollup: the transaction rolls back, the day keeps its rows as they were, and rollupDay rejects. */
  signal?: AbortSignal;
  /** The clock the day's rollup is recorded at (access_log_rollups), for daysToRollUp; now by default. */
  now?: Date;
}

/**
 * Recomputes the rollup for `day` (YYYY-MM-DD); returns the number of rollup
 * rows it now has. A busy day's rollup takes seconds: an abort cancels it.
 * The day's mark for late rows, if any, is cleared in the same transaction,
 * unless a replay marked the day again after the rollup found the mark: its
 * rows may not have been read, so the mark stays for the next run.
 */
export async function rollupDay(pool: Pool, day: string, options: RollupOptions = {}): Promise<number> {
  if (!DAY.test(day) || Number.isNaN(new Date(`${day}T00:00:00Z`).getTime())) {
    throw new Error(`rollup day must be a date as YYYY-MM-DD, got "${day}"`);
  }
  const { signal } = options;
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const stopCancelling = cancelOnAbort(pool, rows[0].pid, signal);
    try {
      // Checked before each statement too: a cancel that arrives after its statement ended would miss the next one.
      signal?.throwIfAborted();
      // One rollup of a day at a time, so two processes cannot interleave delete and insert.
      await client.query('SELECT pg_advisory_xact_lock($1, $2::date - DATE \'2000-01-01\')', [ROLLUP_LOCK, day]);
      signal?.throwIfAborted();
      // The day's mark as found before the rows are read; a replay that marks the day again from now on bumps it.
      const mark = await client.query<{ generation: string }>('SELECT generation FROM access_log_rollup_stale WHERE day = $1::date', [day]);
      signal?.throwIfAborted();
      await client.query('DELETE FROM access_log_daily WHERE day = $1::date', [day]);
      signal?.throwIfAborted();
      await client.query(ROLLUP_PLAN);
      const schools = (await client.query<{ id: number; day_start: Date; day_end: Date }>(SCHOOL_DAYS, [day])).rows;
      let inserted = 0;
      if (schools.length) {
        signal?.throwIfAborted();
        const starts = schools.map((school) => school.day_start);
        const ends = schools.map((school) => school.day_end);
        const earliest = new Date(Math.min(...starts.map(Number)));
        const latest = new Date(Math.max(...ends.map(Number)));
        const rolled = await client.query(ROLLUP, [day, schools.map((school) => school.id), starts, ends, earliest, latest, UNCATEGORISED]);
        inserted = rolled.rowCount ?? 0;
      }
      signal?.throwIfAborted();
      // Only now, and only if unchanged: a replay's mark is never held up for the length of a rollup.
      if (mark.rows.length) {
        await client.query('DELETE FROM access_log_rollup_stale WHERE day = $1::date AND generation = $2', [day, mark.rows[0].generation]);
      }
      await client.query(
        `INSERT INTO access_log_rollups (day, rolled_up_at) VALUES ($1::date, $2)
         ON CONFLICT (day) DO UPDATE SET rolled_up_at = EXCLUDED.rolled_up_at`,
        [day, options.now ?? new Date()],
      );
      return inserted;
    } finally {
      await stopCancelling();
    }
  });
}

/**
 * Rows can reach a day after it ends: a tunnel or a download is logged when
 * it closes, with the time it began. A day that has ended in every school's
 * time zone is rolled up once more by the first run this long after that;
 * then it is settled. Until then, reports show it as of its last hourly
 * rollup (at most its last hour short). Rows written after their UTC day
 * ended mark their days as a replay's do (MARK_UTC_DAYS_STALE, in the
 * writer's COPY), so a tunnel open across midnight for longer than this is
 * counted by the run after it closes.
 */
export const LATE_ROWS_GRACE_HOURS = 6;
/** Days back a day left unsettled (the maintenance was not running when it was due) is still settled. */
const SETTLE_LOOKBACK_DAYS = 7;

/**
 * The days the maintenance at `now` rolls up, oldest first: each school's
 * current local day; each of the last week's days that is due to be settled
 * and is not; and every day within the retention that a spool replay has
 * added rows to since its last rollup.
 */
export async function daysToRollUp(pool: Pool, now: Date, retentionDays: number): Promise<string[]> {
  const { rows } = await pool.query<{ day: string }>(
    `WITH utc AS (SELECT ($1::timestamptz AT TIME ZONE 'UTC')::date AS today),
     recent AS (
       SELECT d::date AS day FROM utc, generate_series(utc.today - $4::int, utc.today, interval '1 day') AS d
     ), settles AS (
       SELECT r.day, max((r.day + 1)::timestamp AT TIME ZONE s.timezone) + make_interval(hours => $3) AS at
       FROM recent r CROSS JOIN schools s GROUP BY r.day
     )
     SELECT to_char(day, 'YYYY-MM-DD') AS day FROM (
       SELECT ($1::timestamptz AT TIME ZONE timezone)::date AS day FROM schools
       UNION
       SELECT st.day FROM settles st
        WHERE $1::timestamptz >= st.at
          AND NOT EXISTS (SELECT 1 FROM access_log_rollups r WHERE r.day = st.day AND r.rolled_up_at >= st.at)
       UNION
       SELECT day FROM access_log_rollup_stale, utc WHERE day <= utc.today + 1 AND day > utc.today - $2::int
     ) AS due
     ORDER BY day`,
    [now, retentionDays, LATE_ROWS_GRACE_HOURS, SETTLE_LOOKBACK_DAYS],
  );
  return rows.map((r) => r.day);
}

/** Forgets what the schedule no longer needs: marks of days past the retention, records of runs before the lookback. */
export async function forgetOldRollupRecords(pool: Pool, now: Date, retentionDays: number): Promise<void> {
  // UTC today worked out in SQL, as daysToRollUp works it out.
  const utcToday = "($1::timestamptz AT TIME ZONE 'UTC')::date";
  await pool.query(`DELETE FROM access_log_rollup_stale WHERE day <= ${utcToday} - $2::int`, [now, retentionDays]);
  await pool.query(`DELETE FROM access_log_rollups WHERE day < ${utcToday} - $2::int`, [now, SETTLE_LOOKBACK_DAYS]);
}

/** A mark made again is bumped: a rollup reading the log meanwhile then leaves it for the next run. */
const BUMP_MARK = 'ON CONFLICT (day) DO UPDATE SET generation = access_log_rollup_stale.generation + 1, marked_at = now()';

/**
 * A statement marking the school-local days of the rows in `relation` (with
 * school_id and time columns) for the next rollup; run where the rows are
 * added, in the same transaction. A rollup of one of those days that is
 * reading the log meanwhile finds its mark bumped (or made anew) and leaves
 * it for the next run.
 */
export function markDaysStaleSql(relation: string): string {
  return `INSERT INTO access_log_rollup_stale (day)
          SELECT DISTINCT (l.time AT TIME ZONE s.timezone)::date FROM ${relation} l JOIN schools s ON s.id = l.school_id
          ${BUMP_MARK}`;
}

/**
 * A statement marking, for the next rollup, every school-local day that
 * overlaps the UTC days given as $1 (date[]): for rows whose schools and
 * times the statement is not given, written live after their UTC day ended
 * (a tunnel or download that began before midnight). A UTC day overlaps at
 * most two local days in any school; they are the local days of its first
 * and last instants.
 */
export const MARK_UTC_DAYS_STALE = `
  INSERT INTO access_log_rollup_stale (day)
  SELECT DISTINCT (edge.at AT TIME ZONE s.timezone)::date
  FROM unnest($1::date[]) AS u(day)
  CROSS JOIN LATERAL (VALUES (u.day::timestamp AT TIME ZONE 'UTC'), ((u.day + 1)::timestamp AT TIME ZONE 'UTC' - interval '1 microsecond')) AS edge(at)
  CROSS JOIN schools s
  ${BUMP_MARK}`;
