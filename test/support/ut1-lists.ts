// Reads the UT1 snapshot (/work/shared/ut1, or $UT1_DIR) for tests and
// benchmarks: every category's domains and urls files, checked the way an
// importer would check them, with the lines it would refuse set aside.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { normaliseHost } from '../../blocklists/host.js';

export const ut1Directory = process.env.UT1_DIR ?? '/work/shared/ut1';

export interface Ut1Entry {
  kind: 'domain' | 'url';
  value: string;
  categoryId: number;
}

export interface Ut1Lists {
  /** Category names; a category's id is its index here. */
  categories: string[];
  entries: Ut1Entry[];
  /** Lines refused: a domain normaliseHost rejects, a url without a path or with a host it rejects. */
  rejected: string[];
}

export function loadUt1Lists(directory = ut1Directory): Ut1Lists {
  const categories = readdirSync(directory, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  if (categories.length === 0) throw new Error(`no UT1 categories under ${directory}`);
  const entries: Ut1Entry[] = [];
  const rejected: string[] = [];
  categories.forEach((category, categoryId) => {
    for (const kind of ['domain', 'url'] as const) {
      const file = path.join(directory, category, kind === 'domain' ? 'domains' : 'urls');
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const value = line.trim();
        if (value === '') continue;
        const accepted = acceptedValue(kind, value);
        if (accepted !== undefined) entries.push({ kind, value: accepted, categoryId });
        else rejected.push(`${category}/${kind}s: ${JSON.stringify(line)}`);
      }
    }
  });
  return { categories, entries, rejected };
}

/** A domain as its normalised host; a url as written, once its host part is known to be valid. */
function acceptedValue(kind: 'domain' | 'url', value: string): string | undefined {
  if (kind === 'domain') return normaliseHost(value);
  const slash = value.indexOf('/');
  return slash > 0 && normaliseHost(value.slice(0, slash)) !== undefined ? value : undefined;
}
