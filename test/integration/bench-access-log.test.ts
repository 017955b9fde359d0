import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkThroughput, measureAccessLogThreadThroughput, measureAccessLogThroughput, measureClosedDayIndexBuild } from '../../bench/access-log-throughput.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

describe('the access-log benchmark', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('counts what reached access_log, times the day-close indexes on those rows without leaving them behind, and sizes the day on disk', async () => {
    const day = new Date();
    const result = await measureAccessLogThroughput({ connectionString: db.url, seconds: 1, writeConcurrency: 2 });
    checkThroughput(result);
    expect(result.written).toBeGreaterThan(1000);
    expect(result.rowsInTable).toBe(result.written);

    const partition = `access_log_p${day.toISOString().slice(0, 10).replaceAll('-', '')}`;
    const { rows } = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${partition}`);
    const indexesBefore = await db.pool.query('SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname', [partition]);
    const sizeBefore = await db.pool.query<{ bytes: string }>('SELECT pg_total_relation_size($1::regclass) AS bytes', [partition]);
    const build = await measureClosedDayIndexBuild(db.url, day);
    expect(build).toMatchObject({ partition, rows: Number(rows[0].n), postgresCpuMicrosPerRow: null });
    // The open day's figure is the whole partition (indexes included) over its rows; the closed day's adds the indexes built.
    expect(build.diskBytesPerRow.openDay * build.rows).toBeCloseTo(Number(sizeBefore.rows[0].bytes), 0);
    expect(build.diskBytesPerRow.closedDay).toBeGreaterThan(build.diskBytesPerRow.openDay);
    expect(build.builds.map((b) => b.index)).toEqual([`${partition}_user_time`, `${partition}_host_time`]);
    for (const b of build.builds) expect(b.seconds).toBeGreaterThan(0);
    const indexesAfter = await db.pool.query('SELECT indexname FROM pg_indexes WHERE tablename = $1 ORDER BY indexname', [partition]);
    expect(indexesAfter.rows).toEqual(indexesBefore.rows);
    // A day with no rows (a run that wrote elsewhere) is refused, not reported as a build of nothing.
    await db.pool.query("SELECT access_log_ensure_partitions('2001-01-01', '2001-01-01')");
    await expect(measureClosedDayIndexBuild(db.url, new Date('2001-01-01T12:00:00Z'))).rejects.toThrow('access_log_p20010101 holds no rows');
  });

  it('through the writer\'s thread, counts what reached access_log', async () => {
    const result = await measureAccessLogThreadThroughput({ connectionString: db.url, seconds: 1, writeConcurrency: 2 });
    checkThroughput(result);
    expect(result.written).toBeGreaterThan(1000);
    expect(result.rowsInTable).toBe(result.recorded);
    // Events were offered for the whole second asked for; a figure in milliseconds would be far above the bound.
    expect(result.seconds).toBeGreaterThanOrEqual(1);
    expect(result.seconds).toBeLessThan(30);
  });

  it('refuses a run that lost or repeated events', () => {
    const base = { recorded: 10, written: 10, rowsInTable: 10, spooled: 0, dropped: 0, rejected: 0 };
    const run = (over: Partial<typeof base>) => () => checkThroughput({ ...base, ...over } as Parameters<typeof checkThroughput>[0]);
    expect(run({})).not.toThrow();
    expect(run({ written: 9 })).toThrow('recorded 10 events but wrote 9');
    expect(run({ rowsInTable: 11 })).toThrow('access_log holds 11 rows for 10 events');
    expect(run({ spooled: 1 })).toThrow('spooled 1, dropped 0, rejected 0 (all should be 0)');
  });
});
