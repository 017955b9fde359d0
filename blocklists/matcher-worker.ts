// The worker thread's side of buildMatcherInWorker (build-matcher.ts): opens
// its own connection, streams every list entry, builds the matcher and posts
// its parts back with their arrays transferred, not copied. Any failure is
// posted as a message; the thread then ends.
import { parentPort, workerData } from 'node:worker_threads';
import { createPool, type Pool } from '../core/db.js';
import { loadListEntries } from './load.js';
import { CompiledMatcher, MatcherBuilder } from './matcher.js';
import type { MatcherWorkerReply, MatcherWorkerRequest } from './build-matcher.js';

/** The planner's row estimate (kept current by ANALYZE after each import): enough to size the tables, at no cost. */
async function estimatedEntries(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>("SELECT reltuples::float8 AS n FROM pg_class WHERE oid = 'list_entries'::regclass");
  const estimate = Math.round(rows[0]?.n ?? 0);
  return estimate > 0 ? estimate : 0;
}

async function build({ connectionString }: MatcherWorkerRequest): Promise<MatcherWorkerReply> {
  const started = performance.now();
  const pool = createPool(connectionString, undefined, 1);
  try {
    const builder = new MatcherBuilder(await estimatedEntries(pool));
    await loadListEntries(pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
    const parts = builder.build().toParts();
    return { ok: true, parts, ms: Math.round(performance.now() - started) };
  } finally {
    await pool.end();
  }
}

const port = parentPort;
if (port === null) throw new Error('matcher-worker.ts runs only as a worker thread (see build-matcher.ts)');
build(workerData as MatcherWorkerRequest).then(
  (reply) => port.postMessage(reply, reply.ok ? CompiledMatcher.transferList(reply.parts) : []),
  (err: unknown) => port.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) } satisfies MatcherWorkerReply),
);
