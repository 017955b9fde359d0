import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAccessLogMaintenance } from '../../access-log/maintenance.js';
import { dropExpiredPartitions, ensurePartitions } from '../../access-log/partitions.js';
import { LATE_ROWS_GRACE_HOURS, rollupDay } from '../../access-log/rollup.js';
import { AccessLogWriter } from '../../access-log/writer.js';
import { createPool } from '../../core/db.js';
import type { AccessEvent } from '../../proxy/types.js';
import { accessEvent, capturingLogger, stopMaintenanceWhileWaiting, waitFor, writeAllEvents, seedSchool, type SeededSchool, useAccessLogTestBed } from '../support/access-events.js';

describe('access log partitions, retention and rollup', () => {
  const bed = useAccessLogTestBed();
  let london: SeededSchool;
  let utc: SeededSchool;

  beforeAll(async () => {
    london = await seedSchool(bed.db.pool, 'London School', 3, 'Europe/London');
    utc = await seedSchool(bed.db.pool, 'UTC School', 2, 'UTC');
  });

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
        to: new Date(new Date(`2025-03-${d}T00:00:00Z`).getTime() + 86_400_000),
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

  it('maintenance creates ahead, applies retention, refreshes the rollup and indexes closed days by host, reporting each', async () => {
    const now = new Date('2023-01-20T08:00:00Z');
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2023-01-01', '2023-01-03')");
    const report = await runAccessLogMaintenance({ pool: bed.db.pool, log: capturingLogger().log, retentionDays: 15, daysAhead: 1, now: () => now });
    expect(report.created).toEqual(['access_log_p20230119', 'access_log_p20230120', 'access_log_p20230121']);
    // Only these are older than 15 days before 2023-01-20: the other tests' partitions are all later.
    expect(report.dropped.map((p) => p.name)).toEqual(['access_log_p20230101', 'access_log_p20230102', 'access_log_p20230103']);
    expect(report.rolledUp).toEqual(['2023-01-19', '2023-01-20']);
    // The only partition left that ended by 2023-01-20 08:00.
    expect(report.indexed.map((b) => b.partition)).toEqual(['access_log_p20230119']);
    expect(report.failures).toEqual([]);
  });

  const maintainAt = async (iso: string, retentionDays = 3650) =>
    runAccessLogMaintenance({ pool: bed.db.pool, log: capturingLogger().log, retentionDays, daysAhead: 1, now: () => new Date(iso) });

  it('rolls a closed day up once more at the first run the grace period after it ended in every school, then leaves it', async () => {
    expect(LATE_ROWS_GRACE_HOURS).toBe(6);
    // 10 February 2024 ends at 00:00Z in London and the UTC school, at 05:00Z in New York: settled from 11:00Z.
    await seedSchool(bed.db.pool, 'New York School', 1, 'America/New_York');
    const rolled = [];
    for (const at of ['2024-02-10T22:00:00Z', '2024-02-11T01:00:00Z', '2024-02-11T10:30:00Z', '2024-02-11T11:30:00Z', '2024-02-11T12:30:00Z']) {
      const report = await maintainAt(at);
      expect(report.failures).toEqual([]);
      rolled.push(report.rolledUp);
    }
    expect(rolled).toEqual([
      ['2024-02-09', '2024-02-10'], // today, as every hour, and yesterday, never rolled up since it closed
      ['2024-02-11'],
      ['2024-02-11'], // London's grace is over, New York's is not
      ['2024-02-10', '2024-02-11'], // the first run after New York's settles the day
      ['2024-02-11'],
    ]);
  });

  it('a spool replay marks the days of the rows it adds, and the next maintenance rolls them up however old they are', async () => {
    const [alice] = london.userIds;
    const at = (time: string) => accessEvent({ groupId: london.groupId, userId: alice, time: new Date(time), bytesIn: 0, bytesOut: 100 });
    // Written live, as the proxy writes: no mark.
    await write('replay-marks-live', [at('2024-03-02T10:00:00Z')]);
    const marks = async () => (await bed.db.pool.query<{ day: string }>("SELECT to_char(day, 'YYYY-MM-DD') AS day FROM access_log_rollup_stale ORDER BY 1")).rows.map((r) => r.day);
    expect(await marks()).toEqual([]);

    // Recorded while Postgres could not be reached (nothing listens on port 1): spooled, then replayed.
    const spoolDir = path.join(bed.spoolRoot, 'replay-marks');
    const unreachable = createPool('postgres://portcullis@127.0.0.1:1/portcullis');
    const offline = new AccessLogWriter({ pool: unreachable, spoolDir, log: capturingLogger().log, retryMinMs: 60_000 });
    await offline.start();
    // 23:30Z on 1 March is still 1 March in London (GMT); 23:30Z on 3 March 2024 too.
    for (const time of ['2024-03-01T09:00:00Z', '2024-03-01T23:30:00Z', '2024-03-03T23:30:00Z']) offline.record(at(time));
    await offline.close();
    await unreachable.end();
    expect(offline.counters()).toMatchObject({ spooled: 3, written: 0, dropped: 0 });
    const online = new AccessLogWriter({ pool: bed.db.pool, spoolDir, log: capturingLogger().log });
    await online.start();
    await waitFor(() => online.spoolBytes === 0, 20_000, 'the spool to be replayed');
    await online.close();
    expect(online.counters()).toMatchObject({ replayed: 3, written: 3 });
    expect(await marks()).toEqual(['2024-03-01', '2024-03-03']);

    // Days before yesterday were never rolled up again before; within the retention they are now, and only they.
    const report = await maintainAt('2024-03-10T12:00:00Z');
    expect(report.rolledUp).toEqual(['2024-03-01', '2024-03-03', '2024-03-09', '2024-03-10']);
    const daily = await bed.db.pool.query(
      "SELECT to_char(day, 'YYYY-MM-DD') AS day, requests::int, bytes::int FROM access_log_daily WHERE school_id = $1 AND day BETWEEN '2024-03-01' AND '2024-03-03' ORDER BY day",
      [london.schoolId],
    );
    // 2 March was written live and is not due: only a rollup of that day would count it.
    expect(daily.rows).toEqual([
      { day: '2024-03-01', requests: 2, bytes: 200 },
      { day: '2024-03-03', requests: 1, bytes: 100 },
    ]);
    expect(await marks()).toEqual([]);
    // The run at 12:00 settled yesterday, and the marks are gone.
    expect((await maintainAt('2024-03-10T13:00:00Z')).rolledUp).toEqual(['2024-03-10']);
  });

  it('leaves a replayed day past the retention unrolled-up', async () => {
    await bed.db.pool.query("INSERT INTO access_log_rollup_stale (day) VALUES ('2024-01-01')");
    expect((await maintainAt('2024-04-01T12:00:00Z', 30)).rolledUp).toEqual(['2024-03-31', '2024-04-01']);
    await bed.db.pool.query("DELETE FROM access_log_rollup_stale WHERE day = '2024-01-01'");
  });

  it('stopping the maintenance cancels a rollup in progress, without a failure, and the day keeps its rollup as it was', async () => {
    const day = '2025-07-01';
    const [carol] = utc.userIds;
    await write('rollup-cancel', [
      accessEvent({ groupId: utc.groupId, userId: carol, time: new Date('2025-07-01T09:00:00Z') }),
      accessEvent({ groupId: utc.groupId, userId: carol, time: new Date('2025-07-01T10:00:00Z') }),
    ]);
    // Rolled up during the day, so the maintenance the next day rolls it up again.
    await rollupDay(bed.db.pool, day, { now: new Date('2025-07-01T12:00:00Z') });
    const rowsOf = async () => (await bed.db.pool.query('SELECT user_id, category, action, requests::int FROM access_log_daily WHERE day = $1 ORDER BY 1, 2, 3', [day])).rows;
    const before = await rowsOf();
    expect(before.map((r) => r.requests)).toEqual([2]);
    // Another session's lock makes the rollup wait, as a busy day's long one would.
    const { lines, stillRunning } = await stopMaintenanceWhileWaiting(bed.db, {
      now: new Date('2025-07-02T12:00:00Z'),
      lockStatement: 'LOCK TABLE access_log_daily IN SHARE MODE',
      waiter: 'DELETE FROM access_log_daily',
    });
    expect(stillRunning).toEqual([]);
    expect(lines.filter((l) => l.msg === 'access log maintenance step failed')).toEqual([]);
    expect(lines.filter((l) => l.msg === 'access log maintenance step cancelled: stopping').map((l) => l.step)).toEqual([`rollup ${day}`]);
    expect(await rowsOf()).toEqual(before);
  });
});
