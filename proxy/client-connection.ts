// One client connection to the proxy, spoken as HTTP/1.1 (RFC 9112): request
// heads read strictly (proxy/http1/head.ts), one request at a time, pipelined
// ones held until their turn, bodies framed by Content-Length or chunked, and
// responses written in as few writes as possible. Each request becomes a
// ClientExchange for the proxy to answer; a CONNECT hands the socket over.
//
// This is the proxy's hot path; with node:http's server in its place the
// proxy used 9–19 µs more user CPU per request, in runs a few minutes apart
// (docs/design-notes.md).
import { STATUS_CODES } from 'node:http';
import type net from 'node:net';
import { ChunkedCodingError, ChunkedDecoder, LAST_CHUNK, requestFraming, writeChunk, type BodyFraming } from './http1/framing.js';
import { fieldTokens, fieldValue, findHeadEnd, hasBareLineFeed, parseRequestHead, type RequestHead } from './http1/head.js';
import { PAGE_HEADERS } from './pages.js';

/** How a response body reaches the client: as the server framed it, or of a length not known ahead. */
export type ResponseBody = 'none' | 'length' | 'unknown';

export interface ClientExchange {
  readonly head: RequestHead;
  readonly clientIp: string;
  /** How the request body is framed. */
  readonly body: BodyFraming;
  /** The status sent to the client; 0 before the response has started. */
  readonly status: number;
  /** The client went away, or the connection was cut, before the response was complete. */
  readonly aborted: boolean;
  /** A whole response of the proxy's own, its body sent as UTF-8; `headerLines` each end in CRLF. Returns the body bytes sent. */
  respond(status: number, headerLines: string, body: string): number;
  /** Starts relaying a response; its body follows through writeBody and endResponse. */
  startResponse(status: number, reason: string, headerLines: string, body: ResponseBody): void;
  /** False when the client is slow to read: wait for onDrain before more. */
  writeBody(data: Buffer): boolean;
  onDrain(callback: () => void): void;
  endResponse(): void;
  /** Cuts the connection: a response that cannot be completed. */
  destroy(): void;
  /** Reads the request body (answering Expect: 100-continue first); return false from onData to pause until resumeBody. */
  readBody(onData: (data: Buffer) => boolean, onEnd: () => void, onError: (err: Error) => void): void;
  resumeBody(): void;
  /** Called once if the exchange is aborted (see `aborted`). */
  onAbort(callback: () => void): void;
  /** For CONNECT: the socket, paused, and the bytes that came after the head. The connection stops speaking HTTP. */
  takeSocket(): { socket: net.Socket; head: Buffer };
}

export interface ClientConnectionOptions {
  maxHeaderBytes: number;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  onRequest(exchange: ClientExchange): void;
  onConnect(exchange: ClientExchange): void;
  /** A request that could not be read; the connection answers it and closes. */
  onMalformed(clientIp: string, status: number, reason: string): void;
  /** The page that explains a malformed request. */
  errorPage(title: string, explanation: string): string;
  /** The connection is gone for good (closed, or handed over as a tunnel). */
  onGone(connection: ClientConnection): void;
}

const enum State {
  Head,
  Request,
  Tunnel,
  Closed,
}

// Bytes held for a request whose body nobody reads yet, or pipelined behind the current one.
const MAX_HELD_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);
const NO_REQUEST_BODY = { ok: true, framing: { kind: 'none' } } as const;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

let dateSecond = 0;
let dateText = '';
/** The Date header's value, made once a second. */
export function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/** The head of a response whose whole body, `length` bytes, follows it. */
function wholeResponseHead(status: number, headerLines: string, length: number, keepAlive: boolean): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n${headerLines}Content-Length: ${length}\r\n` +
    `Date: ${httpDate()}\r\nConnection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`
  );
}

function uncorkSocket(socket: net.Socket): void {
  if (socket.writableCorked > 0) socket.uncork();
}

interface BodyReader {
  onData(data: Buffer): boolean;
  onEnd(): void;
  onError(err: Error): void;
}

class Exchange implements ClientExchange {
  status = 0;
  aborted = false;
  /** The response has been completed (or the connection cut). */
  done = false;
  /** Request body bytes not yet handed to the reader. */
  private held: Buffer | null;
  private bodyComplete: boolean;
  private bodyRemaining = 0;
  private decoder: ChunkedDecoder | null = null;
  private reader: BodyReader | null = null;
  private bodyPaused = false;
  private chunkedResponse = false;
  private keepAlive: boolean;
  private abortCallback: (() => void) | null = null;
  private readonly isHead: boolean;

  constructor(
    private readonly connection: ClientConnection,
    readonly head: RequestHead,
    readonly body: BodyFraming,
    readonly clientIp: string,
    rest: Buffer,
  ) {
    this.isHead = head.method === 'HEAD';
    const tokens = fieldTokens(head, 'connection');
    this.keepAlive = head.minorVersion === 1 ? !tokens.includes('close') : tokens.includes('keep-alive');
    this.bodyComplete = body.kind === 'none';
    if (body.kind === 'length') this.bodyRemaining = body.length;
    if (body.kind === 'chunked') this.decoder = new ChunkedDecoder();
    this.held = this.bodyComplete || rest.length === 0 ? null : rest;
    if (this.bodyComplete) connection.hold(rest);
  }

  /** Bytes from the client while this exchange is current. */
  receive(chunk: Buffer): void {
    if (this.bodyComplete) {
      this.connection.hold(chunk);
      return;
    }
    if (this.reader === null || this.bodyPaused) {
      this.held = this.held === null ? chunk : Buffer.concat([this.held, chunk]);
      if (this.held.length > MAX_HELD_BYTES) this.connection.pauseReading();
      return;
    }
    this.feed(chunk);
  }

  /** Hands body bytes to the reader; what follows the body is the next request's. */
  private feed(chunk: Buffer): void {
    const reader = this.reader as BodyReader;
    let more = true;
    if (this.body.kind === 'length') {
      const take = Math.min(this.bodyRemaining, chunk.length);
      this.bodyRemaining -= take;
      more = reader.onData(take === chunk.length ? chunk : chunk.subarray(0, take));
      if (this.bodyRemaining === 0) return this.endBody(chunk.subarray(take));
    } else {
      let end: number;
      try {
        end = (this.decoder as ChunkedDecoder).decode(chunk, 0, (data) => {
          if (!reader.onData(data)) more = false;
        });
      } catch (err) {
        if (!(err instanceof ChunkedCodingError)) throw err;
        this.reader = null;
        reader.onError(err);
        this.connection.malformedBody(err.message);
        return;
      }
      if (end !== -1) return this.endBody(chunk.subarray(end));
    }
    if (!more) {
      this.bodyPaused = true;
      this.connection.pauseReading();
    }
  }

  private endBody(rest: Buffer): void {
    this.bodyComplete = true;
    const reader = this.reader as BodyReader;
    this.reader = null;
    this.connection.hold(rest);
    reader.onEnd();
  }

  readBody(onData: (data: Buffer) => boolean, onEnd: () => void, onError: (err: Error) => void): void {
    if (this.bodyComplete) return onEnd();
    if (this.status === 0 && fieldValue(this.head, 'expect')?.toLowerCase() === '100-continue') {
      this.connection.socket.write(CONTINUE, 'latin1');
    }
    this.reader = { onData, onEnd, onError };
    this.drainHeld();
    if (!this.bodyPaused && !this.bodyComplete) this.connection.resumeReading();
  }

  resumeBody(): void {
    if (!this.bodyPaused) return;
    this.bodyPaused = false;
    this.drainHeld();
    if (!this.bodyPaused && !this.done) this.connection.resumeReading();
  }

  private drainHeld(): void {
    const held = this.held;
    this.held = null;
    if (held !== null) this.feed(held);
  }

  respond(status: number, headerLines: string, body: string): number {
    if (this.done) return 0;
    // A body nobody read cannot be skipped safely: the connection closes after the answer.
    if (!this.bodyComplete) this.keepAlive = false;
    this.status = status;
    const length = Buffer.byteLength(body, 'utf8');
    const head = wholeResponseHead(status, headerLines, length, this.keepAlive);
    // One string, one write: the head is ASCII, so UTF-8 suits both.
    this.connection.socket.write(this.isHead ? head : head + body, 'utf8');
    this.complete();
    return this.isHead ? 0 : length;
  }

  startResponse(status: number, reason: string, headerLines: string, body: ResponseBody): void {
    if (this.done) return;
    this.status = status;
    let framing = '';
    if (body === 'unknown') {
      if (this.head.minorVersion === 1) {
        this.chunkedResponse = true;
        framing = 'Transfer-Encoding: chunked\r\n';
      } else {
        this.keepAlive = false; // an HTTP/1.0 client learns where the body ends from the close
      }
    }
    const socket = this.connection.socket;
    // The head goes out with the body's first piece, in one write, when that follows at once.
    socket.cork();
    process.nextTick(uncorkSocket, socket);
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\n${headerLines}${framing}Connection: ${this.keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`,
      'latin1',
    );
  }

  writeBody(data: Buffer): boolean {
    if (this.done || this.isHead || data.length === 0) return true;
    const socket = this.connection.socket;
    this.connection.lastActive = Date.now();
    return this.chunkedResponse ? writeChunk(socket, data) : socket.write(data);
  }

  onDrain(callback: () => void): void {
    this.connection.socket.once('drain', callback);
  }

  endResponse(): void {
    if (this.done) return;
    if (this.chunkedResponse && !this.isHead) this.connection.socket.write(LAST_CHUNK, 'latin1');
    uncorkSocket(this.connection.socket);
    this.complete();
  }

  private complete(): void {
    this.done = true;
    this.connection.exchangeDone(this.keepAlive && this.bodyComplete);
  }

  destroy(): void {
    this.connection.socket.destroy();
  }

  onAbort(callback: () => void): void {
    this.abortCallback = callback;
  }

  /** The connection went before the response was complete. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.aborted = true;
    const reader = this.reader;
    this.reader = null;
    if (reader !== null && !this.bodyComplete) reader.onError(new Error('the client went away'));
    this.abortCallback?.();
  }

  takeSocket(): { socket: net.Socket; head: Buffer } {
    this.done = true;
    return this.connection.handOver(this.held ?? EMPTY);
  }
}

/**
 * Reads requests from one client socket and writes their responses. Its
 * timeouts are kept by the listener's sweep (checkTimeouts), from
 * `headStartedAt` and `lastActive`, rather than by a socket timer that every
 * read and write would reset.
 */
export class ClientConnection {
  state = State.Head;
  /** When the current request head began to arrive (0 while none is awaited): the header timeout runs from it. */
  headStartedAt: number;
  /** When bytes last came from the client, or a response or a piece of one went to it. */
  lastActive: number;
  private buffer: Buffer | null = null;
  private exchange: Exchange | null = null;
  private parsing = false;
  private readingPaused = false;
  private gone = false;

  constructor(
    readonly socket: net.Socket,
    readonly clientIp: string,
    private readonly options: ClientConnectionOptions,
  ) {
    this.headStartedAt = Date.now();
    this.lastActive = this.headStartedAt;
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onClose);
    socket.on('close', this.onClose);
  }

  /** Waiting for the next request with nothing of it received: may be closed at once on shutdown. */
  get idle(): boolean {
    return this.state === State.Head && this.buffer === null;
  }

  private readonly onData = (chunk: Buffer): void => {
    this.lastActive = Date.now();
    if (this.state === State.Request) {
      (this.exchange as Exchange).receive(chunk);
      return;
    }
    if (this.state !== State.Head) return;
    this.hold(chunk);
    this.parseRequests();
  };

  // A client that closes its side has given up on a request in progress (as node:http takes it).
  private readonly onEnd = (): void => {
    if (this.state === State.Request) this.socket.destroy();
    else this.socket.end();
  };

  private readonly onClose = (): void => {
    if (this.state === State.Tunnel || this.gone) return;
    this.gone = true;
    this.state = State.Closed;
    this.socket.destroy();
    this.exchange?.abort();
    this.exchange = null;
    this.options.onGone(this);
  };

  /** Keeps bytes received ahead of their turn. */
  hold(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.buffer = this.buffer === null ? bytes : Buffer.concat([this.buffer, bytes]);
    if (this.state === State.Request && this.buffer.length > MAX_HELD_BYTES) this.pauseReading();
  }

  pauseReading(): void {
    if (this.readingPaused) return;
    this.readingPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readingPaused) return;
    this.readingPaused = false;
    this.socket.resume();
  }

  /** Reads as many complete request heads as there are, one exchange at a time. */
  private parseRequests(): void {
    // A response completed within onRequest comes back here; the loop below carries on instead.
    if (this.parsing) return;
    this.parsing = true;
    try {
      while (this.state === State.Head && this.buffer !== null) {
        if (!this.startNextRequest(this.buffer)) break;
      }
    } finally {
      this.parsing = false;
    }
  }

  /** Starts the exchange for the head at the front of `buffer`; false when it is not complete yet. */
  private startNextRequest(buffer: Buffer): boolean {
    let start = 0;
    // A CRLF or two before a request line are ignored (RFC 9112 §2.2): some clients send one after a body.
    while (start + 1 < buffer.length && buffer[start] === 0x0d && buffer[start + 1] === 0x0a && start < 4) start += 2;
    if (this.headStartedAt === 0) this.headStartedAt = this.lastActive; // its first bytes came just now
    const end = findHeadEnd(buffer, start);
    if (end === -1 || end - start > this.options.maxHeaderBytes) {
      if (buffer.length - start > this.options.maxHeaderBytes) {
        this.refuse(431, 'Request headers too large', `The request's headers are larger than the ${this.options.maxHeaderBytes} bytes this proxy accepts.`);
      } else if (hasBareLineFeed(buffer, start)) {
        this.refuse(400, 'Bad request', 'The request could not be understood: it is not valid HTTP (a line does not end in CRLF).');
      }
      return false;
    }
    const parsed = parseRequestHead(buffer, start, end);
    if (!parsed.ok) {
      this.refuse(400, 'Bad request', `The request could not be understood: it is not valid HTTP (${parsed.reason}).`);
      return false;
    }
    const head = parsed.head;
    const framing = head.method === 'CONNECT' ? NO_REQUEST_BODY : requestFraming(head);
    if (!framing.ok) {
      const title = framing.status === 501 ? 'Not implemented' : 'Bad request';
      this.refuse(framing.status, title, `The request could not be understood: ${framing.reason}.`);
      return false;
    }
    const rest = end === buffer.length ? EMPTY : buffer.subarray(end);
    this.buffer = null;
    this.headStartedAt = 0;
    this.state = State.Request;
    const exchange = new Exchange(this, head, framing.framing, this.clientIp, rest);
    this.exchange = exchange;
    // Whatever follows a CONNECT is the tunnel's (a TLS ClientHello), not another request.
    if (head.method === 'CONNECT') this.options.onConnect(exchange);
    else this.options.onRequest(exchange);
    return true;
  }

  /** The current exchange's response is complete. */
  exchangeDone(keepAlive: boolean): void {
    if (this.state !== State.Request) return;
    this.exchange = null;
    this.lastActive = Date.now();
    if (!keepAlive) {
      this.state = State.Closed;
      // What the client still sends is read and dropped: unread bytes would make the close a reset under the answer.
      this.resumeReading();
      this.socket.end();
      return;
    }
    this.state = State.Head;
    this.resumeReading();
    if (this.buffer !== null) {
      if (this.parsing) return; // the loop that started this exchange carries on
      // A pipelined request waits for the next turn of the event loop, not on this stack.
      setImmediate(() => this.parseRequests());
    }
  }

  /** A chunked request body that was not valid: nothing after it can be read. */
  malformedBody(reason: string): void {
    this.options.onMalformed(this.clientIp, 400, reason);
    this.socket.destroy();
  }

  handOver(held: Buffer): { socket: net.Socket; head: Buffer } {
    this.state = State.Tunnel;
    const socket = this.socket;
    socket.pause();
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    socket.off('error', this.onClose);
    socket.off('close', this.onClose);
    const head = this.buffer === null ? held : Buffer.concat([held, this.buffer]);
    this.buffer = null;
    this.exchange = null;
    this.gone = true;
    this.options.onGone(this);
    return { socket, head };
  }

  /** Answers a request that cannot be read, then closes: what follows it cannot be trusted. */
  refuse(status: number, title: string, explanation: string): void {
    if (this.state === State.Closed || this.state === State.Tunnel) return;
    this.options.onMalformed(this.clientIp, status, explanation);
    this.state = State.Closed;
    this.buffer = null;
    const body = this.options.errorPage(title, explanation);
    const head = wholeResponseHead(status, PAGE_HEADERS, Buffer.byteLength(body, 'utf8'), false);
    this.socket.end(head + body, 'utf8');
  }

  /**
   * The listener's sweep: a request head that has been arriving for longer
   * than the header timeout gets a 408; a connection with nothing sent either
   * way for longer than the idle timeout is closed.
   */
  checkTimeouts(now: number): void {
    if (this.state === State.Head && this.headStartedAt !== 0 && now - this.headStartedAt > this.options.headerTimeoutMs) {
      this.refuse(408, 'Request timed out', 'The request was not sent in time.');
    } else if (now - this.lastActive > this.options.idleTimeoutMs) {
      this.socket.destroy();
    }
  }

  /** Closes a connection that is waiting for its next request, or already closing. */
  closeIfIdle(): void {
    if (this.idle || this.state === State.Closed) this.socket.destroy();
  }
}
