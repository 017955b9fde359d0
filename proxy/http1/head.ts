// HTTP/1.x message heads (RFC 9112 §2–5), read strictly: a proxy that is
// more lenient than the servers behind it is how requests get smuggled. Lines
// end in CRLF (a bare CR or LF is refused), header names are tokens with the
// colon straight after them, values hold no control characters, and obsolete
// line folding is refused. Bytes are read as latin1, so that a value holding
// obs-text is written on unchanged.

/** Header fields in the order received; names as sent and in lower case. */
export interface HeaderFields {
  names: string[];
  lowerNames: string[];
  values: string[];
}

export interface RequestHead extends HeaderFields {
  method: string;
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minorVersion: 0 | 1;
}

export interface ResponseHead extends HeaderFields {
  status: number;
  reason: string;
  minorVersion: 0 | 1;
}

export type HeadParse<T> = { ok: true; head: T } | { ok: false; reason: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible ASCII, space, tab and obs-text; nothing else (RFC 9110 §5.5).
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
// The same, for a whole head at once (line ends included); and a CR or LF that is not part of a CRLF.
const INVALID_HEAD_CHAR = /[^\t\r\n\x20-\x7e\x80-\xff]/;
const STRAY_LINE_END = /\r(?!\n)|(?<!\r)\n/;
// A request target: visible characters only (RFC 9112 §3.2); obs-text is let through as
// browsers and Node's own parser do, and the target parser normalises it.
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) HTTP\/1\.([01])$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const CRLF_CRLF = Buffer.from('\r\n\r\n');

function failure(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}

/**
 * Where the head that starts at `start` ends: the offset just past its blank
 * line, or -1 when it is not complete yet.
 */
export function findHeadEnd(buffer: Buffer, start: number): number {
  const at = buffer.indexOf(CRLF_CRLF, start);
  return at === -1 ? -1 : at + 4;
}

/**
 * Whether buffer[start..] holds a line feed without a carriage return before it:
 * a head that will never be valid, so there is no waiting for its end.
 */
export function hasBareLineFeed(buffer: Buffer, start: number): boolean {
  for (let at = buffer.indexOf(0x0a, start); at !== -1; at = buffer.indexOf(0x0a, at + 1)) {
    if (at === start || buffer[at - 1] !== 0x0d) return true;
  }
  return false;
}

/** The head's lines, or a failure when any line ends other than in CRLF. */
function splitLines(buffer: Buffer, start: number, end: number): { lines: string[]; clean: boolean } | undefined {
  // The head ends at the blank line; its final CRLF CRLF is not part of any line.
  const text = buffer.toString('latin1', start, end - 4);
  if (STRAY_LINE_END.test(text)) return undefined;
  // One scan of the whole head; only a head that fails it is checked line by line, for the message.
  return { lines: text.split('\r\n'), clean: !INVALID_HEAD_CHAR.test(text) };
}

// Header names repeat from request to request: their lower case is looked up, not recomputed.
const lowerCaseNames = new Map<string, string>();
const MAX_REMEMBERED_NAMES = 512;

function lowerCase(name: string): string {
  let lower = lowerCaseNames.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (lowerCaseNames.size < MAX_REMEMBERED_NAMES) lowerCaseNames.set(name, lower);
  }
  return lower;
}

/** line[from..] without the spaces and tabs around it (not String.trim(): 0xA0 is obs-text here). */
export function trimOptionalWhitespace(line: string, from: number): string {
  let start = from;
  let end = line.length;
  while (start < end && (line.charCodeAt(start) === 0x20 || line.charCodeAt(start) === 0x09)) start++;
  while (end > start && (line.charCodeAt(end - 1) === 0x20 || line.charCodeAt(end - 1) === 0x09)) end--;
  return line.slice(start, end);
}

/** Reads lines[1..] into `into`; `clean`: no line holds a control character, so values need no check. */
function parseFields(lines: string[], clean: boolean, into: HeaderFields): string | undefined {
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) {
      return line.startsWith(' ') || line.startsWith('\t') ? 'obsolete line folding is not accepted' : 'a header line has no name';
    }
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return `the header name "${name.slice(0, 64)}" is not valid`;
    const value = trimOptionalWhitespace(line, colon + 1);
    if (!clean && INVALID_VALUE_CHAR.test(value)) return `the ${name.slice(0, 64)} header holds a control character`;
    into.names.push(name);
    into.lowerNames.push(lowerCase(name));
    into.values.push(value);
  }
  return undefined;
}

/** Parses the request head in buffer[start, end), `end` being what findHeadEnd returned. */
export function parseRequestHead(buffer: Buffer, start: number, end: number): HeadParse<RequestHead> {
  return parseHead(buffer, start, end, 'request', readRequestLine);
}

/** Parses the response head in buffer[start, end), `end` being what findHeadEnd returned. */
export function parseResponseHead(buffer: Buffer, start: number, end: number): HeadParse<ResponseHead> {
  return parseHead(buffer, start, end, 'response', readStatusLine);
}

/** A head with no fields yet, from its first line; or why that line is not one. */
type StartLineReader<H extends HeaderFields> = (line: string) => H | string;

function readRequestLine(line: string): RequestHead | string {
  const match = REQUEST_LINE.exec(line);
  if (match === null) return 'the request line is not "METHOD target HTTP/1.x"';
  return { method: match[1], target: match[2], minorVersion: match[3] === '1' ? 1 : 0, names: [], lowerNames: [], values: [] };
}

function readStatusLine(line: string): ResponseHead | string {
  const match = STATUS_LINE.exec(line);
  if (match === null) return 'the status line is not "HTTP/1.x status reason"';
  return { status: Number(match[2]), reason: match[3] ?? '', minorVersion: match[1] === '1' ? 1 : 0, names: [], lowerNames: [], values: [] };
}

function parseHead<H extends HeaderFields>(
  buffer: Buffer, start: number, end: number, what: 'request' | 'response', readStartLine: StartLineReader<H>,
): HeadParse<H> {
  const split = splitLines(buffer, start, end);
  if (split === undefined) return failure(`a line of the ${what} does not end in CRLF`);
  const head = readStartLine(split.lines[0]);
  if (typeof head === 'string') return failure(head);
  const bad = parseFields(split.lines, split.clean, head);
  return bad === undefined ? { ok: true, head } : failure(bad);
}

/** Every value of the named header (lower case), in order; empty when absent. */
export function fieldValues(fields: HeaderFields, lowerName: string): string[] {
  const found: string[] = [];
  for (let i = 0; i < fields.lowerNames.length; i++) {
    if (fields.lowerNames[i] === lowerName) found.push(fields.values[i]);
  }
  return found;
}

/** The first value of the named header (lower case), if any. */
export function fieldValue(fields: HeaderFields, lowerName: string): string | undefined {
  const at = fields.lowerNames.indexOf(lowerName);
  return at === -1 ? undefined : fields.values[at];
}

/** The comma-separated tokens of every value of the named header, trimmed and in lower case. */
export function fieldTokens(fields: HeaderFields, lowerName: string): string[] {
  return tokensOf(fieldValues(fields, lowerName));
}

/** The comma-separated tokens of `values`, trimmed and in lower case. */
export function tokensOf(values: readonly string[]): string[] {
  const tokens: string[] = [];
  for (const value of values) {
    for (const token of value.split(',')) {
      const trimmed = trimOptionalWhitespace(token, 0).toLowerCase();
      if (trimmed !== '') tokens.push(trimmed);
    }
  }
  return tokens;
}
