// What a list entry or an override targets, as an admin types it, reduced to
// the form the matcher and the override index store: a domain is a
// normalised host (covering its subdomains); a url is host + path prefix,
// without a scheme. Anything else is the client's mistake, named.
import { normaliseHost } from '../blocklists/host.js';
import { badRequest } from './problem.js';

export type TargetKind = 'domain' | 'url';

const SCHEME = /^https?:\/\//i;
// A path prefix is visible ASCII or any non-ASCII; no spaces, controls or #fragment.
const PATH_PREFIX = /^\/[^\s\u0000-\u001f\u007f#]*$/;

/** The stored form of `value` as a `kind` target; a 400 naming `field` when it is not one. */
export function normaliseTarget(kind: TargetKind, value: string, field: string): string {
  const text = value.trim().replace(SCHEME, '');
  if (kind === 'domain') {
    // A pasted "example.com/" or ".example.com" still means the site.
    const host = normaliseHost(text.replace(/\/$/, '').replace(/^\./, ''));
    if (host === undefined) {
      throw badRequest(`"${value}" is not a domain name or IP address`, [{ name: field, reason: 'not a valid domain' }]);
    }
    return host;
  }
  const slash = text.indexOf('/');
  if (slash <= 0) {
    throw badRequest(`"${value}" is not a url entry: write host/path (a whole site is a domain entry)`, [
      { name: field, reason: 'not host/path' },
    ]);
  }
  const host = normaliseHost(text.slice(0, slash));
  if (host === undefined) {
    throw badRequest(`"${text.slice(0, slash)}" is not a valid host`, [{ name: field, reason: 'not a valid host' }]);
  }
  const path = text.slice(slash);
  if (!PATH_PREFIX.test(path)) {
    throw badRequest(`the path "${path}" may not contain spaces, control characters or a #fragment`, [
      { name: field, reason: 'not a valid path' },
    ]);
  }
  return host + path;
}
