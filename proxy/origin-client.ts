// The proxy's side of plain HTTP towards web servers (or the parent proxy):
// one request at a time per connection, connections kept alive and reused
// per destination. It moves bytes with as little per-request work as it
// can: the request head arrives already written by the forwarder, the
// response head is read strictly (proxy/http1/head.ts), and the body is
// handed on in the pieces the socket delivers. This is the proxy's hot path:
// in place of undici's client it cut the proxy's user CPU per request by
// about a quarter (docs/design-notes.md).
import net from 'node:net';
import { ChunkedCodingError, ChunkedDecoder, LAST_CHUNK, responseFraming, writeChunk, type BodyFraming } from './http1/framing.js';
import { fieldTokens, fieldValue, findHeadEnd, hasBareLineFeed, parseResponseHead, type ResponseHead } from './http1/head.js';
import { InvalidResponseError, UpstreamTimeoutError } from './upstream-error.js';

export interface OriginRequest {
  /** Where to connect: the checked address of the web server, or the parent proxy. */
  host: string;
  port: number;
  method: string;
  /** The whole request head, blank line included, as it goes on the wire (latin1). */
  head: string;
  /** How the body will be written: none, a known length, or chunked by this client as it comes. */
  body: BodyFraming;
}

export interface OriginResponseHandler {
  /** The final response's head (informational ones are skipped) and how its body is framed. */
  onHead(head: ResponseHead, framing: BodyFraming): void;
  /** A piece of the body; return false to stop reading until resume(). */
  onData(data: Buffer): boolean;
  onEnd(): void;
  /** The exchange failed; nothing more follows. `responseStarted`: onHead was called. */
  onError(err: Error, responseStarted: boolean): void;
}

export interface OriginExchange {
  /** Writes a piece of the request body; false when the socket wants a pause (see onBodyDrain). */
  writeBody(data: Buffer): boolean;
  endBody(): void;
  onBodyDrain(callback: () => void): void;
  /** Reading resumes after onData returned false. */
  resume(): void;
  /** Gives up on the exchange: the connection is closed and no handler is called again. */
  abort(): void;
}

export interface OriginClient {
  send(request: OriginRequest, handler: OriginResponseHandler): OriginExchange;
  /** Closes every connection, idle or busy. */
  close(): void;
}

// Idle connections are kept this long unless the server says less (Keep-Alive: timeout=N).
const IDLE_KEEP_MS = 4_000;
const MAX_IDLE_PER_DESTINATION = 256;
const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;
/** Methods a repeat of which does what one does (RFC 9110 §9.2.2): only these are sent again. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

function closedEarly(): Error {
  return Object.assign(new Error('the server closed the connection before the response was complete'), { code: 'ECONNRESET' });
}

/** How long the server lets an idle connection live, from its Keep-Alive header, capped at ours. */
function idleKeepMs(head: ResponseHead): number {
  const keepAlive = fieldValue(head, 'keep-alive');
  const timeout = keepAlive === undefined ? undefined : /(?:^|,)\s*timeout\s*=\s*(\d+)/i.exec(keepAlive);
  if (!timeout) return IDLE_KEEP_MS;
  // A second's margin: the server's clock for the connection started before ours.
  return Math.min(IDLE_KEEP_MS, Number(timeout[1]) * 1_000 - 1_000);
}

const enum Phase {
  Head,
  Body,
  Done,
}

/** One request and its response on one connection. */
class Exchange implements OriginExchange {
  phase = Phase.Head;
  private pending: Buffer | null = null;
  private framing: BodyFraming = { kind: 'none' };
  private remaining = 0;
  private decoder: ChunkedDecoder | null = null;
  private keepAlive = false;
  private keepMs = IDLE_KEEP_MS;
  private requestSent: boolean;
  private responseBytes = false;
  private paused = false;
  private attempts = 0;
  connection!: OriginConnection;

  constructor(
    private readonly client: Pool,
    readonly request: OriginRequest,
    private readonly handler: OriginResponseHandler,
  ) {
    this.requestSent = request.body.kind === 'none';
  }

  start(connection: OriginConnection): void {
    this.attempts++;
    this.connection = connection;
    connection.attach(this);
    connection.socket.write(this.request.head, 'latin1');
  }

  writeBody(data: Buffer): boolean {
    if (this.phase === Phase.Done || data.length === 0) return true;
    this.connection.lastActive = Date.now();
    const socket = this.connection.socket;
    return this.request.body.kind === 'chunked' ? writeChunk(socket, data) : socket.write(data);
  }

  endBody(): void {
    if (this.phase === Phase.Done) return;
    this.requestSent = true;
    if (this.request.body.kind === 'chunked') this.connection.socket.write(LAST_CHUNK, 'latin1');
  }

  onBodyDrain(callback: () => void): void {
    this.connection.socket.once('drain', callback);
  }

  resume(): void {
    if (!this.paused || this.phase === Phase.Done) return;
    this.paused = false;
    this.connection.lastActive = Date.now();
    this.connection.socket.resume();
  }

  abort(): void {
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Done;
    this.connection.discard();
  }

  /** Bytes from the server for this exchange. */
  receive(chunk: Buffer): void {
    this.responseBytes = true;
    if (this.phase === Phase.Head) this.readHead(chunk);
    else if (this.phase === Phase.Body) this.readBody(chunk, 0);
  }

  /** Reads response heads (skipping informational ones), then goes on to the body. */
  private readHead(chunk: Buffer): void {
    const buffer = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    let start = 0;
    for (;;) {
      const end = findHeadEnd(buffer, start);
      if (end === -1) {
        if (buffer.length - start > MAX_RESPONSE_HEAD_BYTES) return this.fail(new InvalidResponseError('the response head is too large'));
        if (hasBareLineFeed(buffer, start)) return this.fail(new InvalidResponseError('a line of the response does not end in CRLF'));
        this.pending = start === buffer.length ? null : buffer.subarray(start);
        return;
      }
      const parsed = parseResponseHead(buffer, start, end);
      if (!parsed.ok) return this.fail(new InvalidResponseError(`the response is not valid HTTP: ${parsed.reason}`));
      const head = parsed.head;
      if (head.status === 101) return this.fail(new InvalidResponseError('the server switched protocols unasked'));
      if (head.status < 200) {
        start = end; // 100 Continue, 103 Early Hints: the final response follows
        continue;
      }
      const framing = responseFraming(head, this.request.method);
      if (!framing.ok) return this.fail(new InvalidResponseError(`the response is not valid HTTP: ${framing.reason}`));
      this.pending = null;
      this.framing = framing.framing;
      this.keepAlive = head.minorVersion === 1 && !fieldTokens(head, 'connection').includes('close');
      if (this.keepAlive) this.keepMs = idleKeepMs(head);
      if (this.framing.kind === 'length') this.remaining = this.framing.length;
      if (this.framing.kind === 'chunked') this.decoder = new ChunkedDecoder();
      this.phase = Phase.Body;
      this.handler.onHead(head, this.framing);
      if (this.phase !== Phase.Body) return; // aborted by the handler
      if (this.framing.kind === 'none') return this.finish(end === buffer.length);
      return this.readBody(buffer, end);
    }
  }

  private readBody(chunk: Buffer, offset: number): void {
    if (offset >= chunk.length) return;
    let more = true;
    switch (this.framing.kind) {
      case 'length': {
        const take = Math.min(this.remaining, chunk.length - offset);
        this.remaining -= take;
        more = this.deliver(offset === 0 && take === chunk.length ? chunk : chunk.subarray(offset, offset + take));
        if (this.phase !== Phase.Body) return;
        if (this.remaining === 0) return this.finish(offset + take === chunk.length);
        break;
      }
      case 'chunked': {
        let end: number;
        try {
          end = (this.decoder as ChunkedDecoder).decode(chunk, offset, (data) => {
            if (!this.deliver(data)) more = false;
          });
        } catch (err) {
          if (err instanceof ChunkedCodingError) return this.fail(new InvalidResponseError(err.message));
          throw err;
        }
        if (this.phase !== Phase.Body) return;
        if (end !== -1) return this.finish(end === chunk.length);
        break;
      }
      case 'close':
        more = this.deliver(offset === 0 ? chunk : chunk.subarray(offset));
        break;
      case 'none':
        return;
    }
    if (!more) this.pause();
  }

  private deliver(data: Buffer): boolean {
    // Once the handler has aborted, what is left of the chunk is not its concern.
    if (data.length === 0 || this.phase !== Phase.Body) return true;
    return this.handler.onData(data);
  }

  private pause(): void {
    if (this.phase !== Phase.Body) return;
    this.paused = true;
    this.connection.socket.pause();
  }

  /** Whether the server has been silent too long; a client that reads slowly is not the server failing to answer. */
  timedOut(now: number, timeoutMs: number): boolean {
    return !this.paused && now - this.connection.lastActive > timeoutMs;
  }

  /** The response is complete; `clean` when nothing followed it on the connection. */
  private finish(clean: boolean): void {
    this.phase = Phase.Done;
    const reusable = clean && this.keepAlive && this.requestSent && this.framing.kind !== 'close';
    if (reusable) this.client.release(this.connection, this.keepMs);
    else this.connection.discard();
    this.handler.onEnd();
  }

  /** The server closed its side. */
  serverEnded(): void {
    if (this.phase === Phase.Body && this.framing.kind === 'close') {
      this.phase = Phase.Done;
      this.connection.discard();
      this.handler.onEnd();
      return;
    }
    this.connectionFailed(closedEarly());
  }

  connectionFailed(err: Error): void {
    if (this.phase === Phase.Done) return;
    // A kept-alive connection the server closed as we reused it: try once more on a new one,
    // when nothing was answered and there is no body that may already have gone. A proxy
    // must not retry a request that is not idempotent (RFC 9110 §9.2.2), nor one the
    // server took and then sat on (a timeout is not a stale connection).
    const staleConnection = this.connection.reused && !this.responseBytes && !(err instanceof UpstreamTimeoutError);
    if (staleConnection && IDEMPOTENT.has(this.request.method) && this.request.body.kind === 'none' && this.attempts === 1) {
      this.connection.discard();
      this.start(this.client.connect(this.request));
      return;
    }
    this.fail(err);
  }

  private fail(err: Error): void {
    if (this.phase === Phase.Done) return;
    const started = this.phase === Phase.Body;
    this.phase = Phase.Done;
    this.connection.discard();
    this.handler.onError(err, started);
  }
}

/**
 * One connection to a server, carrying one exchange at a time. Its timeouts
 * are kept by the pool's sweep, from `lastActive` and `keepUntil`, rather than
 * by a socket timer that every read and write would reset.
 */
class OriginConnection {
  exchange: Exchange | null = null;
  reused = false;
  discarded = false;
  lastActive = Date.now();
  /** While idle in the pool: when it is closed. */
  keepUntil = 0;

  constructor(
    readonly socket: net.Socket,
    readonly key: string,
    private readonly onIdleEnd: (connection: OriginConnection) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.exchange === null) return this.discard(); // bytes nobody asked for: the connection cannot be trusted
      this.lastActive = Date.now();
      this.exchange.receive(chunk);
    });
    socket.on('end', () => {
      if (this.exchange !== null) this.exchange.serverEnded();
      else this.onIdleEnd(this);
    });
    socket.on('error', (err) => {
      if (this.exchange !== null) this.exchange.connectionFailed(err);
      else this.onIdleEnd(this);
    });
    socket.on('close', () => {
      if (this.exchange !== null) this.exchange.connectionFailed(closedEarly());
      else this.onIdleEnd(this);
    });
  }

  attach(exchange: Exchange): void {
    this.exchange = exchange;
    this.lastActive = Date.now();
  }

  /** Back in the pool, until `keepMs` from now. */
  detach(keepMs: number): void {
    this.exchange = null;
    this.reused = true;
    this.keepUntil = Date.now() + keepMs;
  }

  /** The pool's sweep: a busy connection whose server has been silent too long fails its exchange; an idle one past its time closes. */
  sweep(now: number, timeoutMs: number): void {
    if (this.exchange !== null) {
      if (this.exchange.timedOut(now, timeoutMs)) this.exchange.connectionFailed(new UpstreamTimeoutError('the server did not answer in time'));
    } else if (now > this.keepUntil) {
      this.onIdleEnd(this);
    }
  }

  discard(): void {
    if (this.discarded) return;
    this.discarded = true;
    this.exchange = null;
    this.socket.destroy();
  }
}

class Pool implements OriginClient {
  private readonly idle = new Map<string, OriginConnection[]>();
  private readonly all = new Set<OriginConnection>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number) {
    // Often enough that a timeout is late by at most a quarter of itself, or a second.
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(1_000, timeoutMs / 4)));
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const connection of this.all) connection.sweep(now, this.timeoutMs);
  }

  send(request: OriginRequest, handler: OriginResponseHandler): OriginExchange {
    const exchange = new Exchange(this, request, handler);
    exchange.start(this.take(request) ?? this.connect(request));
    return exchange;
  }

  private take(request: OriginRequest): OriginConnection | undefined {
    const key = keyOf(request);
    const waiting = this.idle.get(key);
    // The most recently used first: the likeliest to be still open at the server.
    const connection = waiting?.pop();
    if (waiting !== undefined && waiting.length === 0) this.idle.delete(key);
    return connection;
  }

  connect(request: OriginRequest): OriginConnection {
    const socket = net.connect({ host: request.host, port: request.port });
    const connection = new OriginConnection(socket, keyOf(request), (gone) => this.forget(gone));
    this.all.add(connection);
    socket.once('close', () => this.all.delete(connection));
    return connection;
  }

  release(connection: OriginConnection, keepMs: number): void {
    const waiting = this.idle.get(connection.key) ?? [];
    if (keepMs <= 0 || waiting.length >= MAX_IDLE_PER_DESTINATION) {
      connection.discard();
      return;
    }
    connection.detach(keepMs);
    waiting.push(connection);
    this.idle.set(connection.key, waiting);
  }

  /** An idle connection closed, failed or timed out: drop it from the pool. */
  private forget(connection: OriginConnection): void {
    const waiting = this.idle.get(connection.key);
    const at = waiting?.indexOf(connection) ?? -1;
    if (waiting !== undefined && at !== -1) {
      waiting.splice(at, 1);
      if (waiting.length === 0) this.idle.delete(connection.key);
    }
    connection.discard();
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const connection of this.all) connection.discard();
    this.idle.clear();
  }
}

function keyOf(request: OriginRequest): string {
  return `${request.host}|${request.port}`;
}

export function createOriginClient(options: { timeoutMs: number }): OriginClient {
  return new Pool(options.timeoutMs);
}
