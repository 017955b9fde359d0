// The access-log writer's thread (see thread.ts): an AccessLogWriter with a
// small connection pool of its own, fed the rows the proxy's thread encoded.
import { parentPort, workerData } from 'node:worker_threads';
import { createPool } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import type { FromWriterThread, RowChunk, ToWriterThread, WriterThreadData } from './thread.js';
import { AccessLogWriter } from './writer.js';

const data = workerData as WriterThreadData;
const port = parentPort!;
const post = (message: FromWriterThread): void => port.postMessage(message);
// The proxy thread's logger context (a cluster worker's index, say), less the name createLogger sets itself.
const { name: _name, ...bindings } = data.logBindings;
const log = createLogger(data.logLevel).child(bindings);
// The writer's concurrent COPYs, and one more for its other queries.
const pool = createPool(data.connectionString, log, (data.writer.writeConcurrency ?? 2) + 1);
const writer = new AccessLogWriter({ ...data.writer, pool, log });

/** Splits a chunk back into its rows: each COPY line ends at its newline (newlines inside values are escaped). */
function recordChunk(chunk: RowChunk): void {
  let start = 0;
  for (let i = 0; i < chunk.count; i++) {
    const end = chunk.lines.indexOf('\n', start) + 1;
    writer.recordEncoded({ line: chunk.lines.slice(start, end), groupId: chunk.groupIds[i], day: chunk.day });
    start = end;
  }
}

async function main(): Promise<void> {
  try {
    await writer.start();
  } catch (err) {
    post({ type: 'start-failed', message: (err as Error).message });
    await pool.end().catch(() => undefined);
    return;
  }
  port.on('message', (message: ToWriterThread) => {
    switch (message.type) {
      case 'rows':
        recordChunk(message);
        break;
      case 'unencodable':
        writer.record(message.event);
        break;
      case 'status':
        post({ type: 'status', id: message.id, status: writer.status() });
        break;
      case 'close':
        void writer
          .close()
          .then(() => pool.end())
          .catch((err: unknown) => log.error({ err }, 'closing the access-log writer failed'))
          .finally(() => post({ type: 'closed', status: writer.status() }));
        break;
    }
  });
  post({ type: 'started' });
}

void main();
