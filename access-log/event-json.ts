// The spool's line format before it held COPY rows: one AccessEvent as JSON,
// time as an ISO string. Files left by an earlier version are still replayed;
// eventToJsonLine is what wrote them (tests use it to make such files).
import type { AccessEvent } from '../proxy/types.js';

export function eventToJsonLine(event: AccessEvent): string {
  return `${JSON.stringify(event)}\n`;
}

/** Parses one spool line back into an event; throws on anything that is not one. Field values are checked when the event is encoded for COPY. */
export function eventFromJsonLine(line: string): AccessEvent {
  const parsed: unknown = JSON.parse(line);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
  const record = parsed as Record<string, unknown>;
  if (typeof record.time !== 'string') throw new Error('time is missing');
  const time = new Date(record.time);
  if (Number.isNaN(time.getTime())) throw new Error(`time "${record.time}" is not a date`);
  return { ...(record as unknown as AccessEvent), time };
}
