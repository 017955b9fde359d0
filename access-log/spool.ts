// The local spool: where access events wait while Postgres cannot take them.
//
// Append-only files of lines (spool-NNNNNNNNNNNN.jsonl: COPY rows, or JSON
// events as earlier versions wrote them; the writer reads both) in one folder,
// used by one writer at a time (spool.lock holds its pid). Appends are
// synchronous writes to the page cache, so they keep program order and never
// hold events in memory; sync() makes them durable (fdatasync) in batches.
// A file is rotated when it reaches maxFileBytes, and sealed (no longer
// appended to) before it is replayed; a replayed file is removed.
import { appendFileSync, close, existsSync, fdatasync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const fdatasyncAsync = promisify(fdatasync);
const closeAsync = promisify(close);

const DATA_FILE = /^spool-(\d{12})\.jsonl$/;
const READ_CHUNK_BYTES = 1 << 20;

export interface SpoolLine {
  file: string;
  /** The line's bytes, without its newline. */
  bytes: Buffer;
  /** 1-based line number in its file. */
  line: number;
  /** Byte offset of the line's first byte. */
  offset: number;
  /** Byte offset just past the line (and its newline). */
  end: number;
}

interface OpenFile {
  name: string;
  fd: number;
  bytes: number;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes spool.lock for this process, taking over a lock left by a process that has gone. */
function takeLock(lockPath: string): void {
  try {
    writeFileSync(lockPath, String(process.pid), { flag: 'wx' });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const holder = Number(readFileSync(lockPath, 'utf8').trim());
  if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
    throw new Error(`spool folder ${path.dirname(lockPath)} is in use by process ${holder}; give each writer its own`);
  }
  writeFileSync(lockPath, String(process.pid));
}

export class Spool {
  private current: OpenFile | null = null;
  /** Rotated or sealed files whose data still needs fdatasync before their descriptor is closed. */
  private unsynced: OpenFile[] = [];
  private readonly sealed: string[];
  private nextSeq: number;
  private totalBytes: number;
  private syncing: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly maxFileBytes: number,
    leftovers: { name: string; bytes: number }[],
  ) {
    this.sealed = leftovers.map((f) => f.name);
    this.totalBytes = leftovers.reduce((sum, f) => sum + f.bytes, 0);
    const last = leftovers.at(-1);
    this.nextSeq = last ? Number(DATA_FILE.exec(last.name)![1]) + 1 : 1;
  }

  /** Opens (creating) the spool folder; files left by an earlier run are sealed, ready for replay. */
  static async open(dir: string, maxFileBytes = 64 * 1024 * 1024): Promise<Spool> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    takeLock(path.join(dir, 'spool.lock'));
    const names = (await readdir(dir)).filter((n) => DATA_FILE.test(n)).sort();
    const leftovers = await Promise.all(names.map(async (name) => ({ name, bytes: (await stat(path.join(dir, name))).size })));
    return new Spool(dir, maxFileBytes, leftovers);
  }

  /** Bytes in spool files not yet replayed. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** True while some appended line has not yet been replayed. */
  get hasPending(): boolean {
    return this.sealed.length > 0 || (this.current !== null && this.current.bytes > 0);
  }

  /** Appends whole lines to the current file. Throws only when the disk does. */
  appendSync(lines: string): void {
    const data = Buffer.from(lines, 'utf8');
    if (!this.current) {
      const name = `spool-${String(this.nextSeq++).padStart(12, '0')}.jsonl`;
      this.current = { name, fd: openSync(path.join(this.dir, name), 'a', 0o600), bytes: 0 };
    }
    const file = this.current;
    let written = 0;
    try {
      while (written < data.length) written += writeSync(file.fd, data, written);
    } finally {
      // Count what reached the file even when the disk fails: a cut-short line is set aside at replay.
      file.bytes += written;
      this.totalBytes += written;
    }
    if (file.bytes >= this.maxFileBytes) this.sealCurrent();
  }

  /** Stops appending to the current file, so that it can be replayed. */
  sealCurrent(): void {
    if (!this.current) return;
    this.unsynced.push(this.current);
    this.sealed.push(this.current.name);
    this.current = null;
  }

  /** Sealed files, oldest first. */
  sealedFiles(): readonly string[] {
    return this.sealed;
  }

  /** Makes every append so far durable. */
  sync(): Promise<void> {
    this.syncing = this.syncing.then(async () => {
      const rotated = this.unsynced.splice(0);
      for (const file of rotated) {
        await fdatasyncAsync(file.fd);
        await closeAsync(file.fd);
      }
      if (this.current) await fdatasyncAsync(this.current.fd);
    });
    return this.syncing;
  }

  /** Reads a sealed file's lines from `offset` (line number `line` + 1 onwards), in chunks. */
  async *readLines(name: string, offset = 0, line = 0): AsyncGenerator<SpoolLine[]> {
    const handle = await open(path.join(this.dir, name), 'r');
    try {
      let carry = Buffer.alloc(0);
      let position = offset;
      let carryOffset = offset;
      for (;;) {
        const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
        const { bytesRead } = await handle.read(chunk, 0, READ_CHUNK_BYTES, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const data = carry.length ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
        const lines: SpoolLine[] = [];
        let start = 0;
        for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
          lines.push({ file: name, bytes: data.subarray(start, nl), line: ++line, offset: carryOffset + start, end: carryOffset + nl + 1 });
          start = nl + 1;
        }
        carry = Buffer.from(data.subarray(start));
        carryOffset += start;
        if (lines.length) yield lines;
      }
      // A last line without its newline: the write was cut short.
      if (carry.length) yield [{ file: name, bytes: carry, line: line + 1, offset: carryOffset, end: carryOffset + carry.length }];
    } finally {
      await handle.close();
    }
  }

  /** Keeps a line that cannot be replayed, byte for byte, in `<file>.bad`. */
  setAsideSync(name: string, line: Buffer): void {
    appendFileSync(path.join(this.dir, `${name}.bad`), Buffer.concat([line, Buffer.from('\n')]), { mode: 0o600 });
  }

  /** Keeps what Postgres could never accept (an event, or its COPY row), with the reason, in rejected.jsonl. */
  rejectSync(reason: string, kept: { event: unknown } | { row: string }): void {
    appendFileSync(path.join(this.dir, 'rejected.jsonl'), `${JSON.stringify({ reason, ...kept })}\n`, { mode: 0o600 });
  }

  /** Removes a sealed file once every line in it has been replayed or set aside. */
  async remove(name: string): Promise<void> {
    const index = this.sealed.indexOf(name);
    if (index === -1) throw new Error(`spool file ${name} is not sealed`);
    const { size } = await stat(path.join(this.dir, name));
    await unlink(path.join(this.dir, name));
    this.sealed.splice(index, 1);
    this.totalBytes -= size;
  }

  /** Makes everything durable and releases the folder. Appending after close reopens a file. */
  async close(): Promise<void> {
    this.sealCurrent();
    await this.sync();
    const lockPath = path.join(this.dir, 'spool.lock');
    if (existsSync(lockPath) && readFileSync(lockPath, 'utf8').trim() === String(process.pid)) await unlink(lockPath);
  }
}
