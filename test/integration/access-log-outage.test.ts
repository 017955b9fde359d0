// Postgres going away under the writer: this file runs its own embedded
// Postgres so that it can stop and restart it.
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAccessEvent, encodedToSpoolLine } from '../../access-log/copy-row.js';
import { eventToJsonLine } from '../../access-log/event-json.js';
import { AccessLogWriter } from '../../access-log/writer.js';
import { createPool, type Pool } from '../../core/db.js';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../core/embedded-postgres.js';
import { migrate } from '../../core/migrate.js';
import type { AccessEvent } from '../../proxy/types.js';
import { accessEvent, capturingLogger, seedSchool, waitFor, type SeededSchool } from '../support/access-events.js';
import { freePort } from '../support/global-postgres.js';

describe('access log writer when Postgres goes away', () => {
  let dataDir: string;
  let port: number;
  let postgres: EmbeddedPostgresHandle;
  let pool: Pool;
  let school: SeededSchool;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-outage-'));
    await chmod(dataDir, 0o711); // as root, Postgres runs as `postgres` and must enter it
    port = await freePort();
    postgres = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'pg'), port });
    pool = createPool(postgres.connectionString);
    await migrate(pool);
    school = await seedSchool(pool, 'Outage School', 10);
  }, 120_000);
  afterAll(async () => {
    await pool.end();
    await postgres.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const restartPostgres = async () => {
    postgres = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'pg'), port });
  };

  function newWriter(spool: string, extra: { queueCap?: number; log?: ReturnType<typeof capturingLogger>['log'] } = {}) {
    return new AccessLogWriter({
      pool,
      spoolDir: path.join(dataDir, spool),
      log: extra.log ?? capturingLogger().log,
      flushIntervalMs: 20,
      writeTimeoutMs: 2_000,
      retryMinMs: 50,
      retryMaxMs: 400,
      queueCap: extra.queueCap,
    });
  }

  async function countStored(events: AccessEvent[]): Promise<{ rows: number; distinct: number }> {
    const result = await pool.query<{ rows: number; distinct: number }>(
      'SELECT count(*)::int AS rows, count(DISTINCT id)::int AS distinct FROM access_log WHERE id = ANY($1::uuid[])',
      [events.map((e) => e.id)],
    );
    return result.rows[0];
  }

  it('spools while Postgres is down and replays every event exactly once when it returns', async () => {
    const writer = newWriter('spool-continuous');
    await writer.start();
    const events: AccessEvent[] = [];
    const produce = setInterval(() => {
      for (let i = 0; i < 25; i++) {
        const e = accessEvent({ groupId: school.groupId, userId: school.userIds[i % 10] });
        events.push(e);
        writer.record(e);
      }
    }, 5);
    try {
      await new Promise((r) => setTimeout(r, 500));
      await postgres.stop();
      await waitFor(() => !writer.isPostgresUp && writer.spoolBytes > 0, 10_000, 'events to be spooled');
      await new Promise((r) => setTimeout(r, 1_000));
      await restartPostgres();
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      clearInterval(produce);
    }
    await waitFor(() => writer.isPostgresUp && writer.spoolBytes === 0 && writer.queueDepth === 0, 20_000, 'the spool to drain');
    await writer.close();

    expect(await countStored(events)).toEqual({ rows: events.length, distinct: events.length });
    const c = writer.counters();
    expect(c.spooled).toBeGreaterThan(0);
    expect(c.replayed).toBe(c.spooled);
    expect(c).toMatchObject({ queued: events.length, written: events.length, dropped: 0, rejected: 0, badSpoolLines: 0 });
    expect((await readdir(path.join(dataDir, 'spool-continuous'))).filter((f) => f.endsWith('.jsonl'))).toEqual([]);
  }, 60_000);

  it('keeps memory bounded during an outage: past the queue cap, events go to the spool', async () => {
    const writer = newWriter('spool-capped', { queueCap: 100 });
    await writer.start();
    await postgres.stop();
    const events = Array.from({ length: 20_000 }, () => accessEvent({ groupId: school.groupId }));
    let deepest = 0;
    for (const e of events) {
      writer.record(e);
      deepest = Math.max(deepest, writer.queueDepth);
    }
    expect(deepest).toBe(100);
    expect(writer.counters().spooled).toBeGreaterThanOrEqual(19_900);
    await restartPostgres();
    await waitFor(() => writer.isPostgresUp && writer.spoolBytes === 0 && writer.queueDepth === 0, 30_000, 'the spool to drain');
    await writer.close();
    expect(await countStored(events)).toEqual({ rows: 20_000, distinct: 20_000 });
    expect(writer.counters()).toMatchObject({ written: 20_000, replayed: 20_000, spooled: 20_000, dropped: 0 });
  }, 60_000);

  it('on close() with Postgres down, spools the queue; the next start replays it', async () => {
    await postgres.stop();
    const writer = newWriter('spool-shutdown');
    await writer.start();
    const events = Array.from({ length: 300 }, () => accessEvent({ groupId: school.groupId }));
    for (const e of events) writer.record(e);
    await writer.close();
    expect(writer.counters()).toMatchObject({ spooled: 300, written: 0, dropped: 0 });

    await restartPostgres();
    const next = newWriter('spool-shutdown');
    await next.start();
    await waitFor(() => next.spoolBytes === 0, 20_000, 'the spool to be replayed');
    await next.close();
    expect(await countStored(events)).toEqual({ rows: 300, distinct: 300 });
    expect(next.counters()).toMatchObject({ replayed: 300, written: 300, dropped: 0 });
  }, 60_000);

  it('sets a garbled spool line aside, reports where it was, replays the good lines and carries on', async () => {
    const dir = path.join(dataDir, 'spool-corrupt');
    await mkdir(dir, { recursive: true });
    const before = Array.from({ length: 3 }, () => accessEvent({ groupId: school.groupId }));
    const after = Array.from({ length: 4 }, () => accessEvent({ groupId: school.groupId }));
    const garbled = '{"id":"5f1c\u0000\u0007 garbage';
    const head = before.map(eventToJsonLine).join('');
    const truncated = eventToJsonLine(accessEvent({ groupId: school.groupId })).slice(0, 50);
    await writeFile(path.join(dir, 'spool-000000000007.jsonl'), `${head}${garbled}\n${after.map(eventToJsonLine).join('')}${truncated}`);

    const { log, lines } = capturingLogger();
    const writer = newWriter('spool-corrupt', { log });
    await writer.start();
    await waitFor(() => writer.spoolBytes === 0, 10_000, 'the spool to be replayed');
    const live = accessEvent({ groupId: school.groupId });
    writer.record(live);
    await writer.close();

    expect(await countStored([...before, ...after, live])).toEqual({ rows: 8, distinct: 8 });
    const reports = lines.filter((l) => l.msg === 'access log spool line cannot be replayed; set aside');
    expect(reports.map((r) => [r.file, r.line, r.byteOffset])).toEqual([
      ['spool-000000000007.jsonl', 4, Buffer.byteLength(head)],
      ['spool-000000000007.jsonl', 9, Buffer.byteLength(head) + Buffer.byteLength(garbled) + 1 + Buffer.byteLength(after.map(eventToJsonLine).join(''))],
    ]);
    expect(String(reports[0].reason)).toMatch(/JSON/);
    expect(await readFile(path.join(dir, 'spool-000000000007.jsonl.bad'), 'utf8')).toBe(`${garbled}\n${truncated}\n`);
    expect(writer.counters()).toMatchObject({ replayed: 7, badSpoolLines: 2, written: 8, dropped: 0 });
    expect((await readdir(dir)).sort()).toEqual(['spool-000000000007.jsonl.bad']);
  }, 60_000);

  it('replays COPY rows and JSON events from one spool file, setting aside a cut-short row and one Postgres refuses', async () => {
    const dir = path.join(dataDir, 'spool-rows');
    await mkdir(dir, { recursive: true });
    const rows = Array.from({ length: 4 }, () => accessEvent({ groupId: school.groupId }));
    const json = Array.from({ length: 2 }, () => accessEvent({ groupId: school.groupId }));
    const rowLine = (e: AccessEvent) => encodedToSpoolLine(encodeAccessEvent(e));
    const cutShort = rowLine(accessEvent({ groupId: school.groupId })).split('\t').slice(0, 9).join('\t');
    const refusedFields = rowLine(accessEvent({ groupId: school.groupId })).trimEnd().split('\t');
    refusedFields[5] = 'not-an-ip'; // client_ip: the right shape, a value only Postgres checks
    const refused = refusedFields.join('\t');
    await writeFile(
      path.join(dir, 'spool-000000000003.jsonl'),
      `${rowLine(rows[0])}${eventToJsonLine(json[0])}${cutShort}\n${rowLine(rows[1])}${refused}\n${rowLine(rows[2])}${eventToJsonLine(json[1])}${rowLine(rows[3])}`,
    );

    const { log, lines } = capturingLogger();
    const writer = newWriter('spool-rows', { log });
    await writer.start();
    await waitFor(() => writer.spoolBytes === 0, 10_000, 'the spool to be replayed');
    await writer.close();

    expect(await countStored([...rows, ...json])).toEqual({ rows: 6, distinct: 6 });
    const stored = await pool.query('SELECT DISTINCT school_id FROM access_log WHERE id = ANY($1::uuid[])', [rows.map((e) => e.id)]);
    expect(stored.rows).toEqual([{ school_id: school.schoolId }]);
    const reports = lines.filter((l) => l.msg === 'access log spool line cannot be replayed; set aside');
    expect(reports.map((r) => r.line)).toEqual([3, 5]);
    expect(String(reports[0].reason)).toMatch(/columns/);
    expect(String(reports[1].reason)).toMatch(/Postgres refused it/);
    expect(await readFile(path.join(dir, 'spool-000000000003.jsonl.bad'), 'utf8')).toBe(`${cutShort}\n${refused}\n`);
    expect(writer.counters()).toMatchObject({ replayed: 6, written: 6, badSpoolLines: 1, rejected: 1, dropped: 0 });
  }, 60_000);
});
