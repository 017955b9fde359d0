// Forwards plain HTTP requests (already identified, decided and guarded) to
// the web server, or to the parent proxy. Hop-by-hop headers are dropped both
// ways (RFC 9110 §7.6.1), the Host header comes from the request target and a
// Via header is added. The client side is proxy/client-connection.ts, the
// server side proxy/origin-client.ts; this joins the two.
import type { Logger } from '../core/logger.js';
import type { ClientExchange, ResponseBody } from './client-connection.js';
import { httpDate } from './client-connection.js';
import type { BodyFraming } from './http1/framing.js';
import { fieldTokens, fieldValues, type HeaderFields, type RequestHead } from './http1/head.js';
import { createOriginClient } from './origin-client.js';
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
  forward(exchange: ClientExchange, target: HttpTarget, route: ForwardRoute): Promise<ForwardOutcome>;
  close(): Promise<void>;
}

const VIA_PSEUDONYM = 'portcullis';
// The body is re-framed on each side, so framing headers stop here as well as hop-by-hop ones;
// Host and Via are written afresh.
const HOP_BY_HOP = ['connection', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
// Credentials for this proxy are ours, and "Expect: 100-continue" is answered here.
const REQUEST_ONLY_FOR_US = new Set([...HOP_BY_HOP, 'proxy-authorization', 'expect', 'host', 'via', 'content-length']);
// A parent's challenge is not the client's to answer.
const RESPONSE_ONLY_FOR_US = new Set([...HOP_BY_HOP, 'proxy-authenticate', 'proxy-authentication-info', 'via']);

/** Whether header `i` of `fields` goes on: not one of `drop`, nor named by the Connection header. */
function isEndToEnd(fields: HeaderFields, i: number, drop: ReadonlySet<string>, named: string[]): boolean {
  const name = fields.lowerNames[i];
  return !drop.has(name) && (named.length === 0 || !named.includes(name));
}

function appendVia(fields: HeaderFields, httpVersion: string): string {
  const prior = fieldValues(fields, 'via').join(', ');
  const ours = `${httpVersion} ${VIA_PSEUDONYM}`;
  return prior ? `${prior}, ${ours}` : ours;
}

/** The request head for the server (origin form) or the parent proxy (absolute form). */
function requestHead(request: RequestHead, target: HttpTarget, authority: string, route: ForwardRoute, body: BodyFraming): string {
  const path = route.kind === 'parent' ? `http://${authority}${target.path}` : target.path;
  let head = `${request.method} ${path} HTTP/1.1\r\nHost: ${authority}\r\n`;
  const named = fieldTokens(request, 'connection');
  for (let i = 0; i < request.names.length; i++) {
    if (isEndToEnd(request, i, REQUEST_ONLY_FOR_US, named)) head += `${request.names[i]}: ${request.values[i]}\r\n`;
  }
  head += `Via: ${appendVia(request, `1.${request.minorVersion}`)}\r\n`;
  if (route.kind === 'parent') {
    const parentAuthorization = parentProxyAuthorization(route.parent);
    if (parentAuthorization) head += `Proxy-Authorization: ${parentAuthorization}\r\n`;
  }
  if (body.kind === 'length') head += `Content-Length: ${body.length}\r\n`;
  if (body.kind === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  return `${head}\r\n`;
}

/** The response's end-to-end header lines for the client, with Via (and Date, when the server sent none). */
function responseHeaderLines(head: HeaderFields, framing: BodyFraming): string {
  const named = fieldTokens(head, 'connection');
  // A length beside a chunked or until-close body is not the body's; the client's framing is ours.
  const dropLength = framing.kind === 'chunked' || framing.kind === 'close';
  let lines = '';
  let dated = false;
  for (let i = 0; i < head.names.length; i++) {
    if (!isEndToEnd(head, i, RESPONSE_ONLY_FOR_US, named)) continue;
    const name = head.lowerNames[i];
    if (dropLength && name === 'content-length') continue;
    if (name === 'date') dated = true;
    lines += `${head.names[i]}: ${head.values[i]}\r\n`;
  }
  lines += `Via: ${appendVia(head, '1.1')}\r\n`;
  return dated ? lines : `${lines}Date: ${httpDate()}\r\n`;
}

function clientBody(framing: BodyFraming): ResponseBody {
  return framing.kind === 'length' ? 'length' : framing.kind === 'none' ? 'none' : 'unknown';
}

export function createForwarder(options: { upstreamTimeoutMs: number; log: Logger }): Forwarder {
  const { log } = options;
  const client = createOriginClient({ timeoutMs: options.upstreamTimeoutMs });

  function forward(exchange: ClientExchange, target: HttpTarget, route: ForwardRoute): Promise<ForwardOutcome> {
    return new Promise((resolve) => {
      const authority = formatAuthority(target.host, target.port, 80);
      const body = exchange.body;
      let bytesIn = 0;
      let bytesOut = 0;
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        resolve({ status: exchange.status === 0 ? 499 : exchange.status, bytesIn, bytesOut });
      };

      if (exchange.aborted) return settle(); // gone while the request was being decided
      const endpoint = route.kind === 'parent' ? parentEndpoint(route.parent) : { host: route.address, port: target.port };
      const origin = client.send(
        { host: endpoint.host, port: endpoint.port, method: exchange.head.method, head: requestHead(exchange.head, target, authority, route, body), body },
        {
          onHead(head, framing) {
            exchange.startResponse(head.status, head.reason, responseHeaderLines(head, framing), clientBody(framing));
          },
          onData(chunk) {
            bytesOut += chunk.length;
            if (exchange.writeBody(chunk)) return true;
            exchange.onDrain(() => origin.resume());
            return false;
          },
          onEnd() {
            exchange.endResponse();
            settle();
          },
          onError(err, responseStarted) {
            if (exchange.aborted) return settle(); // the client has gone; nothing to tell it
            if (responseStarted) {
              // Part of the response is already with the client: all that can be done is to cut it short.
              log.warn({ err, destination: authority }, 'upstream failed mid-response');
              exchange.destroy();
              return settle();
            }
            const failure = describeUpstreamFailure(err, authority, route.kind === 'parent');
            log.info({ err, destination: authority, status: failure.status }, 'upstream failed');
            const title = failure.status === 504 ? 'The site took too long to answer' : 'The site could not be reached';
            bytesOut = sendHtml(exchange, failure.status, errorPage(title, failure.reason));
            settle();
          },
        },
      );

      // Abandoned by the client: stop the upstream request too.
      exchange.onAbort(() => {
        origin.abort();
        settle();
      });

      if (body.kind === 'none') return;
      exchange.readBody(
        (chunk) => {
          bytesIn += chunk.length;
          if (origin.writeBody(chunk)) return true;
          origin.onBodyDrain(() => exchange.resumeBody());
          return false;
        },
        () => origin.endBody(),
        () => origin.abort(),
      );
    });
  }

  return {
    forward,
    async close() {
      client.close();
    },
  };
}
