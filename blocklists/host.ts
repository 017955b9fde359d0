// Host normalisation: every hostname the proxy sees (Host header, CONNECT
// authority, TLS SNI, list entry) is reduced to one canonical spelling before
// any lookup, so that "Example.COM.", "0x7f.1" or "[::FFFF:7F00:1]" cannot
// slip past a list entry written as "example.com" or "127.0.0.1".
import net from 'node:net';
import { domainToASCII } from 'node:url';

const MAX_HOST_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

const DOT = 0x2e;
const COLON = 0x3a;
const HYPHEN = 0x2d;
const UNDERSCORE = 0x5f;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const LOWER_A = 0x61;
const LOWER_F = 0x66;
const LOWER_N = 0x6e;
const LOWER_X = 0x78;
const LOWER_Z = 0x7a;
const UPPER_A = 0x41;
const UPPER_Z = 0x5a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * The canonical form of a hostname or IP literal, or undefined when it is not
 * one. Names: lower case, no trailing dot, IDN as punycode. IPv4 in any
 * inet_aton spelling (3232235777, 0300.0250.0.1, 0xC0A80001, 127.1) becomes a
 * dotted quad; IPv6 (brackets optional) becomes RFC 5952 compressed lower case
 * without brackets, and an IPv4-mapped IPv6 address becomes its dotted quad.
 * A canonical lower-case name is returned as the same string.
 */
export function normaliseHost(input: string): string | undefined {
  const length = input.length;
  let hasUpper = false;
  let hasNonAscii = false;
  let hasIpv6Syntax = false;
  let hasPunycode = false;
  // Tracked so that a name already in canonical form is known to be after this one scan.
  let labelsValid = true;
  let labelStart = 0;
  for (let i = 0; i < length; i++) {
    const c = input.charCodeAt(i);
    if ((c >= LOWER_A && c <= LOWER_Z) || (c >= DIGIT_0 && c <= DIGIT_9) || c === UNDERSCORE) continue;
    if (c === DOT) {
      const labelLength = i - labelStart;
      if (labelLength === 0 || labelLength > MAX_LABEL_LENGTH) labelsValid = false;
      labelStart = i + 1;
    } else if (c === HYPHEN) {
      if (i - labelStart === 3 && input.charCodeAt(i - 1) === HYPHEN && isPunycodePrefix(input, labelStart)) hasPunycode = true;
    } else if (c >= UPPER_A && c <= UPPER_Z) hasUpper = true;
    else if (c === COLON || c === OPEN_BRACKET || c === CLOSE_BRACKET) hasIpv6Syntax = true;
    else if (c > 0x7f) hasNonAscii = true;
    else return undefined; // whitespace, controls, '%', '/', '@' and the rest of ASCII punctuation
  }
  const lastLabelLength = length - labelStart;
  const isCanonicalName =
    !hasUpper && !hasNonAscii && !hasIpv6Syntax && !hasPunycode && labelsValid && length <= MAX_HOST_LENGTH &&
    lastLabelLength > 0 && lastLabelLength <= MAX_LABEL_LENGTH && !isNumericLabel(input, labelStart, length);
  if (isCanonicalName) return input;

  if (hasIpv6Syntax) return normaliseIpv6(input);
  if (hasNonAscii) return fromIdn(input);
  const lower = hasUpper ? input.toLowerCase() : input;
  // Punycode labels are validated by the WHATWG host parser too: "xn--zz" is not a name.
  if (hasPunycode) return fromIdn(lower);
  return normaliseAsciiName(lower);
}

/** Whether the label at `start` begins "xn" in either case (the caller has seen the "--" after it). */
function isPunycodePrefix(text: string, start: number): boolean {
  return (text.charCodeAt(start) | 0x20) === LOWER_X && (text.charCodeAt(start + 1) | 0x20) === LOWER_N;
}

function fromIdn(input: string): string | undefined {
  // domainToASCII returns '' for what it cannot convert; what it returns is re-checked by our own rules.
  const ascii = domainToASCII(input);
  if (!/^[a-z0-9._-]+$/.test(ascii)) return undefined;
  return normaliseAsciiName(ascii);
}

/** `name` contains only [a-z0-9._-]. */
function normaliseAsciiName(name: string): string | undefined {
  let end = name.length;
  if (end > 0 && name.charCodeAt(end - 1) === DOT) end--;
  if (end === 0 || end > MAX_HOST_LENGTH) return undefined;
  let labelStart = 0;
  for (let i = 0; i < end; i++) {
    if (name.charCodeAt(i) !== DOT) continue;
    const labelLength = i - labelStart;
    if (labelLength === 0 || labelLength > MAX_LABEL_LENGTH) return undefined;
    labelStart = i + 1;
  }
  const lastLabelLength = end - labelStart;
  if (lastLabelLength === 0 || lastLabelLength > MAX_LABEL_LENGTH) return undefined;
  const host = end === name.length ? name : name.slice(0, end);
  // As in the WHATWG URL parser: a name whose last label is a number is an IPv4 address or nothing.
  if (isNumericLabel(host, labelStart, end)) return normaliseIpv4(host);
  return host;
}

function isNumericLabel(text: string, start: number, end: number): boolean {
  const first = text.charCodeAt(start);
  if (first < DIGIT_0 || first > DIGIT_9) return false;
  let i = start;
  if (first === DIGIT_0 && end - start >= 2 && text.charCodeAt(start + 1) === LOWER_X) {
    i += 2;
    for (; i < end; i++) if (!isHexDigit(text.charCodeAt(i))) return false;
    return true;
  }
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < DIGIT_0 || c > DIGIT_9) return false;
  }
  return true;
}

function isHexDigit(c: number): boolean {
  return (c >= DIGIT_0 && c <= DIGIT_9) || (c >= LOWER_A && c <= LOWER_F);
}

/** Parses one inet_aton part (decimal, 0-prefixed octal, 0x hex); NaN if it is none or exceeds 32 bits. */
function parseIpv4Part(text: string, start: number, end: number): number {
  let radix = 10;
  let i = start;
  if (end - start >= 2 && text.charCodeAt(start) === DIGIT_0 && text.charCodeAt(start + 1) === LOWER_X) {
    radix = 16;
    i += 2;
  } else if (end - start >= 2 && text.charCodeAt(start) === DIGIT_0) {
    radix = 8;
    i += 1;
  }
  let value = 0;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    let digit: number;
    if (c >= DIGIT_0 && c <= DIGIT_9) digit = c - DIGIT_0;
    else if (c >= LOWER_A && c <= LOWER_F) digit = c - LOWER_A + 10;
    else return NaN;
    if (digit >= radix) return NaN;
    value = value * radix + digit;
    if (value > 0xffffffff) return NaN;
  }
  return value; // "0x" alone is 0, as in the WHATWG parser
}

/** `host` is a validated name whose last label is numeric: 1 to 4 inet_aton parts, or invalid. */
function normaliseIpv4(host: string): string | undefined {
  const parts: number[] = [];
  let canonical = true;
  let partStart = 0;
  for (let i = 0; i <= host.length; i++) {
    if (i !== host.length && host.charCodeAt(i) !== DOT) continue;
    if (parts.length === 4) return undefined;
    const value = parseIpv4Part(host, partStart, i);
    if (Number.isNaN(value)) return undefined;
    const isPlainDecimal = host.charCodeAt(partStart) !== DIGIT_0 || i - partStart === 1;
    if (!isPlainDecimal || value > 255) canonical = false;
    parts.push(value);
    partStart = i + 1;
  }
  // Every part but the last is one byte; the last fills the remaining bytes.
  const last = parts.length - 1;
  let address = 0;
  for (let p = 0; p < last; p++) {
    if (parts[p] > 255) return undefined;
    address = address * 256 + parts[p];
  }
  const lastBytes = 4 - last;
  if (parts[last] >= 2 ** (8 * lastBytes)) return undefined;
  address = address * 2 ** (8 * lastBytes) + parts[last];
  if (canonical && parts.length === 4) return host;
  return dottedQuad(address);
}

function dottedQuad(address: number): string {
  return `${Math.floor(address / 0x1000000)}.${Math.floor(address / 0x10000) % 256}.${Math.floor(address / 0x100) % 256}.${address % 256}`;
}

function normaliseIpv6(input: string): string | undefined {
  let address = input;
  if (address.charCodeAt(0) === OPEN_BRACKET && address.charCodeAt(address.length - 1) === CLOSE_BRACKET) {
    address = address.slice(1, -1);
  }
  // isIPv6 also rejects stray brackets; zone ids ("%eth0") never reach here ('%' is refused above).
  if (!net.isIPv6(address)) return undefined;
  const groups = parseIpv6Groups(address.toLowerCase());
  const isIpv4Mapped = groups[5] === 0xffff && groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0;
  if (isIpv4Mapped) return dottedQuad(groups[6] * 0x10000 + groups[7]);
  return formatIpv6(groups);
}

/** The eight 16-bit groups of an address net.isIPv6 accepted. */
function parseIpv6Groups(address: string): number[] {
  const doubleColon = address.indexOf('::');
  const head = doubleColon === -1 ? address : address.slice(0, doubleColon);
  const tail = doubleColon === -1 ? '' : address.slice(doubleColon + 2);
  const headGroups = head === '' ? [] : groupsOf(head);
  const tailGroups = tail === '' ? [] : groupsOf(tail);
  const zeros = new Array<number>(8 - headGroups.length - tailGroups.length).fill(0);
  return [...headGroups, ...zeros, ...tailGroups];
}

function groupsOf(text: string): number[] {
  const groups: number[] = [];
  for (const piece of text.split(':')) {
    if (piece.includes('.')) {
      const [a, b, c, d] = piece.split('.').map(Number);
      groups.push(a * 256 + b, c * 256 + d);
    } else {
      groups.push(parseInt(piece, 16));
    }
  }
  return groups;
}

/** RFC 5952: lower-case hex without leading zeros; the first longest run (two or more) of zero groups as "::". */
function formatIpv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/**
 * Splits an authority ("example.com:8080", "example.com", "[::1]:443", "[::1]")
 * into its raw host (brackets removed, not yet normalised) and port. An empty
 * port ("example.com:") means the default, as RFC 3986 says. Undefined for an
 * empty host, a port that is not 1-65535 in decimal, malformed brackets, or an
 * unbracketed IPv6 address (its last group cannot be told from a port).
 */
export function splitHostPort(authority: string, defaultPort: number): { host: string; port: number } | undefined {
  let host: string;
  let portText: string | undefined;
  if (authority.charCodeAt(0) === OPEN_BRACKET) {
    const close = authority.indexOf(']');
    if (close === -1) return undefined;
    host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (rest !== '' && rest.charCodeAt(0) !== COLON) return undefined;
    if (rest !== '') portText = rest.slice(1);
    if (host.includes('[') || host.includes(']')) return undefined;
  } else {
    const colon = authority.indexOf(':');
    if (colon !== authority.lastIndexOf(':')) return undefined;
    host = colon === -1 ? authority : authority.slice(0, colon);
    if (colon !== -1) portText = authority.slice(colon + 1);
    if (host.includes('[') || host.includes(']')) return undefined;
  }
  if (host === '') return undefined;
  if (portText === undefined || portText === '') return { host, port: defaultPort };
  const port = parsePort(portText);
  return port === undefined ? undefined : { host, port };
}

function parsePort(text: string): number | undefined {
  let port = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < DIGIT_0 || c > DIGIT_9) return undefined;
    port = port * 10 + (c - DIGIT_0);
    if (port > 65535) return undefined;
  }
  return port === 0 ? undefined : port;
}
