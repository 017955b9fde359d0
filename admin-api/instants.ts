// Times and days as clients write them. The schemas check the form (RFC 3339
// with an offset; YYYY-MM-DD, a real calendar day) and keep the year between
// 1970 and 9999, so every accepted value means the same to JavaScript and to
// Postgres and none reaches the database as an out-of-range error.
import { Type } from 'typebox';
import { badRequest } from './problem.js';

const SANE_YEAR = '^(19[7-9][0-9]|[2-9][0-9]{3})-';

export function DateTime(description: string) {
  return Type.String({ format: 'date-time', pattern: SANE_YEAR, maxLength: 40, description });
}

export function Day(description: string) {
  return Type.String({ format: 'date', pattern: SANE_YEAR, description });
}

const DAY_MS = 86_400_000;

/** Days from `from` to `to`, both YYYY-MM-DD as the schemas above accept them. */
export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS);
}

/** A 400 naming both ends unless `from` comes strictly before `to`. */
export function assertOrdered(from: { name: string; value: string }, to: { name: string; value: string }): void {
  if (Date.parse(to.value) <= Date.parse(from.value)) {
    throw badRequest(`${to.name.split('/').pop()} must come after ${from.name.split('/').pop()}`, [
      { name: to.name, reason: `must be later than ${from.name}` },
    ]);
  }
}
