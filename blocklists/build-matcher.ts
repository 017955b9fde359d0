// Builds the category matcher in a worker thread, so that a reload (millions
// of entries, seconds of work) never holds up requests on the main thread.
// The worker posts the matcher's typed arrays back without copying them; the
// caller swaps the new matcher in, and lookups in flight finish on the old.
import { startWorker } from '../core/worker-entry.js';
import { CompiledMatcher, type MatcherParts } from './matcher.js';

export interface MatcherWorkerRequest {
  connectionString: string;
}

export type MatcherWorkerReply = { ok: true; parts: MatcherParts; ms: number } | { ok: false; message: string };

export interface BuiltMatcher {
  matcher: CompiledMatcher;
  /** The worker's own time: connecting, streaming the entries and building. */
  workerMs: number;
}

/**
 * Streams list_entries from the database at `connectionString` into a new
 * matcher, in a worker thread. Rejects with the worker's error (database
 * unreachable, an entry the matcher refuses, the worker dying) and leaves
 * nothing running behind it.
 */
export function buildMatcherInWorker(connectionString: string): Promise<BuiltMatcher> {
  return new Promise((resolve, reject) => {
    const request: MatcherWorkerRequest = { connectionString };
    const worker = startWorker(new URL('./matcher-worker.js', import.meta.url), { workerData: request });
    let settled = false;
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      reject(new Error(`building the category lists failed: ${message}`));
    };
    worker.once('message', (reply: MatcherWorkerReply) => {
      if (!reply.ok) {
        fail(reply.message);
        return;
      }
      try {
        const matcher = CompiledMatcher.fromParts(reply.parts);
        settled = true;
        resolve({ matcher, workerMs: reply.ms });
      } catch (err) {
        fail((err as Error).message);
      }
    });
    worker.once('error', (err) => fail(err.message));
    worker.once('exit', (code) => fail(`the worker thread exited (code ${code}) without a result`));
  });
}
