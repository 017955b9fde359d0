// Forwards plain HTTP requests (already identified, decided and guarded) to
// the web server, or to the parent proxy. Hop-by-hop headers are dropped both
// ways (RFC 9110 §7.6.1), the Host header comes from the request target and a
// Via header is added.
//
// The outgoing leg uses undici's dispatcher rather than node:http's client
// (or http-proxy on top of it): this is the proxy's hot path, and undici
// costs markedly less CPU per request (docs/design-notes.md has the figures).
// Its pools keep connections alive per destination address.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import type { Logger } from '../core/logger.js';
import { errorPage, sendHtml } from './pages.js';
import { formatAuthority, type HttpTarget } from './request-target.js';
import { parentEndpoint, parentProxyAuthorization } from './upstream.js';
import { describeUpstreamFailure } from './upstream-error.js';

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
  close(): Promise<void>;
}

type Headers = Record<string, string | string[]>;

const VIA_PSEUDONYM = 'portcullis';
// The body is re-framed on each side (undici chunks a request body of unknown length,
// Node frames the response), so framing headers stop here as well as hop-by-hop ones.
const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
// Credentials for this proxy are ours and Node has already answered "Expect: 100-continue";
// a parent's challenge is not the client's to answer.
const REQUEST_ONLY_FOR_US = new Set(['proxy-authorization', 'expect']);
const RESPONSE_ONLY_FOR_US = new Set(['proxy-authenticate', 'proxy-authentication-info']);

/** The end-to-end headers: without hop-by-hop ones, those the Connection header names, and `alsoDrop`. */
function endToEndHeaders(headers: IncomingHttpHeaders, alsoDrop: ReadonlySet<string>): Headers {
  const connection = headers.connection;
  const named = connection === undefined ? undefined : new Set(String(connection).split(',').map((t) => t.trim().toLowerCase()));
  const kept: Headers = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || alsoDrop.has(name) || named?.has(name)) continue;
    kept[name] = value;
  }
  return kept;
}

function appendVia(existing: string | string[] | undefined, httpVersion: string): string {
  const ours = `${httpVersion} ${VIA_PSEUDONYM}`;
  const prior = Array.isArray(existing) ? existing.join(', ') : existing;
  return prior ? `${prior}, ${ours}` : ours;
}

function clientWantsKeepAlive(req: IncomingMessage): boolean {
  const connection = req.headers.connection;
  if (connection === undefined) return req.httpVersion !== '1.0';
  const tokens = connection.toLowerCase().split(',').map((t) => t.trim());
  return req.httpVersion === '1.0' ? tokens.includes('keep-alive') : !tokens.includes('close');
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function createForwarder(options: { upstreamTimeoutMs: number; log: Logger }): Forwarder {
  const { upstreamTimeoutMs, log } = options;
  const agent = new Agent({
    connect: { timeout: upstreamTimeoutMs },
    headersTimeout: upstreamTimeoutMs,
    bodyTimeout: upstreamTimeoutMs,
  });

  function forward(req: IncomingMessage, res: ServerResponse, target: HttpTarget, route: ForwardRoute): Promise<ForwardOutcome> {
    return new Promise((resolve) => {
      const authority = formatAuthority(target.host, target.port, 80);
      const keepAlive = clientWantsKeepAlive(req);
      const withBody = hasBody(req);
      let bytesIn = 0;
      let bytesOut = 0;
      let controller: Dispatcher.DispatchController | undefined;

      const headers = endToEndHeaders(req.headers, REQUEST_ONLY_FOR_US);
      headers.host = authority;
      headers.via = appendVia(req.headers.via, req.httpVersion);
      let origin: string;
      if (route.kind === 'parent') {
        const parent = parentEndpoint(route.parent);
        origin = `http://${formatAuthority(parent.host, parent.port, 0)}`;
        const parentAuthorization = parentProxyAuthorization(route.parent);
        if (parentAuthorization) headers['proxy-authorization'] = parentAuthorization;
      } else {
        origin = `http://${formatAuthority(route.address, target.port, 0)}`;
      }

      const fail = (err: unknown): void => {
        if (res.headersSent) {
          // Part of the response is already with the client: all that can be done is to cut it short.
          log.warn({ err, destination: authority }, 'upstream failed mid-response');
          res.destroy();
          return;
        }
        if (res.writableEnded || res.destroyed) return; // the client has gone; nothing to tell it
        const failure = describeUpstreamFailure(err, authority, route.kind === 'parent');
        log.info({ err, destination: authority, status: failure.status }, 'upstream failed');
        bytesOut = sendHtml(res, failure.status, errorPage(failure.status === 504 ? 'The site took too long to answer' : 'The site could not be reached', failure.reason));
      };

      res.once('close', () => {
        // Abandoned by the client: stop the upstream request too (a finished one is back in the pool).
        if (!res.writableFinished && controller !== undefined && !controller.aborted) controller.abort(new Error('client went away'));
        resolve({ status: res.headersSent ? res.statusCode : 499, bytesIn, bytesOut });
      });

      // The body is passed on as it is read, counting it on the way (undici pulls at its own pace).
      async function* countedBody(): AsyncGenerator<Buffer> {
        for await (const chunk of req as AsyncIterable<Buffer>) {
          bytesIn += chunk.length;
          yield chunk;
        }
      }
      if (!withBody) req.resume();

      try {
        agent.dispatch(
          {
            origin,
            path: route.kind === 'parent' ? `http://${authority}${target.path}` : target.path,
            method: req.method as Dispatcher.HttpMethod,
            headers,
            body: withBody ? Readable.from(countedBody(), { objectMode: false }) : null,
          },
          {
            onRequestStart(started) {
              controller = started;
              if (res.destroyed) started.abort(new Error('client went away'));
            },
            onResponseStart(_controller, statusCode, responseHeaders, statusMessage) {
              if (statusCode < 200) return; // informational; the final response follows
              const forwarded = endToEndHeaders(responseHeaders, RESPONSE_ONLY_FOR_US);
              forwarded.via = appendVia(responseHeaders.via, '1.1');
              forwarded.connection = keepAlive ? 'keep-alive' : 'close';
              res.writeHead(statusCode, statusMessage, forwarded);
            },
            onResponseData(flow, chunk) {
              bytesOut += chunk.length;
              if (!res.write(chunk)) {
                flow.pause();
                res.once('drain', () => flow.resume());
              }
            },
            onResponseEnd() {
              res.end();
            },
            onResponseError(_controller, err) {
              fail(err);
            },
          },
        );
      } catch (err) {
        fail(err); // undici throws synchronously on a request it cannot send (an invalid header)
      }
    });
  }

  return {
    forward,
    async close() {
      await agent.destroy();
    },
  };
}
