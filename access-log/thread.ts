// The access log as the proxy process runs it: the AccessLogWriter (its
// queue, the COPYs into Postgres, the spool) on a worker thread of its own.
//
// The proxy's thread only encodes each event as its COPY row and appends it
// to a chunk; at CHUNK_ROWS rows or COPY_BUFFER_CHARS characters (writer.ts),
// or HAND_OVER_MS after the first row, the chunk goes to the writer's thread
// as one string and one typed array. With the writer on the proxy's thread,
// logging cost a proxy process about a fifth of its throughput under load:
// the batches waiting for COPY, the COPYs' protocol work and the garbage
// both make all fell on the thread that answers requests
// (docs/design-notes.md).
//
// Nothing is lost on the way: messages to the thread are delivered in order,
// close() hands over what is left before the writer flushes, and status()
// answers only after the thread has taken every event recorded before it.
// Should the thread die, its spool stays on disk; a new thread is started,
// replays it, and takes the chunks that waited meanwhile. Only what the dead
// thread held in memory is gone, and that is logged. A close() that finds no
// thread able to start counts what waited as dropped rather than hang.
import { inspect } from 'node:util';
import type { Worker } from 'node:worker_threads';
import type { Logger } from '../core/logger.js';
import type { MetricSample } from '../core/metrics.js';
import { startWorker } from '../core/worker-entry.js';
import type { AccessEvent, AccessRecorder } from '../proxy/types.js';
import { encodeAccessEvent, type EncodedAccessEvent } from './copy-row.js';
import { accessLogMetrics, COPY_BUFFER_CHARS, noAccessLogCounters, type AccessLogStatus, type AccessLogWriterOptions } from './writer.js';

/** Most rows in a chunk handed to the writer's thread. */
const CHUNK_ROWS = 1_024;
/** Longest a row waits on the proxy's thread before its chunk is handed over. */
const HAND_OVER_MS = 25;
/** Most rows kept for the writer's thread while it is being restarted. */
const BACKLOG_CAP = 100_000;
const RESTART_DELAY_MS = 1_000;
const WRITER_YOUNG_GENERATION_MB = 8;

export type WriterThreadOptions = Omit<AccessLogWriterOptions, 'pool' | 'log'>;

export interface AccessLogThreadOptions {
  connectionString: string;
  log: Logger;
  writer: WriterThreadOptions;
}

/** What the writer's thread is started with. */
export interface WriterThreadData {
  connectionString: string;
  logLevel: string;
  logBindings: Record<string, unknown>;
  writer: WriterThreadOptions;
}

/** Rows of one UTC day: their COPY lines end to end, and each row's group. */
export interface RowChunk {
  type: 'rows';
  day: string;
  lines: string;
  groupIds: Int32Array;
  count: number;
}

export type ToWriterThread =
  | RowChunk
  /** An event that could not be encoded: the writer keeps it in rejected.jsonl with the reason. */
  | { type: 'unencodable'; event: AccessEvent }
  | { type: 'status'; id: number }
  | { type: 'close' };

export type FromWriterThread =
  | { type: 'started' }
  | { type: 'start-failed'; message: string }
  | { type: 'status'; id: number; status: AccessLogStatus }
  | { type: 'closed'; status: AccessLogStatus };

export interface AccessLogThreadStatus extends AccessLogStatus {
  /** Times the writer's thread died and was started again. */
  threadRestarts: number;
}

export class AccessLogThread implements AccessRecorder {
  private worker: Worker | undefined;
  private running = false;
  /** Messages for a thread that is (re)starting. */
  private backlog: Array<{ message: ToWriterThread; rows: number }> = [];
  private backlogRows = 0;
  private chunkDay = '';
  private chunkLines = '';
  private chunkGroups = new Int32Array(CHUNK_ROWS);
  private chunkRows = 0;
  private handOverTimer: NodeJS.Timeout | undefined;
  private nextStatusId = 1;
  private readonly statusWaiters = new Map<number, (status: AccessLogStatus) => void>();
  /** Events lost on this side: recorded after close, past the backlog's cap, or impossible to copy. What a dying thread held is not known here. */
  private lost = 0;
  private restarts = 0;
  private closing: Promise<void> | undefined;
  private onClosed: ((status: AccessLogStatus) => void) | undefined;
  private finalStatus: AccessLogStatus | undefined;
  /** The thread's last answer, for a close that finds no thread to ask. */
  private lastStatus: AccessLogStatus = {
    counters: noAccessLogCounters(),
    queueDepth: 0,
    spoolBytes: 0,
    postgresUp: false,
  };
  private readonly log: Logger;

  private constructor(private readonly options: AccessLogThreadOptions) {
    this.log = options.log.child({ component: 'access-log' });
  }

  /** Starts the writer's thread; resolves once its spool is open (replay of an earlier run's has begun). */
  static async start(options: AccessLogThreadOptions): Promise<AccessLogThread> {
    const thread = new AccessLogThread(options);
    await thread.startThread();
    return thread;
  }

  record(event: AccessEvent): void {
    if (this.closing) {
      this.lost++;
      this.log.error({ eventId: event?.id }, 'access event recorded after the access log closed; lost');
      return;
    }
    let row: EncodedAccessEvent;
    try {
      row = encodeAccessEvent(event);
    } catch {
      this.sendUnencodable(event);
      return;
    }
    const full = this.chunkLines.length + row.line.length > COPY_BUFFER_CHARS;
    if ((row.day !== this.chunkDay || full) && this.chunkRows > 0) this.handOver();
    this.chunkDay = row.day;
    this.chunkLines += row.line;
    this.chunkGroups[this.chunkRows++] = row.groupId;
    if (this.chunkRows === CHUNK_ROWS) this.handOver();
    else this.handOverTimer ??= setTimeout(() => this.handOver(), HAND_OVER_MS);
  }

  /** The writer's counters and state, once it has taken every event recorded so far. */
  async status(): Promise<AccessLogThreadStatus> {
    if (this.finalStatus) return this.withOwnCounts(this.finalStatus);
    this.handOver();
    const id = this.nextStatusId++;
    const status = await new Promise<AccessLogStatus>((resolve) => {
      this.statusWaiters.set(id, resolve);
      this.send({ type: 'status', id });
    });
    return this.withOwnCounts(status);
  }

  async metrics(): Promise<MetricSample[]> {
    const status = await this.status();
    return [
      ...accessLogMetrics(status),
      {
        name: 'portcullis_access_log_thread_restarts_total',
        help: 'Times the access-log writer thread died and was started again.',
        type: 'counter',
        value: status.threadRestarts,
      },
    ];
  }

  /** Hands over what is left; the writer writes everything to Postgres (or the spool) and its thread ends. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.handOver();
    // A thread still restarting takes its backlog first, then the close.
    const status = await new Promise<AccessLogStatus>((resolve) => {
      this.onClosed = resolve;
      this.send({ type: 'close' });
    });
    this.finalStatus = status;
    for (const [, waiter] of this.statusWaiters) waiter(status);
    this.statusWaiters.clear();
    const worker = this.worker;
    this.worker = undefined; // its exit is not a death to restart from
    await worker?.terminate();
  }

  private withOwnCounts(status: AccessLogStatus): AccessLogThreadStatus {
    return { ...status, counters: { ...status.counters, dropped: status.counters.dropped + this.lost }, threadRestarts: this.restarts };
  }

  private handOver(): void {
    clearTimeout(this.handOverTimer);
    this.handOverTimer = undefined;
    if (this.chunkRows === 0) return;
    const chunk: RowChunk = { type: 'rows', day: this.chunkDay, lines: this.chunkLines, groupIds: this.chunkGroups, count: this.chunkRows };
    this.chunkLines = '';
    this.chunkGroups = new Int32Array(CHUNK_ROWS);
    this.chunkRows = 0;
    this.send(chunk);
  }

  private sendUnencodable(event: AccessEvent): void {
    try {
      this.send({ type: 'unencodable', event });
    } catch (err) {
      // Not even a copy of it can be made (a function inside, say): say what it was.
      this.lost++;
      this.log.error({ err: (err as Error).message, event: inspect(event) }, 'access event cannot be encoded or kept; lost');
    }
  }

  private send(message: ToWriterThread): void {
    const rows = message.type === 'rows' ? message.count : message.type === 'unencodable' ? 1 : 0;
    if (!this.running) {
      if (rows > 0 && this.backlogRows + rows > BACKLOG_CAP) {
        this.lost += rows;
        this.log.error({ events: rows }, 'access events lost: the writer thread is restarting and its backlog is full');
        return;
      }
      this.backlog.push({ message, rows });
      this.backlogRows += rows;
      return;
    }
    // The chunk's array moves to the thread rather than being copied.
    this.worker!.postMessage(message, message.type === 'rows' ? [message.groupIds.buffer as ArrayBuffer] : []);
  }

  private startThread(): Promise<void> {
    const { connectionString, log, writer } = this.options;
    const data: WriterThreadData = { connectionString, logLevel: log.level, logBindings: log.bindings(), writer };
    const worker = startWorker(new URL('./thread-worker.js', import.meta.url), {
      workerData: data,
      // What lives on this thread is short-lived or waits in the queue: a young generation of
      // 8 MB keeps the process 7 MB smaller under load than V8's default, and the thread's
      // collections cheaper than 2 MB did (docs/design-notes.md).
      resourceLimits: { maxYoungGenerationSizeMb: WRITER_YOUNG_GENERATION_MB },
    });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let started = false;
      worker.on('message', (message: FromWriterThread) => {
        switch (message.type) {
          case 'started': {
            started = true;
            this.running = true;
            const backlog = this.backlog;
            this.backlog = [];
            this.backlogRows = 0;
            for (const { message: waiting } of backlog) this.send(waiting);
            resolve();
            break;
          }
          case 'start-failed':
            reject(new Error(`the access-log writer could not start: ${message.message}`));
            break;
          case 'status':
            this.lastStatus = message.status;
            this.statusWaiters.get(message.id)?.(message.status);
            this.statusWaiters.delete(message.id);
            break;
          case 'closed':
            this.lastStatus = message.status;
            this.running = false;
            this.onClosed?.(message.status);
            break;
        }
      });
      worker.on('error', (err) => this.log.error({ err }, 'the access-log writer thread failed'));
      worker.on('exit', (code) => {
        if (this.worker !== worker) return; // terminated after close()
        this.running = false;
        if (!started) {
          reject(new Error(`the access-log writer thread exited (code ${code}) before it started`));
          return;
        }
        this.restart(code);
      });
    });
  }

  /** The thread died: what it held in memory is gone; its spool is replayed by the next one. */
  private restart(code: number): void {
    this.restarts++;
    this.log.error(
      { code, restartInMs: RESTART_DELAY_MS },
      'the access-log writer thread stopped; events it had not yet written or spooled are lost. Starting it again',
    );
    this.startAgainSoon();
  }

  private startAgainSoon(): void {
    setTimeout(() => {
      this.startThread().catch((err: unknown) => {
        if (this.closing) {
          this.giveUpClosing(err);
          return;
        }
        this.log.error({ err, retryInMs: RESTART_DELAY_MS }, 'the access-log writer thread could not be started again');
        this.startAgainSoon();
      });
    }, RESTART_DELAY_MS);
  }

  /** Closing, with no thread to write what waits for it: say how much is lost rather than wait for ever. */
  private giveUpClosing(err: unknown): void {
    const waiting = this.backlogRows;
    this.lost += waiting;
    this.backlog = [];
    this.backlogRows = 0;
    this.log.error({ err, events: waiting }, 'the access log is closing and its writer thread cannot be started: the events waiting for it are lost');
    this.onClosed?.(this.lastStatus);
  }
}
