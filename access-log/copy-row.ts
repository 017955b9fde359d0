// Turns an AccessEvent into one line of Postgres COPY text format, checking
// every field against the column it goes into first: a batch is one COPY, so
// a single bad value would otherwise fail the whole batch.
import net from 'node:net';
import type { AccessEvent } from '../proxy/types.js';

/**
 * The COPY columns, in the order rows are written: school_id (supplied by the
 * writer per group, see GroupSchools) and then those encodeAccessEvent writes.
 */
export const COPY_COLUMNS = [
  'school_id', 'id', 'time', 'user_id', 'username', 'group_id', 'client_ip', 'method', 'scheme', 'host', 'port', 'path',
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
/** 10000-01-01T00:00:00Z. */
const YEAR_10000_MS = 253_402_300_800_000;
const SMALLINT_MAX = 32_767;
/** COPY text's special characters, and NUL, which Postgres text cannot hold. */
const SPECIAL = /[\\\t\n\r\0]/;
const QUOTE_OR_BACKSLASH = /["\\]/;

/** COPY text escaping: backslash, tab, newline and carriage return are special. */
function escapeCopy(value: string): string {
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/** A string value as COPY text; most values need no escaping, and cost one scan. */
function text(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidAccessEventError(field, `expected a string, got ${typeof value}`);
  if (!SPECIAL.test(value)) return value;
  // Refuse rather than alter what was seen.
  if (value.includes('\0')) throw new InvalidAccessEventError(field, 'contains a NUL character');
  return escapeCopy(value);
}

function nullableText(field: string, value: unknown): string {
  return value === null ? '\\N' : text(field, value);
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

// Requests come from few addresses at a time: the last one checked is remembered.
let lastAddress = '';

/** An IP address for an inet column; an IPv6 zone (fe80::1%eth0) means nothing off this host, so it is dropped. */
function ipAddress(field: string, value: unknown): string {
  if (value === lastAddress) return value;
  if (typeof value !== 'string') throw new InvalidAccessEventError(field, `expected a string, got ${typeof value}`);
  const zone = value.indexOf('%');
  const ip = zone === -1 ? value : value.slice(0, zone);
  if (net.isIP(ip) === 0) throw new InvalidAccessEventError(field, `"${value}" is not an IP address`);
  if (ip === value) lastAddress = value;
  return ip;
}

/** A text[] literal: every element double-quoted, with " and \ escaped inside the quotes. */
function textArray(field: string, value: unknown): string {
  if (!Array.isArray(value)) throw new InvalidAccessEventError(field, 'expected an array of strings');
  if (value.length === 0) return '{}';
  let literal = '{';
  for (let i = 0; i < value.length; i++) {
    const element: unknown = value[i];
    if (typeof element !== 'string') throw new InvalidAccessEventError(`${field}[${i}]`, `expected a string, got ${typeof element}`);
    if (element.includes('\0')) throw new InvalidAccessEventError(`${field}[${i}]`, 'contains a NUL character');
    const quoted = QUOTE_OR_BACKSLASH.test(element) ? element.replace(/["\\]/g, '\\$&') : element;
    literal += i === 0 ? `"${quoted}"` : `,"${quoted}"`;
  }
  literal += '}';
  return SPECIAL.test(literal) ? escapeCopy(literal) : literal;
}

export interface EncodedAccessEvent {
  /** The COPY text line after the school_id column: a tab, the event's columns, the newline. One flat string. */
  line: string;
  /** The group whose school goes in front of the line. */
  groupId: number;
  /** The UTC day (YYYY-MM-DD) whose partition the row goes in. */
  day: string;
}

/**
 * The time as COPY text and its UTC day. Events come in time order, so the
 * formatted second is reused until the second changes, instead of a
 * toISOString() and two slices per event.
 */
const timeCache = { second: Number.NaN, prefix: '', day: '' };
function utcTime(time: Date): { text: string; day: string } {
  const ms = time.getTime();
  const second = Math.floor(ms / 1000);
  if (second !== timeCache.second) {
    const iso = time.toISOString();
    timeCache.second = second;
    timeCache.prefix = iso.slice(0, 20); // YYYY-MM-DDTHH:MM:SS.
    timeCache.day = iso.slice(0, 10);
  }
  const millis = ms - second * 1000;
  return { text: `${timeCache.prefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`, day: timeCache.day };
}

/** Encodes one event for COPY. Throws InvalidAccessEventError naming the bad field. */
export function encodeAccessEvent(event: AccessEvent): EncodedAccessEvent {
  if (typeof event !== 'object' || event === null) throw new InvalidAccessEventError('event', 'not an object');
  const { identity, decision } = event;
  if (typeof identity !== 'object' || identity === null) throw new InvalidAccessEventError('identity', 'missing');
  if (typeof decision !== 'object' || decision === null) throw new InvalidAccessEventError('decision', 'missing');
  if (typeof event.id !== 'string' || !UUID.test(event.id)) {
    throw new InvalidAccessEventError('id', `"${String(event.id)}" is not a UUID (use newEventId())`);
  }
  // Partitions are named by day (access_log_pYYYYMMDD): keep to four-digit years.
  if (!(event.time instanceof Date) || !(event.time.getTime() >= 0 && event.time.getTime() < YEAR_10000_MS)) {
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
  const time = utcTime(event.time);
  const groupId = integer('identity.groupId', identity.groupId, 0, INT32_MAX);
  // Joined from an array, the line is one flat string: it may wait in the queue a while.
  const line = [
    '', // the school_id column comes first
    event.id.toLowerCase(),
    time.text,
    nullableInteger('identity.userId', identity.userId, 0, INT32_MAX),
    nullableText('identity.username', identity.username),
    groupId,
    ipAddress('clientIp', event.clientIp),
    text('method', event.method),
    event.scheme,
    text('host', event.host),
    integer('port', event.port, 0, 65_535),
    nullableText('path', event.path),
    textArray('decision.categories', decision.categories),
    nullableText('decision.category', decision.category),
    action,
    text('decision.rule', decision.rule),
    decision.ruleKind,
    nullableInteger('decision.ruleId', decision.ruleId, 0, INT32_MAX),
    integer('status', event.status, 0, SMALLINT_MAX),
    integer('bytesIn', event.bytesIn, 0, Number.MAX_SAFE_INTEGER),
    integer('bytesOut', event.bytesOut, 0, Number.MAX_SAFE_INTEGER),
    integer('durationMs', durationMs, 0, INT32_MAX),
    `${nullableText('blockRef', event.blockRef)}\n`,
  ].join('\t');
  return { line, groupId: identity.groupId as number, day: time.day };
}

const SPOOLED_FIELDS = COPY_COLUMNS.length - 1;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const WHOLE_NUMBER = /^\d{1,10}$/;

/** How an encoded row is kept in the spool: its line without the leading tab (the school column's place), newline included. */
export function encodedToSpoolLine(row: EncodedAccessEvent): string {
  return row.line.slice(1);
}

/**
 * Reads back a spooled row, checking its shape (column count, id, time,
 * group) so that a damaged line is set aside here; Postgres checks the rest
 * of the values when the row is copied.
 */
export function encodedFromSpoolLine(text: string): EncodedAccessEvent {
  const fields = text.split('\t');
  if (fields.length !== SPOOLED_FIELDS) throw new Error(`expected ${SPOOLED_FIELDS} tab-separated columns, got ${fields.length}`);
  const [id, time, , , group] = fields;
  if (!UUID.test(id)) throw new Error(`id "${id}" is not a UUID`);
  if (!ISO_TIME.test(time)) throw new Error(`time "${time}" is not a UTC time`);
  const groupId = Number(group);
  if (!WHOLE_NUMBER.test(group) || groupId > INT32_MAX) throw new Error(`group "${group}" is not a group id`);
  return { line: `\t${text}\n`, groupId, day: time.slice(0, 10) };
}
