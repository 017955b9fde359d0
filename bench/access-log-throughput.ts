// Sustained access-log throughput: events recorded as fast as the writer
// drains them into Postgres, for BENCH_SECONDS (default 20), then a report
// of rows written per second. BENCH_CONCURRENCY sets the writer's
// writeConcurrency (default 2). Uses DATABASE_URL (a database it may add
// tables to) or else a throwaway embedded Postgres in a temp folder.
//
//   npx tsc --outDir /tmp/b -p tsconfig.json && node /tmp/b/bench/access-log-throughput.js
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AccessLogWriter } from '../access-log/writer.js';
import { createPool } from '../core/db.js';
import { startEmbeddedPostgres } from '../core/embedded-postgres.js';
import { createLogger } from '../core/logger.js';
import { migrate } from '../core/migrate.js';
import type { AccessEvent } from '../proxy/types.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const writeConcurrency = Number(process.env.BENCH_CONCURRENCY ?? 2);
const queueCap = 50_000;

async function main(): Promise<void> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-'));
  await chmod(scratch, 0o711); // as root, the embedded Postgres runs as `postgres` and must enter it
  const embedded = process.env.DATABASE_URL
    ? undefined
    : await startEmbeddedPostgres({ dataDir: path.join(scratch, 'data'), port: Number(process.env.BENCH_PG_PORT ?? 54_399) });
  const pool = createPool(process.env.DATABASE_URL ?? embedded!.connectionString);
  await migrate(pool);
  const school = await pool.query<{ id: number }>("INSERT INTO schools (name) VALUES ('Bench School') RETURNING id");
  const group = await pool.query<{ id: number }>(
    "INSERT INTO groups (school_id, key, name) VALUES ($1, 'bench-' || $2, 'Bench') RETURNING id",
    [school.rows[0].id, randomUUID()],
  );
  const groupId = group.rows[0].id;

  const writer = new AccessLogWriter({ pool, spoolDir: path.join(scratch, 'spool'), log: createLogger('warn'), queueCap, writeConcurrency });
  await writer.start();
  const categories = [[], ['games'], ['social', 'chat'], ['news']];
  const event = (i: number): AccessEvent => ({
    id: randomUUID(),
    time: new Date(),
    identity: { userId: 1 + (i % 900), username: `pupil${i % 900}`, groupId, groupKey: 'bench', source: 'proxy-auth' },
    clientIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    method: 'GET',
    scheme: 'https',
    host: `site${i % 5000}.example.org`,
    port: 443,
    path: `/page/${i}?q=search+terms`,
    decision: { action: i % 10 === 0 ? 'block' : 'allow', categories: categories[i % 4], category: categories[i % 4][0] ?? null,
      ruleKind: 'group_rule', ruleId: 12, rule: 'pupils: games are blocked' },
    status: 200,
    bytesIn: 512,
    bytesOut: 24_000,
    durationMs: 35,
    blockRef: null,
  });

  const started = Date.now();
  const until = started + seconds * 1000;
  let recorded = 0;
  // Offer events whenever the queue has room, so the measure is the writer's pace, not the spool's.
  while (Date.now() < until) {
    while (writer.queueDepth < queueCap / 2) writer.record(event(recorded++));
    await new Promise((r) => setImmediate(r));
  }
  await writer.close();
  const elapsed = (Date.now() - started) / 1000;
  const c = writer.counters();
  console.log(
    JSON.stringify({
      seconds: elapsed,
      recorded,
      written: c.written,
      spooled: c.spooled,
      dropped: c.dropped,
      eventsPerSecond: Math.round(c.written / elapsed),
      writeConcurrency,
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
    }),
  );
  await pool.end();
  await embedded?.stop();
  await rm(scratch, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
