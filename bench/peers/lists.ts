// The UT1 lists the filtering peers load, and which categories they block.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_GROUPS } from '../../core/policy/default-policy.js';

/** The UT1 folder the bench uses unless told otherwise (BENCH_UT1 in bench/run.ts). */
export const DEFAULT_UT1_FOLDER = '/work/shared/ut1';

/**
 * The categories Portcullis blocks for an unidentified client (the default
 * "guests" group) at any time of day, so that the filtering peers block what
 * Portcullis blocks. Those blocked only in school hours are left out so that
 * a run does not depend on the clock.
 */
export const BLOCKED_CATEGORIES: readonly string[] = (() => {
  const guests = DEFAULT_GROUPS.find((group) => group.isDefault);
  if (!guests) throw new Error('the default policy has no default group');
  return [...new Set(guests.blocked)];
})();

/**
 * The listed host the blocked-request case asks for. bench/peers/setup.sh
 * points it at 127.0.0.1 in /etc/hosts, so a peer that wrongly forwards it
 * reaches the local origin (which counts it), never the internet.
 */
export const BLOCKED_TEST_HOST = '888casino.com';
const BLOCKED_TEST_CATEGORY = 'gambling';

export interface ListCategory {
  name: string;
  /** Absolute paths of the category's files, where it has them. */
  domains?: string;
  urls?: string;
  blocked: boolean;
}

/**
 * Every category of a UT1 folder that has a domains or urls file. Throws
 * unless every blocked category is there and the blocked test host is
 * listed, so that a peer is never measured with lists that would not block it.
 */
export function readUt1Categories(folder: string): ListCategory[] {
  const categories: ListCategory[] = [];
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const file = (name: string) => (existsSync(path.join(folder, entry.name, name)) ? path.join(folder, entry.name, name) : undefined);
    const domains = file('domains');
    const urls = file('urls');
    if (domains || urls) categories.push({ name: entry.name, domains, urls, blocked: BLOCKED_CATEGORIES.includes(entry.name) });
  }
  categories.sort((a, b) => a.name.localeCompare(b.name));
  const missing = BLOCKED_CATEGORIES.filter((name) => !categories.some((c) => c.name === name));
  if (missing.length > 0) throw new Error(`UT1 folder ${folder} lacks the blocked categories ${missing.join(', ')}`);
  const testList = categories.find((c) => c.name === BLOCKED_TEST_CATEGORY)?.domains;
  if (!testList || !readFileSync(testList, 'utf8').split('\n').some((line) => line.trim() === BLOCKED_TEST_HOST)) {
    throw new Error(`UT1 folder ${folder}: ${BLOCKED_TEST_HOST} is not in ${BLOCKED_TEST_CATEGORY}/domains, so the blocked-request case would not test blocking`);
  }
  return categories;
}
