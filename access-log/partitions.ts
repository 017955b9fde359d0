// The access log's daily partitions: created ahead of time, dropped whole
// when older than the retention. Days are UTC days; the partition for day D
// holds rows with D 00:00Z <= time < D+1 00:00Z.
import { inTransaction, type Pool } from '../core/db.js';

/** Shared with access_log_ensure_partition() in migrations/002_access_log.sql. */
const PARTITION_LOCK = 7_099_746_011;
const PARTITION_NAME = /^access_log_p(\d{4})(\d{2})(\d{2})$/;
export const DAY_MS = 86_400_000;

export interface DroppedPartition {
  name: string;
  /** First instant the partition covered. */
  from: Date;
  /** First instant after it. */
  to: Date;
}

/** The partition that holds rows of `time`'s UTC day (named as access_log_ensure_partition() names it). */
export function partitionName(time: Date): string {
  return `access_log_p${utcDayString(time.getTime()).replaceAll('-', '')}`;
}

/** The first instant a partition named access_log_pYYYYMMDD covers; undefined for a table not named so. */
export function partitionStart(name: string): Date | undefined {
  const match = PARTITION_NAME.exec(name);
  if (!match) return undefined;
  const start = new Date(`${match[1]}-${match[2]}-${match[3]}T00:00:00Z`);
  return Number.isNaN(start.getTime()) ? undefined : start;
}

function utcDayString(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/** Makes sure the partitions from yesterday to `daysAhead` days after today exist; returns those it created. */
export async function ensurePartitions(pool: Pool, now: Date, daysAhead = 7): Promise<string[]> {
  if (!Number.isInteger(daysAhead) || daysAhead < 0) throw new Error(`daysAhead must be a whole number >= 0, got ${daysAhead}`);
  const result = await pool.query<{ name: string }>('SELECT access_log_ensure_partitions($1::date, $2::date) AS name', [
    utcDayString(now.getTime() - DAY_MS),
    utcDayString(now.getTime() + daysAhead * DAY_MS),
  ]);
  return result.rows.map((r) => r.name);
}

/**
 * Drops every partition that ends at or before `now` minus `retentionDays`
 * days, so a row is kept at least retentionDays and at most one day more.
 * Returns what was dropped, oldest first, for the caller to log.
 */
export async function dropExpiredPartitions(pool: Pool, retentionDays: number, now: Date): Promise<DroppedPartition[]> {
  if (!Number.isInteger(retentionDays) || retentionDays < 1) {
    throw new Error(`retentionDays must be a whole number >= 1, got ${retentionDays}`);
  }
  const cutoff = now.getTime() - retentionDays * DAY_MS;
  return inTransaction(pool, async (client) => {
    // Dropping a partition locks the whole table; never queue behind a long report and stall the writers.
    await client.query("SET LOCAL lock_timeout = '5s'");
    await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
    const partitions = await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'access_log'::regclass ORDER BY c.relname`,
    );
    const dropped: DroppedPartition[] = [];
    for (const { name } of partitions.rows) {
      const from = partitionStart(name);
      if (from === undefined) continue; // not one of ours: leave it to whoever made it
      const to = new Date(from.getTime() + DAY_MS);
      if (to.getTime() > cutoff) continue;
      await client.query(`DROP TABLE ${client.escapeIdentifier(name)}`);
      dropped.push({ name, from, to });
    }
    return dropped;
  });
}
