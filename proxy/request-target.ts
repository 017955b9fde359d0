// Turns what a client asked the proxy for into a normalised RequestTarget:
// the absolute URI of a plain HTTP request ("GET http://host/path HTTP/1.1")
// or the authority of a CONNECT ("CONNECT host:443 HTTP/1.1").
import { normaliseHost, splitHostPort } from '../blocklists/host.js';
import type { RequestTarget } from '../core/policy/types.js';

export interface HttpTarget extends RequestTarget {
  /** Path and query as forwarded and as decided on; never empty. */
  path: string;
}

export type TargetParse<T> =
  | { ok: true; target: T }
  /** `originForm`: the client talked to the proxy as if it were a web server. */
  | { ok: false; originForm: boolean; message: string };

const ABSOLUTE_URI = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#\\]*)([^#]*)/;
// Most paths are already what the WHATWG parser would make of them: nothing
// it would percent-encode, no percent-escapes or dot segments for it to
// resolve, no "\" and no empty query. Those skip the parser, the dearest step
// of a request target.
const ALREADY_NORMAL = /^\/[\w\-.~!$&()*+,;=:@/]*(?:\?[\w\-.~!$&()*+,;=:@/?%]+)?$/;
const DOT_SEGMENT = /\/\.{1,2}(?:[/?]|$)/;

function failure(message: string, originForm = false): { ok: false; originForm: boolean; message: string } {
  return { ok: false, originForm, message };
}

export function parseHttpTarget(requestTarget: string): TargetParse<HttpTarget> {
  if (requestTarget.startsWith('/')) {
    return failure('The request was addressed to the proxy itself, not to a web site.', true);
  }
  if (requestTarget === '*') return failure('"*" requests cannot be sent through a proxy.');
  const match = ABSOLUTE_URI.exec(requestTarget);
  if (!match) return failure('The request target is not an http:// address.');
  const [, scheme, authority, rest] = match;
  if (scheme.toLowerCase() !== 'http') {
    return failure(
      scheme.toLowerCase() === 'https'
        ? 'https:// addresses must be requested with CONNECT; set the proxy for HTTPS as well as HTTP.'
        : `Only http:// addresses can be requested this way, not ${scheme}://.`,
    );
  }
  const hostAndPort = parseAuthority(authority, 80);
  if (!hostAndPort.ok) return hostAndPort;
  // Spelled out, not spread: see newEvent in server.ts for what a spread plus a property costs.
  return { ok: true, target: { host: hostAndPort.target.host, port: hostAndPort.target.port, path: normalisePath(rest) } };
}

/**
 * The path and query as the WHATWG parser leaves them: dot segments ("/a/../b",
 * "/%2e%2e/") resolved and "\" turned into "/", as browsers and most servers
 * do, so the path decided on is the path the server acts on.
 */
export function normalisePath(rest: string): string {
  if (ALREADY_NORMAL.test(rest) && !DOT_SEGMENT.test(rest)) return rest;
  const url = new URL(`http://placeholder${rest.startsWith('/') ? rest : `/${rest}`}`);
  return `${url.pathname}${url.search}`;
}

export function parseConnectAuthority(authority: string): TargetParse<RequestTarget> {
  const parsed = parseAuthority(authority, 0);
  if (parsed.ok && parsed.target.port === 0) return failure('CONNECT needs a host and a port, as in example.com:443.');
  return parsed;
}

function parseAuthority(authority: string, defaultPort: number): TargetParse<RequestTarget> {
  if (authority.includes('@')) return failure('User names and passwords in addresses are not supported.');
  const split = splitHostPort(authority, defaultPort);
  if (!split) return failure(`"${authority}" is not a valid host and port.`);
  const host = normaliseHost(split.host);
  if (host === undefined) return failure(`"${split.host}" is not a valid host name.`);
  return { ok: true, target: { host, port: split.port } };
}

/** host[:port] as written in a Host header or a CONNECT line; IPv6 in brackets, the default port left out. */
export function formatAuthority(host: string, port: number, defaultPort: number): string {
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return port === defaultPort ? hostPart : `${hostPart}:${port}`;
}
