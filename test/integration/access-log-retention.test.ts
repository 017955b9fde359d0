import path from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAccessLogMaintenance } from '../../access-log/maintenance.js';
import { DAY_MS, dropExpiredPartitions, ensurePartitions } from '../../access-log/partitions.js';
import { LATE_ROWS_GRACE_HOURS, markDaysStaleSql, rollupDay } from '../../access-log/rollup.js';
import { AccessLogWriter } from '../../access-log/writer.js';
import { createPool } from '../../core/db.js';
import type { AccessEvent } from '../../proxy/types.js';
import { accessEvent, capturingLogger, stopMaintenanceWhileWaiting, waitFor, writeAllEvents, seedSchool, type SeededSchool, useAccessLogTestBed } from '../support/access-events.js';

describe('access log partitions, retention and rollup', () => {
  const bed = useAccessLogTestBed();
  let london: SeededSchool;
  let utc: SeededSchool;
  let newYork: SeededSchool;

  beforeAll(async () => {
    london = await seedSchool(bed.db.pool, 'London School', 3, 'Europe/London');
    utc = await seedSchool(bed.db.pool, 'UTC School', 2, 'UTC');
    newYork = await seedSchool(bed.db.pool, 'New York School', 1, 'America/New_York');
  });

  /** Every day from `first` to `last`, as YYYY-MM-DD. */
  const daysFrom = (first: string, last: string): string[] => {
    const days = [];
    for (let t = Date.parse(`${first}T00:00:00Z`); t <= Date.parse(`${last}T00:00:00Z`); t += DAY_MS) days.push(new Date(t).toISOString().slice(0, 10));
    return days;
  };

  const write = (name: string, events: AccessEvent[]) => writeAllEvents(bed.db.pool, path.join(bed.spoolRoot, name), events);

  async function partitionsBetween(first: string, last: string): Promise<string[]> {
    const result = await bed.db.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'access_log'::regclass AND c.relname BETWEEN $1 AND $2 ORDER BY 1`,
      [first, last],
    );
    return result.rows.map((r) => r.name);
  }

  it('creates partitions from yesterday to N days ahead, once, even when several processes ask at once', async () => {
    const now = new Date('2025-09-10T23:59:00Z');
    const results = await Promise.all(Array.from({ length: 6 }, () => ensurePartitions(bed.db.pool, now, 3)));
    const expected = ['access_log_p20250909', 'access_log_p20250910', 'access_log_p20250911', 'access_log_p20250912', 'access_log_p20250913'];
    expect(results.flat().sort()).toEqual(expected);
    expect(await partitionsBetween('access_log_p20250901', 'access_log_p20250930')).toEqual(expected);
    expect(await ensurePartitions(bed.db.pool, now, 3)).toEqual([]);
  });

  it('drops exactly the partitions older than the retention, says which, and keeps the newer rows', async () => {
    const now = new Date('2025-03-10T12:00:00Z');
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2025-03-01', '2025-03-12')");
    const lastOld = accessEvent({ groupId: london.groupId, time: new Date('2025-03-05T23:59:59.999Z') });
    const firstKept = accessEvent({ groupId: london.groupId, time: new Date('2025-03-06T00:00:00.000Z') });
    const older = accessEvent({ groupId: london.groupId, time: new Date('2025-03-02T10:00:00Z') });
    const recent = accessEvent({ groupId: london.groupId, time: new Date('2025-03-10T11:00:00Z') });
    await write('retention', [lastOld, firstKept, older, recent]);

    // 4 days before now is 2025-03-06 12:00Z: partitions ending by then go; 2025-03-06 still holds younger rows.
    const dropped = await dropExpiredPartitions(bed.db.pool, 4, now);
    expect(dropped).toEqual(
      ['01', '02', '03', '04', '05'].map((d) => ({
        name: `access_log_p202503${d}`,
        from: new Date(`2025-03-${d}T00:00:00Z`),
        to: new Date(new Date(`2025-03-${d}T00:00:00Z`).getTime() + DAY_MS),
      })),
    );
    expect(await partitionsBetween('access_log_p20250301', 'access_log_p20250331')).toEqual(
      ['06', '07', '08', '09', '10', '11', '12'].map((d) => `access_log_p202503${d}`),
    );
    const left = await bed.db.pool.query<{ id: string }>('SELECT id FROM access_log WHERE id = ANY($1::uuid[]) ORDER BY time', [
      [lastOld, firstKept, older, recent].map((e) => e.id),
    ]);
    expect(left.rows.map((r) => r.id)).toEqual([firstKept.id, recent.id]);
    expect(await dropExpiredPartitions(bed.db.pool, 4, now)).toEqual([]);
    await expect(dropExpiredPartitions(bed.db.pool, 0, now)).rejects.toThrow(/retentionDays must be a whole number >= 1/);
  });

  it('rolls up a local day per person, category and action, and a re-run replaces the day', async () => {
    const day = '2025-06-15'; // British Summer Time: the London day is 2025-06-14T23:00Z to 2025-06-15T23:00Z
    const [alice, bob] = london.userIds;
    const [carol] = utc.userIds;
    const ev = (school: SeededSchool, userId: number | null, time: string, action: 'allow' | 'block', categories: string[], bytes: number) =>
      accessEvent({
        groupId: school.groupId,
        userId,
        time: new Date(time),
        bytesIn: bytes,
        bytesOut: 0,
        decision: { action, categories, category: categories[0] ?? null, ruleKind: 'default', ruleId: null, rule: 'r' },
      });
    const events = [
      ev(london, alice, '2025-06-14T23:00:00Z', 'block', ['games', 'social'], 10), // 00:00 London: counts
      ev(london, alice, '2025-06-15T12:00:00Z', 'block', ['games'], 20),
      ev(london, alice, '2025-06-15T13:00:00Z', 'allow', [], 5),
      ev(london, bob, '2025-06-15T22:59:59Z', 'allow', [], 7), // 23:59:59 London: counts
      ev(london, bob, '2025-06-15T23:00:00Z', 'allow', [], 1000), // next London day
      ev(london, bob, '2025-06-14T22:59:59Z', 'allow', [], 1000), // previous London day
      ev(london, null, '2025-06-15T08:00:00Z', 'allow', ['news'], 3),
      ev(utc, carol, '2025-06-15T23:30:00Z', 'block', ['games'], 11), // UTC school: still the 15th
      ev(utc, carol, '2025-06-14T23:30:00Z', 'block', ['games'], 1000), // UTC school: the 14th
    ];
    await write('rollup', events);

    const rowsOf = async () =>
      (
        await bed.db.pool.query(
          `SELECT school_id, day::text, user_id, group_id, category, action, requests::int, bytes::int
           FROM access_log_daily WHERE day = $1 ORDER BY school_id, user_id NULLS LAST, category, action`,
          [day],
        )
      ).rows;
    const L = { school_id: london.schoolId, day, group_id: london.groupId };
    expect(await rollupDay(bed.db.pool, day)).toBe(6);
    expect(await rowsOf()).toEqual([
      { ...L, user_id: alice, category: '', action: 'allowed', requests: 1, bytes: 5 },
      { ...L, user_id: alice, category: 'games', action: 'blocked', requests: 2, bytes: 30 },
      { ...L, user_id: alice, category: 'social', action: 'blocked', requests: 1, bytes: 10 },
      { ...L, user_id: bob, category: '', action: 'allowed', requests: 1, bytes: 7 },
      { ...L, user_id: null, category: 'news', action: 'allowed', requests: 1, bytes: 3 },
      { school_id: utc.schoolId, day, group_id: utc.groupId, user_id: carol, category: 'games', action: 'blocked', requests: 1, bytes: 11 },
    ]);

    // Alice's games rows go (say, removed by hand): a re-run must reflect that, not add to it.
    await bed.db.pool.query("DELETE FROM access_log WHERE user_id = $1 AND 'games' = ANY(categories)", [alice]);
    expect(await rollupDay(bed.db.pool, day)).toBe(4);
    expect((await rowsOf()).map((r) => [r.user_id, r.category, r.requests])).toEqual([
      [alice, '', 1],
      [bob, '', 1],
      [null, 'news', 1],
      [carol, 'games', 1],
    ]);
    await expect(rollupDay(bed.db.pool, '15/06/2025')).rejects.toThrow('rollup day must be a date as YYYY-MM-DD, got "15/06/2025"');
  });

  it('maintenance creates ahead, applies retention, refreshes the rollup and builds the closed days\' indexes, reporting each', async () => {
    const now = new Date('2023-01-20T12:00:00Z');
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2023-01-01', '2023-01-03')");
    const report = await runAccessLogMaintenance({ pool: bed.db.pool, log: capturingLogger().log, retentionDays: 15, daysAhead: 1, now: () => now });
    expect(report.created).toEqual(['access_log_p20230119', 'access_log_p20230120', 'access_log_p20230121']);
    // Only these are older than 15 days before 2023-01-20: the other tests' partitions are all later.
    expect(report.dropped.map((p) => p.name)).toEqual(['access_log_p20230101', 'access_log_p20230102', 'access_log_p20230103']);
    // Today, and the week before it, never rolled up and past the time to settle.
    expect(report.rolledUp).toEqual(daysFrom('2023-01-13', '2023-01-20'));
    // The only partition left that ended by 2023-01-20 12:00.
    expect(report.indexed.map((b) => b.index)).toEqual(['access_log_p20230119_user_time', 'access_log_p20230119_host_time']);
    expect(report.failures).toEqual([]);
  });

  const maintainAt = async (iso: string, retentionDays = 3650) =>
    runAccessLogMaintenance({ pool: bed.db.pool, log: capturingLogger().log, retentionDays, daysAhead: 1, now: () => new Date(iso) });

  it('rolls a closed day up once more at the first run the grace period after it ended in every school, then leaves it', async () => {
    expect(LATE_ROWS_GRACE_HOURS).toBe(6);
    // 10 February 2024 ends at 00:00Z in London and the UTC school, at 05:00Z in New York: it settles from 11:00Z.
    const rolled = [];
    for (const at of ['2024-02-10T22:00:00Z', '2024-02-11T01:00:00Z', '2024-02-11T10:30:00Z', '2024-02-11T11:30:00Z', '2024-02-11T12:30:00Z']) {
      const report = await maintainAt(at);
      expect(report.failures).toEqual([]);
      rolled.push(report.rolledUp);
    }
    expect(rolled).toEqual([
      daysFrom('2024-02-03', '2024-02-10'), // today, and the week before it, never rolled up
      ['2024-02-10', '2024-02-11'], // still today in New York (20:00), today in London
      ['2024-02-11'], // over in New York too, but not yet settled
      ['2024-02-10', '2024-02-11'], // the first run past New York's grace settles it
      ['2024-02-11'],
    ]);
  });

  it('a spool replay marks the school-local days of the rows it adds, and the next maintenance rolls them up however old they are', async () => {
    const [alice] = london.userIds;
    const [dan] = newYork.userIds;
    const at = (school: SeededSchool, userId: number, time: string) =>
      accessEvent({ groupId: school.groupId, userId, time: new Date(time), bytesIn: 0, bytesOut: 100 });
    // Written live on its own day, as the proxy writes nearly every row: no mark.
    await write('replay-marks-live', [at(london, alice, new Date().toISOString())]);
    // Other tests' live rows of days long past leave marks of their own, in 2025.
    const marks = async () =>
      (await bed.db.pool.query<{ day: string }>("SELECT to_char(day, 'YYYY-MM-DD') AS day FROM access_log_rollup_stale WHERE day < '2025-01-01' ORDER BY 1")).rows.map((r) => r.day);
    expect(await marks()).toEqual([]);

    // Recorded while Postgres could not be reached (nothing listens on port 1): spooled, then replayed.
    const spoolDir = path.join(bed.spoolRoot, 'replay-marks');
    const unreachable = createPool('postgres://portcullis@127.0.0.1:1/portcullis');
    const offline = new AccessLogWriter({ pool: unreachable, spoolDir, log: capturingLogger().log, retryMinMs: 60_000 });
    await offline.start();
    const replayed = [
      at(london, alice, '2024-03-01T09:00:00Z'),
      at(london, alice, '2024-03-01T23:30:00Z'), // London is on GMT: still 1 March
      at(london, alice, '2024-03-03T23:30:00Z'),
      at(newYork, dan, '2024-03-05T03:00:00Z'), // 22:00 on 4 March in New York
    ];
    for (const event of replayed) offline.record(event);
    await offline.close();
    await unreachable.end();
    expect(offline.counters()).toMatchObject({ spooled: 4, written: 0, dropped: 0 });
    const online = new AccessLogWriter({ pool: bed.db.pool, spoolDir, log: capturingLogger().log });
    await online.start();
    await waitFor(() => online.spoolBytes === 0, 20_000, 'the spool to be replayed');
    await online.close();
    expect(online.counters()).toMatchObject({ replayed: 4, written: 4 });
    expect(await marks()).toEqual(['2024-03-01', '2024-03-03', '2024-03-04']);

    // 1 March is older than the week the maintenance settles; it is rolled up all the same.
    const report = await maintainAt('2024-03-10T12:00:00Z');
    expect(report.rolledUp).toEqual(['2024-03-01', ...daysFrom('2024-03-03', '2024-03-10')]);
    const daily = await bed.db.pool.query(
      `SELECT school_id, to_char(day, 'YYYY-MM-DD') AS day, requests::int, bytes::int FROM access_log_daily
        WHERE school_id = ANY($1) AND day BETWEEN '2024-03-01' AND '2024-03-05' ORDER BY day`,
      [[london.schoolId, newYork.schoolId]],
    );
    expect(daily.rows).toEqual([
      { school_id: london.schoolId, day: '2024-03-01', requests: 2, bytes: 200 },
      { school_id: london.schoolId, day: '2024-03-03', requests: 1, bytes: 100 },
      { school_id: newYork.schoolId, day: '2024-03-04', requests: 1, bytes: 100 },
    ]);
    expect(await marks()).toEqual([]);
    // The run at 12:00 settled the days before; the marks are gone.
    expect((await maintainAt('2024-03-10T13:00:00Z')).rolledUp).toEqual(['2024-03-10']);
  });

  it('a row written live after its UTC day ended marks the days it may belong to, and the next maintenance counts it however late', async () => {
    const [alice] = london.userIds;
    // 1 October 2024 has long ended in every school's time zone by 12:00Z on 2 October: the day is settled, without the tunnel.
    expect((await maintainAt('2024-10-02T12:00:00Z')).rolledUp).toEqual(daysFrom('2024-09-25', '2024-10-02'));
    // A tunnel opened at 21:00Z on 1 October (22:00 in London, on summer time) closes now and is written live.
    const tunnel = accessEvent({ groupId: london.groupId, userId: alice, time: new Date('2024-10-01T21:00:00Z'), bytesIn: 5_000, bytesOut: 70_000 });
    await write('late-tunnel', [tunnel]);
    // 1 October UTC overlaps 1 and 2 October in London, 1 October at the UTC school, 30 September and 1 October in New York.
    const marks = await bed.db.pool.query<{ day: string }>(
      "SELECT to_char(day, 'YYYY-MM-DD') AS day FROM access_log_rollup_stale WHERE day BETWEEN '2024-09-25' AND '2024-10-05' ORDER BY 1",
    );
    expect(marks.rows.map((r) => r.day)).toEqual(['2024-09-30', '2024-10-01', '2024-10-02']);

    expect((await maintainAt('2024-10-02T13:00:00Z')).rolledUp).toEqual(['2024-09-30', '2024-10-01', '2024-10-02']);
    const daily = await bed.db.pool.query(
      "SELECT requests::int, bytes::int FROM access_log_daily WHERE school_id = $1 AND day = '2024-10-01' AND user_id = $2",
      [london.schoolId, alice],
    );
    expect(daily.rows).toEqual([{ requests: 1, bytes: 75_000 }]);
    expect((await maintainAt('2024-10-02T14:00:00Z')).rolledUp).toEqual(['2024-10-02']);
  });

  it("keeps a mark that a replay bumps while the day's rollup reads the log, without holding the replay up", async () => {
    const day = '2024-05-01';
    const markSql = markDaysStaleSql(`(SELECT ${london.schoolId} AS school_id, '2024-05-01T12:00:00Z'::timestamptz AS time)`);
    await bed.db.pool.query(markSql);
    const generation = async () => (await bed.db.pool.query<{ generation: string }>('SELECT generation FROM access_log_rollup_stale WHERE day = $1', [day])).rows[0]?.generation;
    expect(await generation()).toBe('1');

    // The rollup finds the mark, then waits for another session's lock before it reads the log.
    const holder = new pg.Client({ connectionString: bed.db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE access_log_daily IN SHARE MODE');
      const rolling = rollupDay(bed.db.pool, day);
      rolling.catch(() => undefined);
      await waitFor(
        async () => (await bed.db.pool.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND starts_with(query, 'DELETE FROM access_log_daily')")).rowCount === 1,
        10_000,
        'the rollup to wait for the lock',
      );
      // A replay of the same day marks it again meanwhile, and is not made to wait.
      await bed.db.pool.query(markSql);
      expect(await generation()).toBe('2');
      await holder.query('ROLLBACK');
      await rolling;
    } finally {
      await holder.end();
    }
    // Its rows may not have been read: the mark stays for the next run.
    expect(await generation()).toBe('2');
    // A rollup with nothing marked meanwhile clears it.
    await rollupDay(bed.db.pool, day);
    expect(await generation()).toBeUndefined();
  });

  it("forgets a replayed day's mark once the day is past the retention, without rolling it up", async () => {
    await bed.db.pool.query("INSERT INTO access_log_rollup_stale (day) VALUES ('2024-01-01')");
    try {
      expect((await maintainAt('2024-04-01T12:00:00Z', 30)).rolledUp).toEqual(daysFrom('2024-03-25', '2024-04-01'));
      expect((await bed.db.pool.query("SELECT 1 FROM access_log_rollup_stale WHERE day = '2024-01-01'")).rowCount).toBe(0);
    } finally {
      await bed.db.pool.query("DELETE FROM access_log_rollup_stale WHERE day = '2024-01-01'");
    }
  });

  it('stopping the maintenance cancels a rollup in progress, without a failure, and the day keeps its rollup as it was', async () => {
    const day = '2025-07-01';
    const [carol] = utc.userIds;
    await write('rollup-cancel', [
      accessEvent({ groupId: utc.groupId, userId: carol, time: new Date('2025-07-01T09:00:00Z') }),
      accessEvent({ groupId: utc.groupId, userId: carol, time: new Date('2025-07-01T10:00:00Z') }),
    ]);
    // Settled, then marked again by a replay: the next maintenance rolls it up first.
    await maintainAt('2025-07-02T12:00:00Z');
    await bed.db.pool.query('INSERT INTO access_log_rollup_stale (day) VALUES ($1)', [day]);
    const rowsOf = async () => (await bed.db.pool.query('SELECT user_id, category, action, requests::int FROM access_log_daily WHERE day = $1 ORDER BY 1, 2, 3', [day])).rows;
    const before = await rowsOf();
    expect(before.map((r) => r.requests)).toEqual([2]);
    // Another session's lock makes the rollup wait, as a busy day's long one would.
    const { lines, stillRunning } = await stopMaintenanceWhileWaiting(bed.db, {
      now: new Date('2025-07-02T13:00:00Z'),
      lockStatement: 'LOCK TABLE access_log_daily IN SHARE MODE',
      waiter: 'DELETE FROM access_log_daily',
    });
    expect(stillRunning).toEqual([]);
    expect(lines.filter((l) => l.msg === 'access log maintenance step failed')).toEqual([]);
    expect(lines.filter((l) => l.msg === 'access log maintenance step cancelled: stopping').map((l) => [l.step, l.err])).toEqual([
      [`rollup ${day}`, 'canceling statement due to user request'],
    ]);
    expect(await rowsOf()).toEqual(before);
    // Rolled back with the rest: the mark waits for the next run.
    expect((await bed.db.pool.query('SELECT 1 FROM access_log_rollup_stale WHERE day = $1', [day])).rowCount).toBe(1);
    await bed.db.pool.query('DELETE FROM access_log_rollup_stale WHERE day = $1', [day]);
  });
});
