import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexClosedPartitions } from '../../access-log/closed-day-indexes.js';
import { migrate } from '../../core/migrate.js';
import { migrationsDir } from '../../core/paths.js';
import type { AccessEvent } from '../../proxy/types.js';
import { accessEvent, stopMaintenanceWhileWaiting, writeAllEvents, seedSchool, type SeededSchool, useAccessLogTestBed } from '../support/access-events.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

describe("a person's index in time order and the index by host, built when a day closes", () => {
  const bed = useAccessLogTestBed();
  let school: SeededSchool;

  beforeAll(async () => {
    school = await seedSchool(bed.db.pool, 'Closed Day Index School', 2, 'UTC');
  });

  const write = (name: string, events: AccessEvent[]) => writeAllEvents(bed.db.pool, path.join(bed.spoolRoot, name), events);

  const visit = (host: string, time: string) => accessEvent({ groupId: school.groupId, userId: school.userIds[0], host, time: new Date(time) });

  /** The closed-day indexes (by suffix) of the partitions from first to last (names), with whether each is valid. */
  async function closedDayIndexes(first: string, last: string): Promise<Record<string, Record<string, { valid: boolean; definition: string }>>> {
    const { rows } = await bed.db.pool.query<{ partition: string; suffix: string; valid: boolean; definition: string }>(
      `SELECT t.relname AS partition, substr(i.relname, length(t.relname) + 2) AS suffix, x.indisvalid AS valid,
              pg_get_indexdef(x.indexrelid) AS definition
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        WHERE i.relname IN (t.relname || '_user_time', t.relname || '_host_time') AND t.relname BETWEEN $1 AND $2
        ORDER BY 1, 2`,
      [first, last],
    );
    const found: Record<string, Record<string, { valid: boolean; definition: string }>> = {};
    for (const r of rows) (found[r.partition] ??= {})[r.suffix] = { valid: r.valid, definition: r.definition };
    return found;
  }

  const definitions = (partition: string) => ({
    host_time: { valid: true, definition: `CREATE INDEX ${partition}_host_time ON public.${partition} USING btree (school_id, host, "time")` },
    user_time: { valid: true, definition: `CREATE INDEX ${partition}_user_time ON public.${partition} USING btree (school_id, user_id, "time")` },
  });

  async function plan(sql: string, params: unknown[]): Promise<string> {
    const client = await bed.db.pool.connect();
    try {
      // The test's tables are tiny: without this the planner would scan them whatever indexes exist.
      await client.query('SET enable_seqscan = off');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    } finally {
      await client.query('RESET enable_seqscan');
      client.release();
    }
  }

  it('are not kept up on the parent: new partitions are written with the index by person alone', async () => {
    const parent = await bed.db.pool.query<{ indexdef: string }>(
      "SELECT indexdef FROM pg_indexes WHERE tablename = 'access_log' AND (indexdef LIKE '%host%' OR indexdef LIKE '%user_id%') ORDER BY 1",
    );
    expect(parent.rows.map((r) => r.indexdef)).toEqual(['CREATE INDEX access_log_school_user ON ONLY public.access_log USING btree (school_id, user_id)']);
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2024-05-01', '2024-05-05')");
    expect(await closedDayIndexes('access_log_p20240501', 'access_log_p20240505')).toEqual({});
  });

  it('are built on each closed day, newest first, once, and serve queries by person and by host on those days only', async () => {
    const [alice, bob] = school.userIds;
    await write('closed-days', [
      visit('news.example', '2024-05-02T09:00:00Z'),
      visit('games.example', '2024-05-02T10:00:00Z'),
      accessEvent({ groupId: school.groupId, userId: bob, host: 'news.example', time: new Date('2024-05-02T11:00:00Z') }),
      visit('games.example', '2024-05-04T09:00:00Z'),
      visit('news.example', '2024-05-04T09:30:00Z'),
    ]);
    const now = new Date('2024-05-04T10:00:00Z');
    const built = await indexClosedPartitions(bed.db.pool, now);
    // The migration's partitions (around the real today) have not closed by 2024.
    expect(built.map((b) => b.index)).toEqual(
      ['access_log_p20240503', 'access_log_p20240502', 'access_log_p20240501'].flatMap((p) => [`${p}_user_time`, `${p}_host_time`]),
    );
    expect(built.map((b) => b.partition)).toEqual(built.map((b) => b.index.replace(/_(user|host)_time$/, '')));
    expect(await closedDayIndexes('access_log_p20240501', 'access_log_p20240505')).toEqual({
      access_log_p20240501: definitions('access_log_p20240501'),
      access_log_p20240502: definitions('access_log_p20240502'),
      access_log_p20240503: definitions('access_log_p20240503'),
    });
    expect(await indexClosedPartitions(bed.db.pool, now)).toEqual([]);

    const byHost = `SELECT host, time FROM access_log WHERE school_id = $1 AND host = $2 AND time >= $3 AND time < $4`;
    const closedDay = [school.schoolId, 'games.example', '2024-05-02T00:00:00Z', '2024-05-03T00:00:00Z'];
    expect(await plan(byHost, closedDay)).toContain('access_log_p20240502_host_time');
    expect((await bed.db.pool.query(byHost, closedDay)).rows).toEqual([{ host: 'games.example', time: new Date('2024-05-02T10:00:00Z') }]);
    const openDay = [school.schoolId, 'games.example', '2024-05-04T00:00:00Z', '2024-05-05T00:00:00Z'];
    expect(await plan(byHost, openDay)).not.toContain('_host_time');
    expect((await bed.db.pool.query(byHost, openDay)).rows).toEqual([{ host: 'games.example', time: new Date('2024-05-04T09:00:00Z') }]);

    // A person's history, newest first, as the history route asks for it.
    const byPerson = `SELECT host, time FROM access_log WHERE school_id = $1 AND user_id = $2 AND time >= $3 AND time < $4
                       ORDER BY time DESC, id DESC LIMIT 10`;
    const aliceClosed = [school.schoolId, alice, '2024-05-02T00:00:00Z', '2024-05-03T00:00:00Z'];
    expect(await plan(byPerson, aliceClosed)).toContain('access_log_p20240502_user_time');
    expect((await bed.db.pool.query(byPerson, aliceClosed)).rows).toEqual([
      { host: 'games.example', time: new Date('2024-05-02T10:00:00Z') },
      { host: 'news.example', time: new Date('2024-05-02T09:00:00Z') },
    ]);
    // The open day: found by the live index by person, not by scanning the day.
    const aliceOpen = [school.schoolId, alice, '2024-05-04T00:00:00Z', '2024-05-05T00:00:00Z'];
    const openPlan = await plan(byPerson, aliceOpen);
    expect(openPlan).toContain('access_log_p20240504_school_id_user_id_idx');
    expect(openPlan).not.toContain('Seq Scan');
    expect((await bed.db.pool.query(byPerson, aliceOpen)).rows).toEqual([
      { host: 'news.example', time: new Date('2024-05-04T09:30:00Z') },
      { host: 'games.example', time: new Date('2024-05-04T09:00:00Z') },
    ]);
  });

  it('drops an interrupted build (left invalid) and builds it again', async () => {
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2024-06-01', '2024-06-01')");
    await write('interrupted', [visit('a.example', '2024-06-01T09:00:00Z'), visit('b.example', '2024-06-01T09:30:00Z')]);
    // A concurrent build that fails part way leaves its index behind, marked invalid: this one fails on the duplicate school.
    await expect(
      bed.db.pool.query('CREATE UNIQUE INDEX CONCURRENTLY access_log_p20240601_host_time ON access_log_p20240601 (school_id)'),
    ).rejects.toThrow(/could not create unique index/);
    expect((await closedDayIndexes('access_log_p20240601', 'access_log_p20240601')).access_log_p20240601?.host_time?.valid).toBe(false);

    const built = await indexClosedPartitions(bed.db.pool, new Date('2024-06-02T00:00:00Z'));
    // 4 and 5 May, still open in the test before, have closed by now too.
    expect(built.map((b) => b.index)).toEqual(
      ['access_log_p20240601', 'access_log_p20240505', 'access_log_p20240504'].flatMap((p) => [`${p}_user_time`, `${p}_host_time`]),
    );
    expect(await closedDayIndexes('access_log_p20240601', 'access_log_p20240601')).toEqual({ access_log_p20240601: definitions('access_log_p20240601') });
  });

  it('builds each index once when several processes run it at the same time', async () => {
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2024-07-01', '2024-07-03')");
    const now = new Date('2024-07-04T01:00:00Z');
    const runs = await Promise.all(Array.from({ length: 4 }, () => indexClosedPartitions(bed.db.pool, now)));
    expect(runs.flat().map((b) => b.index)).toEqual(
      ['access_log_p20240703', 'access_log_p20240702', 'access_log_p20240701'].flatMap((p) => [`${p}_user_time`, `${p}_host_time`]),
    );
  });

  it('stopping the maintenance cancels a build in progress, without a failure, and the next run builds it', async () => {
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2024-08-01', '2024-08-01')");
    // Another session's lock makes the build wait, as a long-running one would.
    const { lines, stillRunning } = await stopMaintenanceWhileWaiting(bed.db, {
      now: new Date('2024-08-02T01:00:00Z'),
      lockStatement: 'LOCK TABLE access_log_p20240801 IN SHARE MODE',
      waiter: 'CREATE INDEX CONCURRENTLY',
    });
    expect(stillRunning).toEqual([]);
    expect(lines.filter((l) => l.msg === 'access log maintenance step failed')).toEqual([]);
    expect(lines.filter((l) => l.msg === 'access log partition indexed')).toEqual([]);

    const built = await indexClosedPartitions(bed.db.pool, new Date('2024-08-02T01:00:00Z'));
    expect(built.map((b) => b.index)).toEqual(['access_log_p20240801_user_time', 'access_log_p20240801_host_time']);
    expect(await closedDayIndexes('access_log_p20240801', 'access_log_p20240801')).toEqual({ access_log_p20240801: definitions('access_log_p20240801') });
  });
});

describe('upgrading to the index by person kept live (migration 013)', () => {
  let db: TestDatabase;
  let older: string;
  let spool: string;

  beforeAll(async () => {
    // The schema as it was before migration 013.
    older = await mkdtemp(path.join(os.tmpdir(), 'portcullis-migrations-'));
    for (const file of await readdir(migrationsDir)) {
      if (file < '013_') await copyFile(path.join(migrationsDir, file), path.join(older, file));
    }
    db = await createTestDatabase(older);
    spool = await mkdtemp(path.join(os.tmpdir(), 'portcullis-spool-'));
  });
  afterAll(async () => {
    await db?.drop();
    await rm(older, { recursive: true, force: true });
    await rm(spool, { recursive: true, force: true });
  });

  const personIndexes = async () =>
    (await db.pool.query<{ tablename: string; indexdef: string }>(
      "SELECT tablename, indexdef FROM pg_indexes WHERE tablename LIKE 'access_log%' AND indexdef LIKE '%user_id%' ORDER BY 1, 2",
    )).rows;

  it('keeps the days already logged, indexes the open ones by person at once, and leaves the closed ones to the maintenance', async () => {
    const school = await seedSchool(db.pool, 'Upgrade School', 1, 'UTC');
    const today = new Date();
    const todayPartition = `access_log_p${today.toISOString().slice(0, 10).replaceAll('-', '')}`;
    await writeAllEvents(db.pool, spool, [
      accessEvent({ groupId: school.groupId, userId: school.userIds[0], time: new Date('2024-09-01T09:00:00Z') }),
      accessEvent({ groupId: school.groupId, userId: school.userIds[0], time: today }),
    ]);
    expect((await personIndexes()).map((r) => r.tablename)).toContain('access_log_p20240901');

    expect(await migrate(db.pool)).toEqual(['013_access_log_person_index.sql']);
    const after = await personIndexes();
    // The old index is gone from every day; the parent declares the new one for the days to come.
    expect(after.filter((r) => r.indexdef.includes('"time"'))).toEqual([]);
    expect(after.find((r) => r.tablename === 'access_log')?.indexdef).toBe(
      'CREATE INDEX access_log_school_user ON ONLY public.access_log USING btree (school_id, user_id)',
    );
    // Today (open) has it now; the closed day does not, until the maintenance builds its index in time order.
    expect(after.map((r) => r.tablename)).toContain(todayPartition);
    expect(after.map((r) => r.tablename)).not.toContain('access_log_p20240901');
    expect((await db.pool.query('SELECT count(*)::int AS n FROM access_log')).rows[0].n).toBe(2);

    // A day created after the upgrade gets the live index by itself.
    await db.pool.query("SELECT access_log_ensure_partitions('2031-01-01', '2031-01-01')");
    expect((await personIndexes()).map((r) => r.tablename)).toContain('access_log_p20310101');

    const built = await indexClosedPartitions(db.pool, new Date('2024-09-02T01:00:00Z'));
    expect(built.map((b) => b.index)).toEqual(['access_log_p20240901_user_time', 'access_log_p20240901_host_time']);
  });
});
