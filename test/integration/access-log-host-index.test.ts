import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { indexClosedPartitions } from '../../access-log/host-index.js';
import type { AccessEvent } from '../../proxy/types.js';
import { accessEvent, stopMaintenanceWhileWaiting, writeAllEvents, seedSchool, type SeededSchool, useAccessLogTestBed } from '../support/access-events.js';

describe('the index by host, built when a day closes', () => {
  const bed = useAccessLogTestBed();
  let school: SeededSchool;

  beforeAll(async () => {
    school = await seedSchool(bed.db.pool, 'Host Index School', 2, 'UTC');
  });

  const write = (name: string, events: AccessEvent[]) => writeAllEvents(bed.db.pool, path.join(bed.spoolRoot, name), events);

  const visit = (host: string, time: string) => accessEvent({ groupId: school.groupId, userId: school.userIds[0], host, time: new Date(time) });

  /** The partitions from first to last (names) that have a host index, with whether it is valid. */
  async function hostIndexes(first: string, last: string): Promise<Record<string, { valid: boolean; definition: string }>> {
    const { rows } = await bed.db.pool.query<{ partition: string; valid: boolean; definition: string }>(
      `SELECT t.relname AS partition, x.indisvalid AS valid, pg_get_indexdef(x.indexrelid) AS definition
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        WHERE i.relname = t.relname || '_host_time' AND t.relname BETWEEN $1 AND $2`,
      [first, last],
    );
    return Object.fromEntries(rows.map((r) => [r.partition, { valid: r.valid, definition: r.definition }]));
  }

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

  it('is not kept up on the parent: new partitions are written without it', async () => {
    const parent = await bed.db.pool.query("SELECT indexname FROM pg_indexes WHERE tablename = 'access_log' AND indexdef LIKE '%host%'");
    expect(parent.rows).toEqual([]);
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2024-05-01', '2024-05-05')");
    expect(await hostIndexes('access_log_p20240501', 'access_log_p20240505')).toEqual({});
  });

  it('is built on each closed day, newest first, once, and serves a query by host on those days only', async () => {
    await write('closed-days', [
      visit('news.example', '2024-05-02T09:00:00Z'),
      visit('games.example', '2024-05-02T10:00:00Z'),
      visit('games.example', '2024-05-04T09:00:00Z'),
    ]);
    const now = new Date('2024-05-04T10:00:00Z');
    const built = await indexClosedPartitions(bed.db.pool, now);
    // The migration's partitions (around the real today) have not closed by 2024.
    expect(built.map((b) => b.partition)).toEqual(['access_log_p20240503', 'access_log_p20240502', 'access_log_p20240501']);
    expect(built.map((b) => b.index)).toEqual(built.map((b) => `${b.partition}_host_time`));
    const indexes = await hostIndexes('access_log_p20240501', 'access_log_p20240505');
    expect(Object.keys(indexes).sort()).toEqual(['access_log_p20240501', 'access_log_p20240502', 'access_log_p20240503']);
    expect(indexes.access_log_p20240502).toEqual({
      valid: true,
      definition: 'CREATE INDEX access_log_p20240502_host_time ON public.access_log_p20240502 USING btree (school_id, host, "time")',
    });
    expect(await indexClosedPartitions(bed.db.pool, now)).toEqual([]);

    const byHost = `SELECT host, time FROM access_log WHERE school_id = $1 AND host = $2 AND time >= $3 AND time < $4`;
    const closedDay = [school.schoolId, 'games.example', '2024-05-02T00:00:00Z', '2024-05-03T00:00:00Z'];
    expect(await plan(byHost, closedDay)).toContain('access_log_p20240502_host_time');
    expect((await bed.db.pool.query(byHost, closedDay)).rows).toEqual([{ host: 'games.example', time: new Date('2024-05-02T10:00:00Z') }]);
    const openDay = [school.schoolId, 'games.example', '2024-05-04T00:00:00Z', '2024-05-05T00:00:00Z'];
    expect(await plan(byHost, openDay)).not.toContain('_host_time');
    expect((await bed.db.pool.query(byHost, openDay)).rows).toEqual([{ host: 'games.example', time: new Date('2024-05-04T09:00:00Z') }]);
  });

  it('drops an interrupted build (left invalid) and builds it again', async () => {
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2024-06-01', '2024-06-01')");
    await write('interrupted', [visit('a.example', '2024-06-01T09:00:00Z'), visit('b.example', '2024-06-01T09:30:00Z')]);
    // A concurrent build that fails part way leaves its index behind, marked invalid: this one fails on the duplicate school.
    await expect(
      bed.db.pool.query('CREATE UNIQUE INDEX CONCURRENTLY access_log_p20240601_host_time ON access_log_p20240601 (school_id)'),
    ).rejects.toThrow(/could not create unique index/);
    expect((await hostIndexes('access_log_p20240601', 'access_log_p20240601')).access_log_p20240601?.valid).toBe(false);

    const built = await indexClosedPartitions(bed.db.pool, new Date('2024-06-02T00:00:00Z'));
    // 4 and 5 May, still open in the test before, have closed by now too.
    expect(built.map((b) => b.partition)).toEqual(['access_log_p20240601', 'access_log_p20240505', 'access_log_p20240504']);
    expect(await hostIndexes('access_log_p20240601', 'access_log_p20240601')).toEqual({
      access_log_p20240601: {
        valid: true,
        definition: 'CREATE INDEX access_log_p20240601_host_time ON public.access_log_p20240601 USING btree (school_id, host, "time")',
      },
    });
  });

  it('builds each index once when several processes run it at the same time', async () => {
    await bed.db.pool.query("SELECT access_log_ensure_partitions('2024-07-01', '2024-07-03')");
    const now = new Date('2024-07-04T01:00:00Z');
    const runs = await Promise.all(Array.from({ length: 4 }, () => indexClosedPartitions(bed.db.pool, now)));
    expect(runs.flat().map((b) => b.partition)).toEqual(['access_log_p20240703', 'access_log_p20240702', 'access_log_p20240701']);
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
    expect(lines.filter((l) => l.msg === 'access log partition indexed by host')).toEqual([]);

    const built = await indexClosedPartitions(bed.db.pool, new Date('2024-08-02T01:00:00Z'));
    expect(built.map((b) => b.partition)).toEqual(['access_log_p20240801']);
    expect((await hostIndexes('access_log_p20240801', 'access_log_p20240801')).access_log_p20240801?.valid).toBe(true);
  });
});
