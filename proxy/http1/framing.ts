// Where an HTTP/1.x message body ends (RFC 9112 §6), and the chunked coding.
// A request whose framing is ambiguous (Transfer-Encoding with
// Content-Length, differing Content-Lengths, a coding other than chunked) is
// refused rather than guessed at: the origin might guess differently, and the
// bytes it reads as a second request would then never have been checked.
import type { Writable } from 'node:stream';
import { fieldValues, tokensOf, trimOptionalWhitespace, type HeaderFields, type RequestHead, type ResponseHead } from './head.js';

export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  /** The body runs until the sender closes the connection (responses only). */
  | { kind: 'close' };

export type FramingResult = { ok: true; framing: BodyFraming } | { ok: false; status: 400 | 501 | 502; reason: string };

const NO_BODY: BodyFraming = { kind: 'none' };
const CHUNKED: BodyFraming = { kind: 'chunked' };
const UNTIL_CLOSE: BodyFraming = { kind: 'close' };
// 15 digits stay within Number.MAX_SAFE_INTEGER.
const CONTENT_LENGTH = /^\d{1,15}$/;

/** The one length every Content-Length value states; 'absent', or 'invalid' when they are not one number. */
function contentLength(fields: HeaderFields): number | 'absent' | 'invalid' {
  const values = fieldValues(fields, 'content-length');
  if (values.length === 0) return 'absent';
  let length: number | undefined;
  for (const value of values) {
    for (const part of value.split(',')) {
      const digits = trimOptionalWhitespace(part, 0);
      if (!CONTENT_LENGTH.test(digits)) return 'invalid';
      const n = Number(digits);
      if (length !== undefined && n !== length) return 'invalid';
      length = n;
    }
  }
  return length ?? 'invalid';
}

export function requestFraming(head: RequestHead): FramingResult {
  const transferEncoding = fieldValues(head, 'transfer-encoding');
  const length = contentLength(head);
  if (transferEncoding.length > 0) {
    const codings = tokensOf(transferEncoding);
    if (head.minorVersion === 0) return { ok: false, status: 400, reason: 'an HTTP/1.0 request cannot use Transfer-Encoding' };
    if (length !== 'absent') return { ok: false, status: 400, reason: 'the request has both Transfer-Encoding and Content-Length' };
    if (codings.length !== 1 || codings[0] !== 'chunked') {
      return { ok: false, status: 501, reason: `the request's Transfer-Encoding "${codings.join(', ')}" is not supported` };
    }
    return { ok: true, framing: CHUNKED };
  }
  if (length === 'invalid') return { ok: false, status: 400, reason: 'the request has an invalid Content-Length' };
  if (length === 'absent' || length === 0) return { ok: true, framing: NO_BODY };
  return { ok: true, framing: { kind: 'length', length } };
}

/** The framing of a response to a request made with `requestMethod`. */
export function responseFraming(head: ResponseHead, requestMethod: string): FramingResult {
  if (requestMethod === 'HEAD' || head.status < 200 || head.status === 204 || head.status === 304) {
    return { ok: true, framing: NO_BODY };
  }
  const transferEncoding = fieldValues(head, 'transfer-encoding');
  if (transferEncoding.length > 0) {
    // Other codings would have to be passed on, hop-by-hop header and all, undecoded; servers do not send them.
    const codings = tokensOf(transferEncoding);
    if (head.minorVersion === 1 && codings.length === 1 && codings[0] === 'chunked') return { ok: true, framing: CHUNKED };
    return { ok: false, status: 502, reason: `the response's Transfer-Encoding "${codings.join(', ')}" cannot be relayed` };
  }
  const length = contentLength(head);
  if (length === 'invalid') return { ok: false, status: 502, reason: 'the response has an invalid Content-Length' };
  if (length === 'absent') return { ok: true, framing: UNTIL_CLOSE };
  return { ok: true, framing: length === 0 ? NO_BODY : { kind: 'length', length } };
}

export class ChunkedCodingError extends Error {}

const enum State {
  SizeStart,
  Size,
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerLineStart,
  TrailerLine,
  TrailerLf,
  EndLf,
  Done,
}

const CR = 0x0d;
const LF = 0x0a;
const MAX_SIZE_DIGITS = 12;
const MAX_EXTENSION_BYTES = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** Visible ASCII, space, tab, obs-text: what a chunk extension or a trailer line may hold. */
function isFieldByte(byte: number): boolean {
  return byte === 0x09 || (byte >= 0x20 && byte !== 0x7f);
}

/**
 * Decodes a chunked body as it arrives, in pieces split anywhere. Chunk
 * extensions and trailer fields are read and dropped (RFC 9112 §7.1.1, §7.1.2).
 */
export class ChunkedDecoder {
  private state = State.SizeStart;
  private size = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;

  /**
   * Reads chunk[start..], handing each run of body bytes to onData. Returns the
   * offset just past the body's end, or -1 when all of it was body so far.
   * Throws ChunkedCodingError on anything but a valid chunked coding.
   */
  decode(chunk: Buffer, start: number, onData: (data: Buffer) => void): number {
    let i = start;
    const end = chunk.length;
    while (i < end) {
      const byte = chunk[i];
      switch (this.state) {
        case State.SizeStart:
        case State.Size: {
          const digit = hexValue(byte);
          if (digit !== -1) {
            if (++this.digits > MAX_SIZE_DIGITS) throw new ChunkedCodingError('a chunk size is too large');
            this.size = this.size * 16 + digit;
            this.state = State.Size;
          } else if (this.state === State.Size && (byte === 0x3b || byte === 0x20 || byte === 0x09)) {
            this.state = State.Extension;
            this.lineBytes = 0;
          } else if (this.state === State.Size && byte === CR) {
            this.state = State.SizeLf;
          } else {
            throw new ChunkedCodingError('a chunk size is not a hexadecimal number');
          }
          i++;
          break;
        }
        case State.Extension:
          if (byte === CR) this.state = State.SizeLf;
          else if (!isFieldByte(byte) || ++this.lineBytes > MAX_EXTENSION_BYTES) throw new ChunkedCodingError('a chunk extension is not valid');
          i++;
          break;
        case State.SizeLf:
          if (byte !== LF) throw new ChunkedCodingError('a chunk size line does not end in CRLF');
          this.state = this.size === 0 ? State.TrailerLineStart : State.Data;
          i++;
          break;
        case State.Data: {
          const take = Math.min(this.size, end - i);
          onData(chunk.subarray(i, i + take));
          this.size -= take;
          i += take;
          if (this.size === 0) this.state = State.DataCr;
          break;
        }
        case State.DataCr:
          if (byte !== CR) throw new ChunkedCodingError('chunk data is longer than its size');
          this.state = State.DataLf;
          i++;
          break;
        case State.DataLf:
          if (byte !== LF) throw new ChunkedCodingError('chunk data does not end in CRLF');
          this.state = State.SizeStart;
          this.digits = 0;
          i++;
          break;
        case State.TrailerLineStart:
          this.state = byte === CR ? State.EndLf : State.TrailerLine;
          if (byte !== CR && !isFieldByte(byte)) throw new ChunkedCodingError('a trailer line is not valid');
          this.trailerBytes++;
          i++;
          break;
        case State.TrailerLine:
          if (byte === CR) this.state = State.TrailerLf;
          else if (!isFieldByte(byte)) throw new ChunkedCodingError('a trailer line is not valid');
          if (++this.trailerBytes > MAX_TRAILER_BYTES) throw new ChunkedCodingError('the trailer fields are too large');
          i++;
          break;
        case State.TrailerLf:
          if (byte !== LF) throw new ChunkedCodingError('a trailer line does not end in CRLF');
          this.state = State.TrailerLineStart;
          i++;
          break;
        case State.EndLf:
          if (byte !== LF) throw new ChunkedCodingError('the chunked body does not end in CRLF');
          this.state = State.Done;
          return i + 1;
        case State.Done:
          return i;
      }
    }
    return -1;
  }
}

/** Writes `data` as one chunk of the chunked coding, in one write; false when the socket wants a pause. */
export function writeChunk(socket: Writable, data: Buffer): boolean {
  socket.cork();
  socket.write(`${data.length.toString(16)}\r\n`, 'latin1');
  socket.write(data);
  const more = socket.write('\r\n', 'latin1');
  socket.uncork();
  return more;
}

export const LAST_CHUNK = '0\r\n\r\n';
