// The access-log writer. In Portcullis it runs on a thread of its own
// (AccessLogThread, thread.ts), fed rows the proxy's thread encoded
// (recordEncoded); record() encodes an event itself.
//
// Each row joins a bounded in-memory queue; a drain loop writes the queue to
// Postgres in batches (PostgresSink). The queue holds each event as its COPY
// line, not the event's objects: at tens of thousands of events a second,
// what waits in the queue is copied by every young-generation GC. When
// Postgres fails or is too slow, batches go to the local spool instead (as
// COPY rows), and so does every event recorded while the queue is full, so
// memory stays bounded however long the outage.
// Postgres is retried with back-off; once it answers, the spool is replayed
// in order, each event exactly once (ids make a replay idempotent), and each
// replayed file is removed. Spool files of earlier versions (JSON events)
// are replayed too.
//
// Nothing is lost silently: an event Postgres could never accept goes to
// spool/rejected.jsonl, a spool line that cannot be read goes to
// <file>.bad, both with an error log naming why and where. Only a failing
// disk drops events, and `dropped` counts them.
import { inspect } from 'node:util';
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import type { AccessEvent, AccessRecorder } from '../proxy/types.js';
import { encodeAccessEvent, encodedFromSpoolLine, encodedToSpoolLine, type EncodedAccessEvent } from './copy-row.js';
import { eventFromJsonLine } from './event-json.js';
import type { MetricSample } from '../core/metrics.js';
import { GroupSchools } from './group-schools.js';
import { isDataError, PostgresSink } from './postgres-sink.js';
import { Spool, type SpoolLine } from './spool.js';

export interface AccessLogWriterOptions {
  pool: Pool;
  /** DATA_DIR/spool; one writer (one process) per folder. */
  spoolDir: string;
  log: Logger;
  /** Most events in one COPY. */
  batchSize?: number;
  /** Batches written at once, each on its own connection (the pool needs this many free). */
  writeConcurrency?: number;
  /**
   * Longest an event waits in the queue before its batch is written (default
   * 250 ms). A full batch is written at once whatever this says; at a light
   * load each COPY costs the proxy far more than its rows do, and a 50 ms
   * interval cost one proxy process a quarter of its CPU per request against
   * 250 ms (docs/design-notes.md). What waits here is lost if the process is
   * killed outright; a clean shutdown writes it.
   */
  flushIntervalMs?: number;
  /** Most events held in memory; past it, record() writes straight to the spool. */
  queueCap?: number;
  /** A write slower than this counts as a failure; its batch is spooled. */
  writeTimeoutMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  spoolFileBytes?: number;
}

export interface AccessLogCounters {
  /** Events passed to record(). */
  queued: number;
  /** Rows inserted into access_log (live and replayed). */
  written: number;
  /** Events already present when written again (a replay after a write that timed out but committed). */
  duplicates: number;
  /** Events appended to the spool. */
  spooled: number;
  /** Spooled events since written to Postgres. */
  replayed: number;
  /** Events Postgres could never accept, kept in rejected.jsonl or a .bad file. */
  rejected: number;
  /** Spool lines that could not be read, kept in a .bad file. */
  badSpoolLines: number;
  /** Events lost because the disk failed while spooling them. */
  dropped: number;
}

/** Every counter at zero, as a new writer starts. */
export function noAccessLogCounters(): AccessLogCounters {
  return { queued: 0, written: 0, duplicates: 0, spooled: 0, replayed: 0, rejected: 0, badSpoolLines: 0, dropped: 0 };
}

/** The writer's state as the metrics endpoint shows it. */
export interface AccessLogStatus {
  counters: AccessLogCounters;
  /** Events waiting in memory. */
  queueDepth: number;
  /** Bytes of events waiting in the spool. */
  spoolBytes: number;
  /** Whether the last write to Postgres succeeded. */
  postgresUp: boolean;
}

/** The writer's status in Prometheus terms. */
export function accessLogMetrics(status: AccessLogStatus): MetricSample[] {
  const c = status.counters;
  const counter = (name: string, help: string, value: number): MetricSample => ({
    name: `portcullis_access_events_${name}_total`, help, type: 'counter', value,
  });
  return [
    counter('queued', 'Access events recorded by the proxy.', c.queued),
    counter('written', 'Access log rows inserted into Postgres.', c.written),
    counter('duplicates', 'Access events skipped because their row was already present.', c.duplicates),
    counter('spooled', 'Access events written to the local spool.', c.spooled),
    counter('replayed', 'Spooled access events since written to Postgres.', c.replayed),
    counter('rejected', 'Access events Postgres cannot accept, kept in the spool folder.', c.rejected),
    counter('bad_spool_lines', 'Unreadable spool lines, kept in .bad files.', c.badSpoolLines),
    counter('dropped', 'Access events lost: the spool could not be written, or they came after the access log closed.', c.dropped),
    { name: 'portcullis_access_log_queue_depth', help: 'Access events waiting in memory.', type: 'gauge', value: status.queueDepth },
    { name: 'portcullis_access_log_spool_bytes', help: 'Bytes of access events waiting in the spool.', type: 'gauge', value: status.spoolBytes },
    { name: 'portcullis_access_log_postgres_up', help: '1 when the last write to Postgres succeeded.', type: 'gauge', value: status.postgresUp ? 1 : 0 },
  ];
}

/**
 * Most characters in one buffer of COPY text: a piece of a batch written to
 * Postgres here, and a chunk handed to the writer's thread (thread.ts). A
 * row longer than that is a piece, or a chunk, of its own. Memory of 128 KiB
 * or more (glibc's mmap threshold, which Portcullis sets, and V8's large
 * objects) is mapped fresh from the kernel for each buffer and unmapped
 * after, and a batch made one string of a megabyte or so, twice (the string,
 * then its bytes); handing chunks of 1,024 rows to the thread cost 1.4–1.7 µs
 * per row in page faults in a postMessage micro-benchmark, against 0.1–0.3
 * µs for 256 or 512 (docs/design-notes.md, "Buffers under 128 KiB").
 * 48 Ki characters stay under it even as a two-byte string.
 */
export const COPY_BUFFER_CHARS = 48 * 1_024;

/** One row ready for COPY; a replayed one knows its spool line, to set it aside if Postgres refuses it. */
interface PendingRow extends EncodedAccessEvent {
  origin?: SpoolLine;
}

export class AccessLogWriter implements AccessRecorder {
  private queue: EncodedAccessEvent[] = [];
  private readonly counts = noAccessLogCounters();
  private readonly sink: PostgresSink;
  private readonly groupSchools: GroupSchools;
  private readonly batchSize: number;
  private readonly writeConcurrency: number;
  private readonly flushIntervalMs: number;
  private readonly queueCap: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly log: Logger;
  private spool: Spool | undefined;
  private postgresUp = true;
  private retryDelayMs = 0;
  private nextRetryAt = 0;
  private spoolNeedsSync = false;
  /** Per spool file: how far replay has committed, and how far bad lines have been set aside. */
  private readonly replayProgress = new Map<string, { offset: number; line: number; setAsideThrough: number }>();
  private closing = false;
  private closed = false;
  private draining: Promise<void> | undefined;
  private closingDone: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private napTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AccessLogWriterOptions) {
    this.sink = new PostgresSink(options.pool, options.writeTimeoutMs ?? 5_000);
    this.groupSchools = new GroupSchools(options.pool);
    this.batchSize = options.batchSize ?? 5_000;
    this.writeConcurrency = options.writeConcurrency ?? 2;
    this.flushIntervalMs = options.flushIntervalMs ?? 250;
    this.queueCap = options.queueCap ?? 50_000;
    this.retryMinMs = options.retryMinMs ?? 250;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
    this.log = options.log.child({ component: 'access-log' });
  }

  /** Opens the spool (replaying what an earlier run left in it) and starts draining. */
  async start(): Promise<void> {
    this.spool = await Spool.open(this.options.spoolDir, this.options.spoolFileBytes);
    if (this.spool.hasPending) {
      this.log.info({ spoolBytes: this.spool.bytes, files: this.spool.sealedFiles().length }, 'replaying access events spooled by an earlier run');
    }
    this.draining = this.drainLoop();
  }

  record(event: AccessEvent): void {
    this.counts.queued++;
    let row: EncodedAccessEvent;
    try {
      row = encodeAccessEvent(event);
    } catch (err) {
      this.reject({ event }, (err as Error).message, event?.id);
      return;
    }
    this.enqueue(row);
  }

  /** Records an event already encoded (by the proxy's thread, see AccessLogThread). */
  recordEncoded(row: EncodedAccessEvent): void {
    this.counts.queued++;
    this.enqueue(row);
  }

  private enqueue(row: EncodedAccessEvent): void {
    // After close() nothing drains the queue: the spool keeps the event for the next start.
    if (this.queue.length < this.queueCap && !this.closed) {
      this.queue.push(row);
      if (this.queue.length === this.batchSize) this.wake();
    } else {
      this.spoolRows([row]); // counts the event as dropped if the disk fails
    }
  }

  counters(): Readonly<AccessLogCounters> {
    return { ...this.counts };
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  get spoolBytes(): number {
    return this.spool?.bytes ?? 0;
  }

  get isPostgresUp(): boolean {
    return this.postgresUp;
  }

  status(): AccessLogStatus {
    return { counters: this.counters(), queueDepth: this.queueDepth, spoolBytes: this.spoolBytes, postgresUp: this.postgresUp };
  }

  /** Writes everything queued to Postgres, or to the spool if Postgres cannot take it, and stops. */
  close(): Promise<void> {
    this.closingDone ??= this.shutDown();
    return this.closingDone;
  }

  private async shutDown(): Promise<void> {
    this.closing = true;
    this.wake();
    await this.draining;
    if (this.postgresUp) await this.writeQueued();
    this.closed = true;
    if (this.queue.length) this.spoolRows(this.take(this.queue.length));
    await this.spool?.close();
    this.log.info({ ...this.counts, spoolBytes: this.spoolBytes }, 'access log writer closed');
  }

  private async drainLoop(): Promise<void> {
    while (!this.closing) {
      await this.nap();
      if (this.closing) break;
      try {
        await this.drainOnce();
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'access log drain failed');
      }
    }
  }

  private async drainOnce(): Promise<void> {
    if (!this.postgresUp && Date.now() >= this.nextRetryAt) await this.probe();
    if (this.postgresUp && (await this.writeQueued()) && this.spool!.hasPending) await this.replaySpool();
    if (!this.postgresUp && this.queue.length) this.spoolRows(this.take(this.queue.length));
    if (this.spoolNeedsSync) await this.syncSpool();
  }

  private nap(): Promise<void> {
    if (this.queue.length >= this.batchSize) return Promise.resolve();
    let ms = this.flushIntervalMs;
    if (this.postgresUp && this.spool!.hasPending) ms = 0;
    else if (!this.postgresUp) ms = Math.max(0, Math.min(ms, this.nextRetryAt - Date.now()));
    return new Promise((resolve) => {
      this.wakeUp = resolve;
      this.napTimer = setTimeout(resolve, ms);
    });
  }

  private wake(): void {
    clearTimeout(this.napTimer);
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  private take(n: number): EncodedAccessEvent[] {
    if (n >= this.queue.length) {
      const all = this.queue;
      this.queue = [];
      return all;
    }
    return this.queue.splice(0, n);
  }

  private markDown(err: unknown): void {
    this.retryDelayMs = this.retryDelayMs ? Math.min(this.retryDelayMs * 2, this.retryMaxMs) : this.retryMinMs;
    this.nextRetryAt = Date.now() + this.retryDelayMs;
    if (this.postgresUp) {
      this.log.warn({ err: (err as Error).message }, 'access log: Postgres unavailable, spooling events');
    }
    this.postgresUp = false;
  }

  private async probe(): Promise<void> {
    try {
      await this.sink.ping();
      this.postgresUp = true;
      this.retryDelayMs = 0;
      this.log.info({ spoolBytes: this.spoolBytes }, 'access log: Postgres is back, replaying the spool');
    } catch (err) {
      this.markDown(err);
    }
  }

  /** Writes queued events, several batches at a time; on failure spools the failed batches and returns false. */
  private async writeQueued(): Promise<boolean> {
    while (this.queue.length) {
      const batches: PendingRow[][] = [];
      while (this.queue.length && batches.length < this.writeConcurrency) batches.push(this.take(this.batchSize));
      const results = await Promise.allSettled(batches.map((rows) => this.writeRows(rows)));
      let allWritten = true;
      results.forEach((result, i) => {
        if (result.status === 'fulfilled') return;
        if (allWritten) this.markDown(result.reason);
        allWritten = false;
        this.spoolRows(batches[i]);
      });
      if (!allWritten) return false;
    }
    return true;
  }

  /**
   * Writes rows; where Postgres refuses the data itself, halves the batch until
   * the refused rows are found and set aside. Throws when Postgres is unavailable.
   */
  private async writeRows(rows: PendingRow[]): Promise<void> {
    if (!rows.length) return;
    try {
      const groups = new Set<number>();
      const days = new Set<string>();
      for (const r of rows) {
        groups.add(r.groupId);
        days.add(r.day);
      }
      await this.groupSchools.load(groups);
      const pieces: string[] = [];
      let piece = '';
      for (const r of rows) {
        const row = this.groupSchools.copyText(r.groupId) + r.line;
        if (piece !== '' && piece.length + row.length > COPY_BUFFER_CHARS) {
          pieces.push(piece);
          piece = '';
        }
        piece += row;
      }
      if (piece !== '') pieces.push(piece);
      // Only replayed rows can already be in access_log.
      const kind = rows.some((r) => r.origin) ? 'again' : 'first';
      const inserted = await this.sink.write(pieces, days, kind);
      this.counts.written += inserted;
      this.counts.duplicates += rows.length - inserted;
      for (const r of rows) if (r.origin) this.counts.replayed++;
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (rows.length === 1) {
        this.setAsideRefused(rows[0], (err as Error).message);
        return;
      }
      const half = Math.ceil(rows.length / 2);
      await this.writeRows(rows.slice(0, half));
      await this.writeRows(rows.slice(half));
    }
  }

  private setAsideRefused(row: PendingRow, reason: string): void {
    if (row.origin) {
      this.setAsideSpoolLine(row.origin, `Postgres refused it: ${reason}`);
      this.counts.rejected++;
    } else {
      const line = encodedToSpoolLine(row);
      this.reject({ row: line }, `Postgres refused it: ${reason}`, line.slice(0, line.indexOf('\t')));
    }
  }

  /** Keeps what could not be written (the event, or its COPY row) in rejected.jsonl with the reason. */
  private reject(kept: { event: AccessEvent } | { row: string }, reason: string, eventId: unknown): void {
    this.counts.rejected++;
    try {
      this.spool!.rejectSync(reason, kept);
      this.log.error({ reason, eventId, file: 'rejected.jsonl' }, 'access event rejected, kept in the spool folder');
    } catch (err) {
      this.counts.dropped++;
      this.log.error({ reason, err: (err as Error).message, kept: inspect(kept) }, 'access event rejected and could not be kept');
    }
  }

  /** Appends rows to the spool (durable at the next syncSpool). */
  private spoolRows(rows: EncodedAccessEvent[]): void {
    if (!rows.length) return;
    let lines = '';
    for (const row of rows) lines += encodedToSpoolLine(row);
    try {
      this.spool!.appendSync(lines);
      this.counts.spooled += rows.length;
      this.spoolNeedsSync = true;
    } catch (err) {
      this.counts.dropped += rows.length;
      this.log.error({ err: (err as Error).message, events: rows.length }, 'access events lost: the spool could not be written');
    }
  }

  private async syncSpool(): Promise<void> {
    this.spoolNeedsSync = false;
    try {
      await this.spool!.sync();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'access log spool could not be made durable');
    }
  }

  /** Replays sealed spool files oldest first, writing live batches in between; stops on failure or close. */
  private async replaySpool(): Promise<void> {
    const spool = this.spool!;
    spool.sealCurrent();
    await this.syncSpool();
    for (const file of [...spool.sealedFiles()]) {
      if (!(await this.replayFile(file))) return;
      await spool.remove(file);
      this.replayProgress.delete(file);
      this.log.info({ file, spoolBytes: spool.bytes }, 'access log spool file replayed and removed');
    }
  }

  /** Replays one file from where an earlier attempt stopped; false when Postgres failed or the writer is closing. */
  private async replayFile(file: string): Promise<boolean> {
    const progress = this.replayProgress.get(file) ?? { offset: 0, line: 0, setAsideThrough: 0 };
    this.replayProgress.set(file, progress);
    let batch: PendingRow[] = [];
    const flush = async (): Promise<boolean> => {
      const rows = batch;
      batch = [];
      try {
        await this.writeRows(rows);
      } catch (err) {
        this.markDown(err);
        return false;
      }
      const last = rows.at(-1)?.origin;
      if (last) Object.assign(progress, { offset: last.end, line: last.line });
      return true;
    };
    for await (const lines of this.spool!.readLines(file, progress.offset, progress.line)) {
      for (const line of lines) {
        let row: EncodedAccessEvent;
        try {
          const text = line.bytes.toString('utf8');
          // A JSON event is a line from an earlier version's spool.
          row = text.startsWith('{') ? encodeAccessEvent(eventFromJsonLine(text)) : encodedFromSpoolLine(text);
        } catch (err) {
          // A line set aside before a failed batch is met again when the file is re-read.
          if (line.offset >= progress.setAsideThrough) {
            this.counts.badSpoolLines++;
            this.setAsideSpoolLine(line, (err as Error).message);
            progress.setAsideThrough = line.end;
          }
          continue;
        }
        batch.push({ line: row.line, groupId: row.groupId, day: row.day, origin: line });
        if (batch.length < this.batchSize) continue;
        // Live events keep flowing while a long spool is replayed.
        if (!(await flush()) || this.closing || !(await this.writeQueued())) return false;
      }
    }
    return flush();
  }

  private setAsideSpoolLine(origin: SpoolLine, reason: string): void {
    try {
      this.spool!.setAsideSync(origin.file, origin.bytes);
      this.log.error(
        { file: origin.file, line: origin.line, byteOffset: origin.offset, reason, keptIn: `${origin.file}.bad` },
        'access log spool line cannot be replayed; set aside',
      );
    } catch (err) {
      this.counts.dropped++;
      this.log.error(
        { file: origin.file, line: origin.line, byteOffset: origin.offset, reason, err: (err as Error).message },
        'access log spool line lost',
      );
    }
  }
}
