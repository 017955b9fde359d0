// Turns an AccessEvent into one line of Postgres COPY text format, checking
// every field against the column it goes into first: a batch is one COPY, so
// a single bad value would otherwise fail the whole batch.
import net from 'node:net';
import type { AccessEvent } from '../proxy/types.js';

/** The staging columns, in the order encodeAccessEvent writes them. */
export const COPY_COLUMNS = [
  'id', 'time', 'user_id', 'username', 'group_id', 'client_ip', 'method', 'scheme', 'host', 'port', 'path',
  'categories', 'category', 'action', 'rule', 'rule_kind', 'rule_id', 'status', 'bytes_in', 'bytes_out',
  'duration_ms', 'block_ref',
] as const;

export class InvalidAccessEventError extends Error {
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`access event ${field}: ${problem}`);
    this.name = 'InvalidAccessEventError';
  }
}

const ACTION_RECORDED = { allow: 'allowed', block: 'blocked', monitor: 'monitored' } as const;
const RULE_KINDS = new Set(['illegal', 'override', 'group_rule', 'default', 'safety']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const INT32_MAX = 2_147_483_647;
const SMALLINT_MAX = 32_767;
const NEEDS_ESCAPE = /[\\\t\n\r]/;

/** COPY text escaping: backslash, tab, newline and carriage return are special. */
function escapeCopy(value: string): string {
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

function text(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidAccessEventError(field, `expected a string, got ${typeof value}`);
  // Postgres text cannot hold NUL; refuse rather than alter what was seen.
  if (value.includes('\0')) throw new InvalidAccessEventError(field, 'contains a NUL character');
  return value;
}

function nullableText(field: string, value: unknown): string {
  return value === null ? '\\N' : escapeCopy(text(field, value));
}

function integer(field: string, value: unknown, min: number, max: number): string {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidAccessEventError(field, `expected a whole number from ${min} to ${max}, got ${String(value)}`);
  }
  return String(value);
}

function nullableInteger(field: string, value: unknown, min: number, max: number): string {
  return value === null ? '\\N' : integer(field, value, min, max);
}

/** An IP address for an inet column; an IPv6 zone (fe80::1%eth0) means nothing off this host, so it is dropped. */
function ipAddress(field: string, value: unknown): string {
  const ip = text(field, value).replace(/%.*$/, '');
  if (net.isIP(ip) === 0) throw new InvalidAccessEventError(field, `"${String(value)}" is not an IP address`);
  return ip;
}

/** A text[] literal: every element double-quoted, with " and \ escaped inside the quotes. */
function textArray(field: string, value: unknown): string {
  if (!Array.isArray(value)) throw new InvalidAccessEventError(field, 'expected an array of strings');
  const elements = value.map((v, i) => `"${text(`${field}[${i}]`, v).replace(/["\\]/g, '\\$&')}"`);
  return escapeCopy(`{${elements.join(',')}}`);
}

export interface EncodedAccessEvent {
  /** One COPY text line, with its trailing newline. */
  line: string;
  /** The UTC day (YYYY-MM-DD) whose partition the row goes in. */
  day: string;
}

/** Encodes one event for COPY. Throws InvalidAccessEventError naming the bad field. */
export function encodeAccessEvent(event: AccessEvent): EncodedAccessEvent {
  if (typeof event !== 'object' || event === null) throw new InvalidAccessEventError('event', 'not an object');
  const { identity, decision } = event;
  if (typeof identity !== 'object' || identity === null) throw new InvalidAccessEventError('identity', 'missing');
  if (typeof decision !== 'object' || decision === null) throw new InvalidAccessEventError('decision', 'missing');
  if (typeof event.id !== 'string' || !UUID.test(event.id)) {
    throw new InvalidAccessEventError('id', `"${String(event.id)}" is not a UUID (use crypto.randomUUID())`);
  }
  // Partitions are named by day (access_log_pYYYYMMDD): keep to four-digit years.
  if (!(event.time instanceof Date) || !(event.time.getUTCFullYear() >= 1970 && event.time.getUTCFullYear() <= 9999)) {
    throw new InvalidAccessEventError('time', 'not a valid Date from 1970 to 9999');
  }
  const action = ACTION_RECORDED[decision.action];
  if (action === undefined) throw new InvalidAccessEventError('decision.action', `unknown action "${String(decision.action)}"`);
  if (!RULE_KINDS.has(decision.ruleKind)) {
    throw new InvalidAccessEventError('decision.ruleKind', `unknown rule kind "${String(decision.ruleKind)}"`);
  }
  if (event.scheme !== 'http' && event.scheme !== 'https') {
    throw new InvalidAccessEventError('scheme', `expected http or https, got "${String(event.scheme)}"`);
  }
  // Durations are often measured with performance.now(): round, do not refuse.
  const durationMs = typeof event.durationMs === 'number' ? Math.round(event.durationMs) : event.durationMs;
  const time = event.time.toISOString();
  const fields = [
    event.id.toLowerCase(),
    time,
    nullableInteger('identity.userId', identity.userId, 0, INT32_MAX),
    nullableText('identity.username', identity.username),
    integer('identity.groupId', identity.groupId, 0, INT32_MAX),
    ipAddress('clientIp', event.clientIp),
    escapeCopy(text('method', event.method)),
    event.scheme,
    escapeCopy(text('host', event.host)),
    integer('port', event.port, 0, 65_535),
    nullableText('path', event.path),
    textArray('decision.categories', decision.categories),
    nullableText('decision.category', decision.category),
    action,
    escapeCopy(text('decision.rule', decision.rule)),
    decision.ruleKind,
    nullableInteger('decision.ruleId', decision.ruleId, 0, INT32_MAX),
    integer('status', event.status, 0, SMALLINT_MAX),
    integer('bytesIn', event.bytesIn, 0, Number.MAX_SAFE_INTEGER),
    integer('bytesOut', event.bytesOut, 0, Number.MAX_SAFE_INTEGER),
    integer('durationMs', durationMs, 0, INT32_MAX),
    nullableText('blockRef', event.blockRef),
  ];
  return { line: `${fields.join('\t')}\n`, day: time.slice(0, 10) };
}
