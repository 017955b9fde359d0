// Reads blocklists in the UT1 layout (<category>/domains, <category>/urls)
// from a folder or a .tar.gz archive, one validated entry at a time. The
// archive is streamed: memory holds one chunk's entries, never the archive.
import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Parser, type ReadEntry } from 'tar';
import { CATEGORY_KEY_PATTERN } from './categories.js';
import { normaliseHost } from './host.js';

export type EntryKind = 'domain' | 'url';

export interface ListEntry {
  category: string;
  kind: EntryKind;
  /** Normalised: a host for domains; host + path prefix for URLs. */
  value: string;
  /** Path of the list file inside the source, e.g. `gambling/domains`. */
  file: string;
  /** 1-based line number in that file. */
  line: number;
}

/** A line or a category folder that is not valid UT1 content. */
export class ListFormatError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    reason: string,
  ) {
    super(line === undefined ? `${file}: ${reason}` : `${file} line ${line}: ${reason}`);
    this.name = 'ListFormatError';
  }
}

/** The source as a whole cannot be read: missing, empty, or a corrupt archive. */
export class ListSourceError extends Error {
  constructor(
    readonly source: string,
    reason: string,
  ) {
    super(`${source}: ${reason}`);
    this.name = 'ListSourceError';
  }
}

export interface ReadListener {
  onBytesRead?(bytesRead: number, bytesTotal: number): void;
  /** Called for each list file before its entries: an empty file still marks its category as present. */
  onListFile?(list: ListFile): void;
}

const LIST_FILES: Record<string, EntryKind> = { domains: 'domain', urls: 'url' };
const TAR_FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
// A list line is a host and perhaps a path; anything this long is not a list.
const MAX_LINE_BYTES = 64 * 1024;
// How deep a folder source may nest its category folders (upstream: blacklists/<category>).
const MAX_FOLDER_DEPTH = 4;

/**
 * Yields every entry of the UT1 lists at `source` (a folder or a .tar.gz).
 * Throws ListFormatError for a malformed line or folder name, ListSourceError
 * when the source is missing, corrupt or holds no categories.
 */
export async function* readUt1(source: string, listener: ReadListener = {}): AsyncGenerator<ListEntry> {
  const info = await stat(source).catch(() => undefined);
  if (!info) throw new ListSourceError(source, 'no such file or folder');
  let listFiles = 0;
  const counting: ReadListener = {
    onBytesRead: listener.onBytesRead,
    onListFile(list) {
      listFiles++;
      listener.onListFile?.(list);
    },
  };
  yield* info.isDirectory() ? readFolder(source, counting) : readArchive(source, info.size, counting);
  if (listFiles === 0) {
    throw new ListSourceError(source, 'holds no UT1 categories (no <category>/domains or <category>/urls file)');
  }
}

export interface ListFile {
  category: string;
  kind: EntryKind;
  /** For messages: the file's path inside the source. */
  file: string;
}

/** Which list a file path belongs to, or undefined for files that are not lists (usage, README...). */
function listFileFor(parts: string[]): ListFile | undefined {
  const kind = LIST_FILES[parts[parts.length - 1]];
  if (kind === undefined) return undefined;
  const file = parts.join('/');
  if (parts.length < 2) throw new ListFormatError(file, undefined, 'a list file must sit in a category folder');
  const category = parts[parts.length - 2];
  if (!CATEGORY_KEY_PATTERN.test(category)) {
    throw new ListFormatError(
      file,
      undefined,
      `folder ${quote(category)} is not a valid category name (a-z, 0-9, "_" and "-", at most 64 characters)`,
    );
  }
  return { category, kind, file };
}

async function* readFolder(root: string, listener: ReadListener): AsyncGenerator<ListEntry> {
  const files = await findListFiles(root);
  const sizes = await Promise.all(files.map(async (f) => (await stat(f.fullPath)).size));
  const bytesTotal = sizes.reduce((a, b) => a + b, 0);
  let bytesRead = 0;
  for (const f of files) {
    listener.onListFile?.(f);
    const lines = new ListLineParser(f);
    const pending: ListEntry[] = [];
    for await (const chunk of createReadStream(f.fullPath, { highWaterMark: 256 * 1024 })) {
      lines.push(chunk as Buffer, pending);
      bytesRead += (chunk as Buffer).length;
      listener.onBytesRead?.(bytesRead, bytesTotal);
      yield* pending;
      pending.length = 0;
    }
    lines.end(pending);
    yield* pending;
  }
}

/** List files under `root` in name order; symbolic links (UT1's category aliases) are skipped. */
async function findListFiles(root: string): Promise<Array<ListFile & { fullPath: string }>> {
  const found: Array<ListFile & { fullPath: string }> = [];
  // Paths are shown relative to the folder that holds `root`'s categories, so a
  // single category folder given as the source still reads as <category>/<file>.
  const walk = async (dir: string, parts: string[], depth: number): Promise<void> => {
    const children = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const child of children) {
      if (child.isFile()) {
        const list = listFileFor([...parts, child.name]);
        if (list) found.push({ ...list, fullPath: path.join(dir, child.name) });
      } else if (child.isDirectory() && depth < MAX_FOLDER_DEPTH) {
        await walk(path.join(dir, child.name), [...parts, child.name], depth + 1);
      }
    }
  };
  const rootHoldsLists = (await readdir(root)).some((name) => name in LIST_FILES);
  await walk(root, rootHoldsLists ? [path.basename(path.resolve(root))] : [], 0);
  return found;
}

async function* readArchive(
  file: string,
  bytesTotal: number,
  listener: ReadListener,
): AsyncGenerator<ListEntry> {
  // The parser is synchronous: each chunk written produces its entries at once,
  // so they are handed on before the next chunk is read.
  const pending: ListEntry[] = [];
  let failure: Error | undefined;
  let ended = false;
  const parser = new Parser({ strict: true });
  const finished = new Promise<void>((resolve) => {
    parser.on('end', () => {
      ended = true;
      resolve();
    });
    parser.on('error', (err: Error) => {
      failure ??= new ListSourceError(file, `the archive is corrupt or truncated (${err.message})`);
      resolve();
    });
  });
  parser.on('entry', (entry: ReadEntry) => {
    let list: ListFile | undefined;
    try {
      list = TAR_FILE_TYPES.has(entry.type) ? listFileFor(entry.path.split('/').filter((p) => p !== '' && p !== '.')) : undefined;
    } catch (err) {
      failure ??= err as Error;
    }
    if (!list || failure) {
      entry.resume();
      return;
    }
    listener.onListFile?.(list);
    const lines = new ListLineParser(list);
    entry.on('data', (chunk: Buffer) => {
      if (failure) return;
      try {
        lines.push(chunk, pending);
      } catch (err) {
        failure = err as Error;
      }
    });
    entry.on('end', () => {
      if (failure) return;
      try {
        lines.end(pending);
      } catch (err) {
        failure = err as Error;
      }
    });
  });

  const input = createReadStream(file, { highWaterMark: 256 * 1024 });
  let bytesRead = 0;
  try {
    for await (const chunk of input) {
      parser.write(chunk as Buffer);
      bytesRead += (chunk as Buffer).length;
      listener.onBytesRead?.(bytesRead, bytesTotal);
      if (failure) throw failure;
      yield* pending;
      pending.length = 0;
    }
    parser.end();
    if (!ended && !failure) await finished;
    if (failure) throw failure;
    yield* pending;
  } catch (err) {
    // The parser throws some errors from write()/end() rather than emitting them.
    if (err instanceof ListFormatError || err instanceof ListSourceError) throw err;
    throw new ListSourceError(file, `the archive is corrupt or truncated (${(err as Error).message})`);
  } finally {
    input.destroy();
  }
}

/** Splits one list file's bytes into lines and each line into a validated entry. */
class ListLineParser {
  private partial: Buffer | undefined;
  private lineNumber = 0;

  constructor(private readonly list: ListFile) {}

  push(chunk: Buffer, out: ListEntry[]): void {
    let start = 0;
    if (this.partial) {
      const newline = chunk.indexOf(0x0a);
      if (newline === -1) {
        this.partial = Buffer.concat([this.partial, chunk]);
        this.checkLength(this.partial.length);
        return;
      }
      this.line(Buffer.concat([this.partial, chunk.subarray(0, newline)]), out);
      this.partial = undefined;
      start = newline + 1;
    }
    for (let newline = chunk.indexOf(0x0a, start); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      this.line(chunk.subarray(start, newline), out);
      start = newline + 1;
    }
    if (start < chunk.length) {
      this.partial = chunk.subarray(start);
      this.checkLength(this.partial.length);
    }
  }

  end(out: ListEntry[]): void {
    if (this.partial) this.line(this.partial, out);
    this.partial = undefined;
  }

  private checkLength(length: number): void {
    if (length > MAX_LINE_BYTES) this.fail(this.lineNumber + 1, `line is longer than ${MAX_LINE_BYTES} bytes`);
  }

  private line(bytes: Buffer, out: ListEntry[]): void {
    const lineNumber = ++this.lineNumber;
    this.checkLength(bytes.length);
    if (!isUtf8(bytes)) this.fail(lineNumber, 'is not valid UTF-8 text');
    let text = bytes.toString('utf8');
    if (lineNumber === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    text = text.trim(); // also drops the \r of CRLF files
    if (text === '' || text.startsWith('#')) return;
    const value = this.list.kind === 'domain' ? this.domain(text, lineNumber) : this.url(text, lineNumber);
    out.push({ category: this.list.category, kind: this.list.kind, value, file: this.list.file, line: lineNumber });
  }

  private domain(text: string, lineNumber: number): string {
    this.rejectSpaces(text, lineNumber);
    // A leading dot ("covers subdomains" in some list formats) means what a UT1 domain means anyway.
    const host = normaliseHost(text.startsWith('.') ? text.slice(1) : text);
    if (host === undefined) this.fail(lineNumber, `${quote(text)} is not a valid domain`);
    return host;
  }

  private url(text: string, lineNumber: number): string {
    this.rejectSpaces(text, lineNumber);
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
      this.fail(lineNumber, `${quote(text)} has a scheme; UT1 URL entries are host/path, without http://`);
    }
    const slash = text.indexOf('/');
    if (slash === -1) this.fail(lineNumber, `${quote(text)} is not a URL: it has no path (a host on its own belongs in domains)`);
    const host = normaliseHost(text.slice(0, slash));
    if (host === undefined) this.fail(lineNumber, `${quote(text)} is not a valid URL: ${quote(text.slice(0, slash))} is not a valid host`);
    return host + text.slice(slash);
  }

  private rejectSpaces(text: string, lineNumber: number): void {
    if (/[\s\x00-\x1f\x7f]/.test(text)) this.fail(lineNumber, `${quote(text)} contains a space or control character`);
  }

  private fail(lineNumber: number, reason: string): never {
    throw new ListFormatError(this.list.file, lineNumber, reason);
  }
}

function quote(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}
