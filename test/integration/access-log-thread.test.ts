// The access log as the proxy runs it: the writer on a thread of its own,
// fed encoded rows in chunks (access-log/thread.ts).
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessLogThread } from '../../access-log/thread.js';
import type { Logger } from '../../core/logger.js';
import { renderPrometheus } from '../../core/metrics.js';
import type { AccessEvent } from '../../proxy/types.js';
import { accessEvent, capturingLogger, seedSchool, waitFor, type SeededSchool, useAccessLogTestBed } from '../support/access-events.js';

describe('AccessLogThread', () => {
  const bed = useAccessLogTestBed();
  let school: SeededSchool;

  beforeAll(async () => {
    school = await seedSchool(bed.db.pool, 'Thread School', 10);
  });

  function startThread(name: string, log = capturingLogger().log): Promise<AccessLogThread> {
    return AccessLogThread.start({
      connectionString: bed.db.url,
      log,
      writer: { spoolDir: path.join(bed.spoolRoot, name), flushIntervalMs: 20 },
    });
  }

  function events(count: number, tag: string, time = () => new Date()): AccessEvent[] {
    return Array.from({ length: count }, (_, i) =>
      accessEvent({ userId: school.userIds[i % school.userIds.length], groupId: school.groupId, time: time(), path: `/${tag}/${i}?q=a\tb` }),
    );
  }

  async function rowsTagged(tag: string): Promise<Array<{ id: string; path: string; username: string; school_id: number; day: string }>> {
    const { rows } = await bed.db.pool.query(
      `SELECT id::text AS id, path, username, school_id, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day
         FROM access_log WHERE path LIKE $1 ORDER BY path`,
      [`/${tag}/%`],
    );
    return rows;
  }

  it('writes every event recorded, in chunks split by day, and its status counts them all at once', async () => {
    const thread = await startThread('days');
    // Three chunks' worth, the last 1,000 dated the day before: a chunk never spans two partitions.
    const today = events(2_500, 'days');
    const yesterday = events(1_000, 'days-before', () => new Date(Date.now() - 86_400_000));
    for (const e of [...today, ...yesterday]) thread.record(e);
    // Answered only once the thread holds every event recorded so far.
    expect((await thread.status()).counters.queued).toBe(3_500);
    await waitFor(async () => (await thread.status()).counters.written === 3_500, 10_000, 'the rows to be written');
    await thread.close();

    const written = await rowsTagged('days');
    expect(written.length).toBe(2_500);
    expect(new Set(written.map((r) => r.id))).toEqual(new Set(today.map((e) => e.id)));
    expect(written.find((r) => r.path === '/days/7?q=a\tb')).toMatchObject({ username: `user${school.userIds[7]}`, school_id: school.schoolId });
    const before = await rowsTagged('days-before');
    expect(before.length).toBe(1_000);
    expect(new Set(before.map((r) => r.day))).toEqual(new Set([new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)]));
  });

  it('writes rows whatever their length and characters: non-ASCII paths, and one longer than a whole chunk', async () => {
    const thread = await startThread('sizes');
    const around = events(600, 'sizes');
    const accented = accessEvent({ groupId: school.groupId, path: '/sizes/é/ü/名前/😀?q=café' });
    // Longer than the 512 KiB a chunk holds when counted at three bytes a character, though less in UTF-8.
    const long = accessEvent({ groupId: school.groupId, path: `/sizes/long/${'a'.repeat(200_000)}` });
    for (const e of around.slice(0, 300)) thread.record(e);
    thread.record(accented);
    thread.record(long);
    for (const e of around.slice(300)) thread.record(e);
    await thread.close();

    expect((await thread.status()).counters).toMatchObject({ queued: 602, written: 602, dropped: 0 });
    const written = await rowsTagged('sizes');
    expect(written.length).toBe(602);
    expect(written.find((r) => r.id === accented.id)?.path).toBe(accented.path);
    expect(written.find((r) => r.id === long.id)?.path).toBe(long.path);
    expect(new Set(written.map((r) => r.id))).toEqual(new Set([...around, accented, long].map((e) => e.id)));
  });

  it('keeps an event it cannot encode in rejected.jsonl, with the reason, and writes the rest', async () => {
    const thread = await startThread('unencodable');
    const [good, alsoGood] = events(2, 'unencodable');
    const bad = { ...accessEvent({ groupId: school.groupId }), port: 70_000 };
    thread.record(good);
    thread.record(bad);
    thread.record(alsoGood);
    await thread.close();

    const status = await thread.status();
    expect(status.counters).toMatchObject({ queued: 3, written: 2, rejected: 1, dropped: 0 });
    const rejected = (await readFile(path.join(bed.spoolRoot, 'unencodable', 'rejected.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(rejected).toHaveLength(1);
    expect(rejected[0].reason).toMatch(/port: expected a whole number from 0 to 65535, got 70000/);
    expect(rejected[0].event.id).toBe(bad.id);
    expect((await rowsTagged('unencodable')).length).toBe(2);
  });

  /** A thread that wrote `count` events, and whose worker then died as it would from a fatal error inside it. */
  async function threadThatDied(name: string, count: number, log: Logger): Promise<AccessLogThread> {
    const thread = await startThread(name, log);
    for (const e of events(count, `${name}-before`)) thread.record(e);
    await waitFor(async () => (await thread.status()).counters.written === count, 10_000, 'the first rows');
    await (thread as unknown as { worker: Worker }).worker.terminate();
    return thread;
  }

  it('starts its thread again when it dies, and the events recorded meanwhile are written', async () => {
    const { log, lines } = capturingLogger();
    const thread = await threadThatDied('restart', 100, log);
    const during = events(300, 'restart-during');
    for (const e of during) thread.record(e);
    await waitFor(async () => (await thread.status()).threadRestarts === 1, 10_000, 'the thread to be started again');
    await waitFor(async () => (await rowsTagged('restart-during')).length === 300, 10_000, 'the rows recorded during the restart');
    expect(lines.some((l) => l.level === 50 && /writer thread stopped/.test(String(l.msg)))).toBe(true);

    const metrics = renderPrometheus(await thread.metrics());
    expect(metrics).toContain('portcullis_access_log_thread_restarts_total 1');
    expect(metrics).toContain('portcullis_access_events_dropped_total 0');
    await thread.close();
  });

  it('closes without waiting for ever when its thread died and cannot be started again, counting what waited as dropped', async () => {
    const { log, lines } = capturingLogger();
    const thread = await threadThatDied('unstartable', 20, log);
    // The spool folder is gone and a file stands in its place: no writer can open it.
    const spoolDir = path.join(bed.spoolRoot, 'unstartable');
    await rm(spoolDir, { recursive: true });
    await writeFile(spoolDir, '');
    for (const e of events(30, 'unstartable-after')) thread.record(e);
    await thread.close();

    const status = await thread.status();
    expect(status.counters).toMatchObject({ written: 20, dropped: 30 });
    expect(lines.find((l) => /its writer thread cannot be started/.test(String(l.msg)))).toMatchObject({ events: 30 });
  });

  it('writes what was recorded just before close, and counts an event recorded after it as dropped', async () => {
    const { log, lines } = capturingLogger();
    const thread = await startThread('close', log);
    const last = events(50, 'close');
    for (const e of last) thread.record(e); // still in the proxy thread's chunk when close() is called
    await thread.close();
    expect((await rowsTagged('close')).length).toBe(50);

    const late = accessEvent({ groupId: school.groupId });
    thread.record(late);
    expect((await thread.status()).counters).toMatchObject({ queued: 50, written: 50, dropped: 1 });
    expect(lines.find((l) => l.eventId === late.id)?.msg).toMatch(/after the access log closed; lost/);
  });

  it('fails to start, saying why, when its spool folder cannot be made', async () => {
    const blocker = path.join(bed.spoolRoot, 'a-file');
    await writeFile(blocker, '');
    await expect(
      AccessLogThread.start({ connectionString: bed.db.url, log: capturingLogger().log, writer: { spoolDir: path.join(blocker, 'spool') } }),
    ).rejects.toThrow(/the access-log writer could not start: .*(ENOTDIR|not a directory)/);
  });
});
