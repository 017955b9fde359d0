// Access events and the people they belong to, for the access-log tests.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { startAccessLogMaintenance } from '../../access-log/maintenance.js';
import { AccessLogWriter } from '../../access-log/writer.js';
import type { Pool } from '../../core/db.js';
import type { AccessEvent } from '../../proxy/types.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface AccessLogTestBed {
  db: TestDatabase;
  /** A folder of this file's own, for the writers' spool folders. */
  spoolRoot: string;
}

/**
 * Registers hooks giving the calling test file a database and a spool folder
 * of its own, made before its tests (ahead of hooks registered after this
 * call) and removed after them.
 */
export function useAccessLogTestBed(): AccessLogTestBed {
  const bed = {} as AccessLogTestBed;
  beforeAll(async () => {
    bed.db = await createTestDatabase();
    bed.spoolRoot = await mkdtemp(path.join(os.tmpdir(), 'portcullis-spool-'));
  });
  afterAll(async () => {
    await bed.db?.drop();
    if (bed.spoolRoot) await rm(bed.spoolRoot, { recursive: true, force: true });
  });
  return bed;
}

export interface SeededSchool {
  schoolId: number;
  groupId: number;
  userIds: number[];
}

/** A school with one group and `users` users named user0, user1, ... */
export async function seedSchool(pool: Pool, name: string, users: number, timezone = 'Europe/London'): Promise<SeededSchool> {
  const school = await pool.query<{ id: number }>('INSERT INTO schools (name, timezone) VALUES ($1, $2) RETURNING id', [name, timezone]);
  const schoolId = school.rows[0].id;
  const group = await pool.query<{ id: number }>(
    "INSERT INTO groups (school_id, key, name, is_default) VALUES ($1, 'pupils', 'Pupils', true) RETURNING id",
    [schoolId],
  );
  const groupId = group.rows[0].id;
  const created = await pool.query<{ id: number }>(
    `INSERT INTO users (school_id, username, group_id)
     SELECT $1, 'user' || n, $2 FROM generate_series(0, $3::int - 1) AS n ORDER BY n RETURNING id`,
    [schoolId, groupId, users],
  );
  return { schoolId, groupId, userIds: created.rows.map((r) => r.id) };
}

export function accessEvent(overrides: Partial<AccessEvent> & { userId?: number | null; groupId: number }): AccessEvent {
  const { userId = null, groupId, ...rest } = overrides;
  return {
    id: randomUUID(),
    time: new Date(),
    identity: { userId, username: userId === null ? null : `user${userId}`, groupId, groupKey: 'pupils', source: 'proxy-auth' },
    clientIp: '10.1.2.3',
    method: 'GET',
    scheme: 'https',
    host: 'example.org',
    port: 443,
    path: '/',
    decision: { action: 'allow', categories: [], category: null, ruleKind: 'default', ruleId: null, rule: 'pupils: allowed by default' },
    status: 200,
    bytesIn: 100,
    bytesOut: 2000,
    durationMs: 12,
    blockRef: null,
    ...rest,
  };
}

/** A real pino logger whose JSON lines are kept in `lines` for the test to read. */
export function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

/** Waits until `condition` holds, checking every 20 ms; fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Runs the access-log maintenance as of `now` while another session holds a
 * lock (`lockStatement`, in an open transaction) that a statement starting
 * with `waiter` must wait for, as a long-running statement would keep it
 * busy, and stops the maintenance once that statement waits. Returns the
 * maintenance's log lines and the sessions still running such a statement
 * after the stop.
 */
export async function stopMaintenanceWhileWaiting(
  db: { pool: Pool; url: string },
  options: { now: Date; lockStatement: string; waiter: string },
): Promise<{ lines: Record<string, unknown>[]; stillRunning: unknown[] }> {
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query(options.lockStatement);
  const { log, lines } = capturingLogger();
  const maintenance = startAccessLogMaintenance({ pool: db.pool, log, retentionDays: 3650, daysAhead: 0, now: () => options.now });
  const running = async () =>
    (
      await db.pool.query<{ waiting: boolean }>(
        `SELECT wait_event_type IS NOT DISTINCT FROM 'Lock' AS waiting FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'active' AND starts_with(query, $1) AND pid <> pg_backend_pid()`,
        [options.waiter],
      )
    ).rows;
  try {
    await waitFor(async () => (await running()).some((r) => r.waiting), 10_000, `"${options.waiter}" to wait for the lock`);
    await maintenance.stop();
    return { lines, stillRunning: await running() };
  } finally {
    await holder.query('ROLLBACK');
    await holder.end();
    await maintenance.stop(); // if the wait above failed; a second stop() does nothing
  }
}

/** Writes `events` through a writer of their own (spooling to `spoolDir`) and fails unless every one was written. */
export async function writeAllEvents(pool: Pool, spoolDir: string, events: readonly AccessEvent[]): Promise<void> {
  const writer = new AccessLogWriter({ pool, spoolDir, log: capturingLogger().log });
  await writer.start();
  for (const e of events) writer.record(e);
  await writer.close();
  const { written, dropped } = writer.counters();
  if (written !== events.length || dropped !== 0) throw new Error(`wrote ${written} of ${events.length} events, dropped ${dropped}`);
}
