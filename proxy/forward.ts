// Forwards plain HTTP requests (already identified, decided and guarded) to
// the web server, or to the parent proxy, with http-proxy and a keep-alive
// agent. Hop-by-hop headers are dropped both ways (RFC 9110 §7.6.1), the Host
// header comes from the request target and a Via header is added.
import http, { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Logger } from '../core/logger.js';
import { errorPage, sendHtml } from './pages.js';
import { formatAuthority, type HttpTarget } from './request-target.js';
import { parentEndpoint, parentProxyAuthorization } from './upstream.js';
import { describeUpstreamFailure, UpstreamTimeoutError } from './upstream-error.js';

export type ForwardRoute =
  /** Straight to the address the destination guard checked. */
  | { kind: 'direct'; address: string }
  | { kind: 'parent'; parent: URL };

export interface ForwardOutcome {
  /** The status the client got; 499 when it went away before any response. */
  status: number;
  /** Request body bytes from the client. */
  bytesIn: number;
  /** Response body bytes to the client. */
  bytesOut: number;
}

export interface Forwarder {
  /** Resolves when the exchange is over (finished, failed or abandoned); never rejects. */
  forward(req: IncomingMessage, res: ServerResponse, target: HttpTarget, route: ForwardRoute): Promise<ForwardOutcome>;
  close(): void;
}

const VIA_PSEUDONYM = 'portcullis';
const HOP_BY_HOP = ['connection', 'proxy-connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade'];
// Credentials for this proxy are ours; a parent's challenge is not the client's to answer.
const REQUEST_ONLY_FOR_US = ['proxy-authorization'];
const RESPONSE_ONLY_FOR_US = ['proxy-authenticate', 'proxy-authentication-info'];

/** Removes hop-by-hop headers, including any the Connection header names. */
function stripHopByHop(headers: IncomingHttpHeaders, alsoRemove: readonly string[] = []): void {
  const connection = headers.connection;
  if (connection !== undefined) {
    for (const name of connection.split(',')) {
      const trimmed = name.trim().toLowerCase();
      if (trimmed !== '') delete headers[trimmed];
    }
  }
  for (const name of [...HOP_BY_HOP, ...alsoRemove]) delete headers[name];
}

function appendVia(existing: string | string[] | undefined, httpVersion: string): string {
  const ours = `${httpVersion} ${VIA_PSEUDONYM}`;
  const prior = Array.isArray(existing) ? existing.join(', ') : existing;
  return prior ? `${prior}, ${ours}` : ours;
}

function clientWantsKeepAlive(req: IncomingMessage): boolean {
  const tokens = (req.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim());
  return req.httpVersion === '1.0' ? tokens.includes('keep-alive') : !tokens.includes('close');
}

interface Exchange {
  onProxyReq(proxyReq: ClientRequest): void;
  onProxyRes(proxyRes: IncomingMessage): void;
}

export function createForwarder(options: { upstreamTimeoutMs: number; log: Logger }): Forwarder {
  const { upstreamTimeoutMs, log } = options;
  const agent = new http.Agent({ keepAlive: true, scheduling: 'lifo' });
  const proxy = httpProxy.createProxyServer({ agent, xfwd: false, ws: false, prependPath: false });
  const exchanges = new WeakMap<IncomingMessage, Exchange>();
  proxy.on('proxyReq', (proxyReq, req) => exchanges.get(req)?.onProxyReq(proxyReq));
  proxy.on('proxyRes', (proxyRes, req) => exchanges.get(req)?.onProxyRes(proxyRes));
  // With a callback on every web() call http-proxy reports errors there; this only guards the emitter.
  proxy.on('error', (err) => log.error({ err }, 'http-proxy error outside a request'));

  function forward(req: IncomingMessage, res: ServerResponse, target: HttpTarget, route: ForwardRoute): Promise<ForwardOutcome> {
    return new Promise((resolve) => {
      const authority = formatAuthority(target.host, target.port, 80);
      const destination = `http://${authority}`;
      const keepAlive = clientWantsKeepAlive(req);
      const wasChunked = req.headers['transfer-encoding'] !== undefined;
      let bytesIn = 0;
      let bytesOut = 0;
      let connectTimer: NodeJS.Timeout | undefined;
      let proxyReqSeen: ClientRequest | undefined;

      stripHopByHop(req.headers, REQUEST_ONLY_FOR_US);
      // Node has already answered "100 Continue" to the client, so the expectation is met.
      delete req.headers.expect;
      // Node decoded the chunked body; the outgoing request must be chunked again.
      if (wasChunked) req.headers['transfer-encoding'] = 'chunked';
      req.headers.host = authority;
      req.headers.via = appendVia(req.headers.via, req.httpVersion);
      const parentAuthorization = route.kind === 'parent' ? parentProxyAuthorization(route.parent) : undefined;
      if (parentAuthorization) req.headers['proxy-authorization'] = parentAuthorization;
      // Set on the outgoing request ourselves: http-proxy's own path join collapses "//" in paths.
      const outgoingPath = route.kind === 'parent' ? `${destination}${target.path}` : target.path;

      // The body flows through `body` only once the outgoing request exists, so its path can be set first.
      const body = new PassThrough();
      const timedOut = (proxyReq: ClientRequest) => () => proxyReq.destroy(new UpstreamTimeoutError('no answer'));

      exchanges.set(req, {
        onProxyReq(proxyReq) {
          proxyReqSeen = proxyReq;
          proxyReq.path = outgoingPath;
          proxyReq.setTimeout(upstreamTimeoutMs, timedOut(proxyReq));
          // setTimeout above only starts once connected; the connection attempt needs its own limit.
          if (proxyReq.socket?.connecting) {
            connectTimer = setTimeout(timedOut(proxyReq), upstreamTimeoutMs);
            proxyReq.socket.once('connect', () => clearTimeout(connectTimer));
          }
          proxyReq.once('close', () => clearTimeout(connectTimer));
          req.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
          req.pipe(body);
        },
        onProxyRes(proxyRes) {
          stripHopByHop(proxyRes.headers, RESPONSE_ONLY_FOR_US);
          proxyRes.headers.via = appendVia(proxyRes.headers.via, proxyRes.httpVersion);
          proxyRes.headers.connection = keepAlive ? 'keep-alive' : 'close';
          proxyRes.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
        },
      });

      const fail = (err: unknown): void => {
        clearTimeout(connectTimer);
        if (res.headersSent) {
          // Part of the response is already with the client: all that can be done is to cut it short.
          log.warn({ err, destination }, 'upstream failed mid-response');
          res.destroy();
          return;
        }
        const failure = describeUpstreamFailure(err, authority, route.kind === 'parent');
        log.info({ err, destination, status: failure.status }, 'upstream failed');
        proxyReqSeen?.destroy();
        if (!res.writableEnded && !res.destroyed) {
          bytesOut = sendHtml(res, failure.status, errorPage(failure.status === 504 ? 'The site took too long to answer' : 'The site could not be reached', failure.reason));
        }
      };

      res.once('close', () => {
        exchanges.delete(req);
        // Abandoned by the client: stop the upstream request too (a finished one is back in the pool).
        if (!res.writableFinished) proxyReqSeen?.destroy();
        resolve({ status: res.headersSent ? res.statusCode : 499, bytesIn, bytesOut });
      });

      const upstream =
        route.kind === 'parent'
          ? { protocol: 'http:', ...parentEndpoint(route.parent) }
          : { protocol: 'http:', host: route.address, port: target.port };
      try {
        proxy.web(req, res, { target: upstream, buffer: body, toProxy: route.kind === 'parent' }, fail);
      } catch (err) {
        fail(err); // http.request throws synchronously on options it rejects
      }
    });
  }

  return {
    forward,
    close() {
      agent.destroy();
    },
  };
}
