import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderPrometheus } from '../../core/metrics.js';
import { newEventId } from '../../access-log/event-id.js';
import { accessLogMetrics, AccessLogWriter } from '../../access-log/writer.js';
import type { AccessEvent } from '../../proxy/types.js';
import { accessEvent, capturingLogger, seedSchool, waitFor, type SeededSchool, useAccessLogTestBed } from '../support/access-events.js';

interface LoggedRow {
  id: string;
  time: Date;
  school_id: number;
  user_id: number | null;
  username: string | null;
  group_id: number;
  client_ip: string;
  path: string | null;
  categories: string[];
  category: string | null;
  action: string;
  rule: string;
  rule_kind: string;
  status: number;
  bytes_in: string;
  duration_ms: number;
  block_ref: string | null;
}

const ACTIONS = ['allow', 'block', 'monitor'] as const;
const RECORDED = { allow: 'allowed', block: 'blocked', monitor: 'monitored' };

describe('AccessLogWriter', () => {
  const bed = useAccessLogTestBed();
  let school: SeededSchool;

  beforeAll(async () => {
    school = await seedSchool(bed.db.pool, 'Writer School', 40);
  });

  function newWriter(name: string, log = capturingLogger().log) {
    return new AccessLogWriter({ pool: bed.db.pool, spoolDir: path.join(bed.spoolRoot, name), log, flushIntervalMs: 20 });
  }

  /** Varied events, with the characters COPY and array literals must escape. */
  function manyEvents(count: number): AccessEvent[] {
    return Array.from({ length: count }, (_, i) => {
      const userId = i % 7 === 0 ? null : school.userIds[i % school.userIds.length];
      const action = ACTIONS[i % 3];
      const categories = [[], ['games'], ['social', 'chat'], ['odd "quoted" \\ cat', 'tab\there']][i % 4];
      return accessEvent({
        userId,
        groupId: school.groupId,
        time: new Date(Date.now() - (i % 1000) * 1000),
        clientIp: i % 5 === 0 ? '2001:db8::1' : `10.0.${i % 250}.${i % 200}`,
        path: i % 6 === 0 ? null : `/search?q=a\tb\nc\\d&i=${i}`,
        decision: {
          action,
          categories,
          category: categories[0] ?? null,
          ruleKind: action === 'block' ? 'group_rule' : 'default',
          ruleId: action === 'block' ? 7 : null,
          rule: `pupils: rule \\ with "quotes"\r\n${i}`,
        },
        status: action === 'block' ? 403 : 200,
        bytesIn: i,
        durationMs: 3.6,
        blockRef: action === 'block' ? `BR-${i}` : null,
      });
    });
  }

  it('writes thousands of events, each exactly once and exactly as recorded', async () => {
    const writer = newWriter('bulk');
    await writer.start();
    const events = manyEvents(12_000);
    for (const e of events) writer.record(e);
    await writer.close();

    const rows = await bed.db.pool.query<LoggedRow>(
      `SELECT id, time, school_id, user_id, username, group_id, host(client_ip) AS client_ip, path, categories, category,
              action, rule, rule_kind, status, bytes_in, duration_ms, block_ref
       FROM access_log WHERE id = ANY($1::uuid[])`,
      [events.map((e) => e.id)],
    );
    expect(rows.rowCount).toBe(events.length);
    const byId = new Map(rows.rows.map((r) => [r.id, r]));
    for (const e of events) {
      const row = byId.get(e.id)!;
      expect(row).toEqual({
        id: e.id,
        time: e.time,
        school_id: school.schoolId,
        user_id: e.identity.userId,
        username: e.identity.username,
        group_id: school.groupId,
        client_ip: e.clientIp,
        path: e.path,
        categories: [...e.decision.categories],
        category: e.decision.category,
        action: RECORDED[e.decision.action],
        rule: e.decision.rule,
        rule_kind: e.decision.ruleKind,
        status: e.status,
        bytes_in: String(e.bytesIn),
        duration_ms: 4,
        block_ref: e.blockRef,
      });
    }
    expect(writer.counters()).toMatchObject({ queued: 12_000, written: 12_000, duplicates: 0, spooled: 0, dropped: 0, rejected: 0 });
  });

  it('writes an event recorded twice only once', async () => {
    const writer = newWriter('twice');
    await writer.start();
    const events = manyEvents(500);
    for (const e of events) writer.record(e);
    for (const e of events) writer.record(e);
    await writer.close();
    const count = await bed.db.pool.query('SELECT count(*)::int AS n FROM access_log WHERE id = ANY($1::uuid[])', [events.map((e) => e.id)]);
    expect(count.rows[0].n).toBe(500);
    expect(writer.counters()).toMatchObject({ queued: 1000, written: 500, duplicates: 500, dropped: 0 });
  });

  it('writes an event of a UTC day already over, recorded twice, only once', async () => {
    // Such a batch is COPY'd with the rollup's mark in one transaction, which the duplicate must roll back whole.
    const writer = newWriter('twice-late');
    await writer.start();
    const events = manyEvents(300).map((e) => ({ ...e, time: new Date(e.time.getTime() - 3 * 24 * 3600 * 1000) }));
    for (const e of events) writer.record(e);
    for (const e of events) writer.record(e);
    await writer.close();
    const count = await bed.db.pool.query('SELECT count(*)::int AS n FROM access_log WHERE id = ANY($1::uuid[])', [events.map((e) => e.id)]);
    expect(count.rows[0].n).toBe(300);
    expect(writer.counters()).toMatchObject({ queued: 600, written: 300, duplicates: 300, dropped: 0, rejected: 0 });
  });

  it('makes time-ordered ids (UUIDv7) that Postgres sorts in the order they were made', async () => {
    const start = Date.UTC(2026, 0, 5, 9, 0, 0);
    // Several ids per millisecond, and milliseconds whose hex digits roll over.
    const made = Array.from({ length: 3_000 }, (_, i) => ({ id: newEventId(start + Math.floor(i / 3) * 17), at: start + Math.floor(i / 3) * 17 }));
    expect(new Set(made.map((m) => m.id)).size).toBe(made.length);
    for (const { id } of made) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const writer = newWriter('v7');
    await writer.start();
    for (const m of made) writer.record(accessEvent({ groupId: school.groupId, id: m.id, time: new Date(m.at) }));
    await writer.close();
    const { rows } = await bed.db.pool.query<{ id: string; ms: string }>(
      'SELECT id::text, (extract(epoch FROM time) * 1000)::bigint AS ms FROM access_log WHERE id = ANY($1::uuid[]) ORDER BY id',
      [made.map((m) => m.id)],
    );
    expect(rows).toHaveLength(made.length);
    const times = rows.map((r) => Number(r.ms));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(writer.counters()).toMatchObject({ written: made.length, duplicates: 0, rejected: 0 });
  });

  it('creates the partition for a day that has none yet', async () => {
    const writer = newWriter('old-day');
    await writer.start();
    const old = accessEvent({ groupId: school.groupId, time: new Date('2021-02-03T04:05:06Z') });
    writer.record(old);
    await writer.close();
    const row = await bed.db.pool.query('SELECT tableoid::regclass::text AS partition FROM access_log WHERE id = $1', [old.id]);
    expect(row.rows).toEqual([{ partition: 'access_log_p20210203' }]);
  });

  it('keeps events Postgres could never accept in rejected.jsonl, with the reason, and writes the rest', async () => {
    const { log, lines } = capturingLogger();
    const writer = newWriter('rejects', log);
    await writer.start();
    const good = accessEvent({ groupId: school.groupId });
    const badIp = accessEvent({ groupId: school.groupId, clientIp: 'not-an-ip' });
    const badId = accessEvent({ groupId: school.groupId, id: 'request-42' });
    const nul = accessEvent({ groupId: school.groupId, path: '/a\0b' });
    const before1970 = accessEvent({ groupId: school.groupId, time: new Date('1969-12-31T23:59:59.999Z') });
    const year10000 = accessEvent({ groupId: school.groupId, time: new Date('+010000-01-01T00:00:00Z') });
    const lastMoment = accessEvent({ groupId: school.groupId, time: new Date('9999-12-31T23:59:59.999Z') });
    for (const e of [badIp, good, badId, nul, before1970, year10000, lastMoment]) writer.record(e);
    await writer.close();

    const written = await bed.db.pool.query('SELECT id FROM access_log WHERE id = ANY($1::uuid[])', [[good.id, lastMoment.id]]);
    expect(written.rowCount).toBe(2);
    expect(writer.counters()).toMatchObject({ written: 2, rejected: 5, dropped: 0 });
    const kept = (await readFile(path.join(bed.spoolRoot, 'rejects', 'rejected.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { reason: string; event: { id: string } });
    expect(kept.map((k) => [k.event.id, k.reason])).toEqual([
      [badIp.id, 'access event clientIp: "not-an-ip" is not an IP address'],
      ['request-42', 'access event id: "request-42" is not a UUID (use newEventId())'],
      [nul.id, 'access event path: contains a NUL character'],
      [before1970.id, 'access event time: not a valid Date from 1970 to 9999'],
      [year10000.id, 'access event time: not a valid Date from 1970 to 9999'],
    ]);
    expect(lines.filter((l) => l.msg === 'access event rejected, kept in the spool folder')).toHaveLength(5);
  });

  it('appends events recorded after close() to the spool for the next start', async () => {
    const writer = newWriter('late');
    await writer.start();
    await writer.close();
    const late = accessEvent({ groupId: school.groupId });
    writer.record(late);
    expect(writer.counters()).toMatchObject({ spooled: 1, dropped: 0 });

    const next = newWriter('late');
    await next.start();
    expect(next.spoolBytes).toBeGreaterThan(0);
    await waitFor(() => next.spoolBytes === 0, 10_000, 'the spool to be replayed');
    await next.close();
    const row = await bed.db.pool.query('SELECT id FROM access_log WHERE id = $1', [late.id]);
    expect(row.rowCount).toBe(1);
    expect(next.counters()).toMatchObject({ replayed: 1, written: 1 });
    expect((await readdir(path.join(bed.spoolRoot, 'late'))).filter((f) => f.endsWith('.jsonl'))).toEqual([]);
  });

  it('exposes its counters in Prometheus text format', async () => {
    const writer = newWriter('metrics');
    await writer.start();
    for (const e of manyEvents(3)) writer.record(e);
    await writer.close();
    const text = renderPrometheus([
      ...accessLogMetrics(writer.status()),
      { name: 'portcullis_other_total', help: 'Another "counter"\\ passed in.', type: 'counter', value: 5, labels: { school: 'St "A"\n' } },
    ]);
    expect(text).toContain(
      '# HELP portcullis_access_events_written_total Access log rows inserted into Postgres.\n' +
        '# TYPE portcullis_access_events_written_total counter\n' +
        'portcullis_access_events_written_total 3\n',
    );
    expect(text).toContain('portcullis_access_events_dropped_total 0\n');
    expect(text).toContain('# TYPE portcullis_access_log_queue_depth gauge\nportcullis_access_log_queue_depth 0\n');
    expect(text).toContain('# HELP portcullis_other_total Another "counter"\\\\ passed in.\n');
    expect(text).toContain('portcullis_other_total{school="St \\"A\\"\\n"} 5\n');
    expect(() => renderPrometheus([{ name: 'bad name', help: '', type: 'gauge', value: 1 }])).toThrow(/not a valid Prometheus metric name/);
  });
});
