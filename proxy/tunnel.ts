// CONNECT tunnels: connect to the destination (directly or through the parent
// proxy), answer "200 Connection established", read the client's ClientHello
// so the caller can decide on the server name it carries, then relay bytes.
import { STATUS_CODES } from 'node:http';
import net from 'node:net';
import type { Logger } from '../core/logger.js';
import { peekClientHello, type ClientHelloPeek } from './client-hello.js';
import { openParentTunnel } from './upstream.js';
import { describeUpstreamFailure, UpstreamTimeoutError } from './upstream-error.js';

export type TunnelRoute = { kind: 'direct'; address: string } | { kind: 'parent'; parent: URL };

/** What to do once the client's first bytes have been read. */
export type HelloVerdict = { proceed: true } | { proceed: false; status: number };

export interface TunnelOptions {
  client: net.Socket;
  /** Bytes the client sent after the CONNECT head, already read by the HTTP parser. */
  head: Buffer;
  /** host:port as written on the CONNECT line. */
  authority: string;
  port: number;
  route: TunnelRoute;
  upstreamTimeoutMs: number;
  idleTimeoutMs: number;
  peekTimeoutMs: number;
  maxClientHelloBytes: number;
  onClientHello(result: ClientHelloPeek, bytesRead: number): HelloVerdict;
  log: Logger;
}

export interface TunnelOutcome {
  status: number;
  /** Bytes from the client to the destination. */
  bytesIn: number;
  /** Bytes from the destination to the client. */
  bytesOut: number;
}

function connectDirect(address: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port });
    const timer = setTimeout(() => socket.destroy(new UpstreamTimeoutError('connect timed out')), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.pause();
      resolve(socket);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once('error', onError);
  });
}

/** A status line and a short plain-text reason, then the connection is closed. */
export function refuseConnect(client: net.Socket, status: number, reason: string, extraHeaders: string[] = []): void {
  const body = `${reason}\n`;
  if (!client.writable) return void client.destroy();
  client.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      extraHeaders.map((h) => `${h}\r\n`).join('') +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export async function runTunnel(options: TunnelOptions): Promise<TunnelOutcome> {
  const { client, log } = options;
  let clientGone = false;
  const onEarlyClose = (): void => void (clientGone = true);
  client.once('close', onEarlyClose);
  client.on('error', (err) => log.debug({ err }, 'tunnel client socket error'));

  let upstream: net.Socket;
  try {
    upstream =
      options.route.kind === 'parent'
        ? await openParentTunnel(options.route.parent, options.authority, options.upstreamTimeoutMs)
        : await connectDirect(options.route.address, options.port, options.upstreamTimeoutMs);
  } catch (err) {
    const failure = describeUpstreamFailure(err, options.authority, options.route.kind === 'parent');
    log.info({ err, authority: options.authority, status: failure.status }, 'tunnel upstream failed');
    refuseConnect(client, failure.status, failure.reason);
    return { status: failure.status, bytesIn: 0, bytesOut: 0 };
  }
  upstream.on('error', (err) => log.debug({ err }, 'tunnel upstream socket error'));
  client.off('close', onEarlyClose);
  if (clientGone || client.destroyed) {
    upstream.destroy();
    return { status: 499, bytesIn: 0, bytesOut: 0 };
  }

  client.write('HTTP/1.1 200 Connection established\r\n\r\n');
  const peek = await peekClientHello(client, options.head, {
    maxBytes: options.maxClientHelloBytes,
    timeoutMs: options.peekTimeoutMs,
  });
  const verdict = options.onClientHello(peek.result, peek.bytes.length);
  if (!verdict.proceed) {
    upstream.destroy();
    client.destroy();
    return { status: verdict.status, bytesIn: 0, bytesOut: 0 };
  }
  return relay(client, upstream, peek.bytes, options.idleTimeoutMs);
}

/** Copies bytes both ways until both sides have closed; `first` goes upstream before anything else. */
function relay(client: net.Socket, upstream: net.Socket, first: Buffer, idleTimeoutMs: number): Promise<TunnelOutcome> {
  return new Promise((resolve) => {
    let bytesIn = first.length;
    let bytesOut = 0;
    let open = 2;
    const closed = (): void => {
      if (--open === 0) resolve({ status: 200, bytesIn, bytesOut });
    };
    for (const socket of [client, upstream]) {
      socket.setTimeout(idleTimeoutMs, () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
    upstream.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
    // A client that has gone cannot receive any more; a destination that has gone may still
    // have bytes on their way to the client, so the client side is ended, not destroyed.
    whenClosed(client, () => {
      upstream.destroy();
      closed();
    });
    whenClosed(upstream, () => {
      // Ending a client that has already gone only builds an error object to throw away.
      if (!client.destroyed && !client.writableEnded) client.end();
      closed();
    });
    if (first.length > 0) upstream.write(first);
    client.pipe(upstream);
    upstream.pipe(client);
  });
}

/** Runs `then` once the socket has closed, including when that happened already. */
function whenClosed(socket: net.Socket, then: () => void): void {
  if (socket.closed) queueMicrotask(then);
  else socket.once('close', then);
}
