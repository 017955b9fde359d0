// A UT1 folder padded with synthetic domains to the size of a full list, to
// measure Portcullis holding the lists issue 7 sizes it for (5 million
// domains). The snapshot's adult category has URLs only, while the full UT1
// adult list alone holds about 4.6 million domains, so the padding goes
// there. Every other category is copied as it is (the import skips symbolic
// links, so they are copies).
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { seededRandom, syntheticNames } from './synthetic-domains.js';

const PADDED_CATEGORY = 'adult';
const LIST_FILES = ['domains', 'urls'];
/** Lines written per write call. */
const LINES_PER_WRITE = 10_000;

export interface PaddedLists {
  /** Distinct lines of the source's domains files. */
  realDomains: number;
  /** Synthetic names appended to adult/domains, none of them equal to a real line. */
  syntheticDomains: number;
}

function domainLines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').map((line) => line.trim().toLowerCase()).filter((line) => line !== '' && !line.startsWith('#'));
}

/**
 * Copies the UT1 folder `source` to `target` (which must not exist) and
 * appends synthetic names to adult/domains until the folder holds
 * `totalDomains` distinct domain lines. Seeded: every run writes the same names.
 */
export function writePaddedUt1Folder(source: string, target: string, totalDomains: number): PaddedLists {
  if (existsSync(target)) throw new Error(`${target} already exists`);
  const real = new Set<string>();
  for (const category of readdirSync(source, { withFileTypes: true })) {
    if (!category.isDirectory()) continue;
    mkdirSync(path.join(target, category.name), { recursive: true });
    for (const name of LIST_FILES) {
      const file = path.join(source, category.name, name);
      if (!existsSync(file)) continue;
      copyFileSync(file, path.join(target, category.name, name));
      if (name === 'domains') for (const line of domainLines(file)) real.add(line);
    }
  }
  if (real.size === 0) throw new Error(`${source} has no domains files: is it a UT1 folder?`);
  if (real.size >= totalDomains) throw new Error(`${source} already holds ${real.size} domains, not fewer than ${totalDomains}`);

  mkdirSync(path.join(target, PADDED_CATEGORY), { recursive: true });
  const fd = openSync(path.join(target, PADDED_CATEGORY, 'domains'), 'a');
  const written = new Set<string>();
  try {
    const nextName = syntheticNames(seededRandom(20261123));
    let lines: string[] = [];
    while (real.size + written.size < totalDomains) {
      const name = nextName();
      if (real.has(name) || written.has(name)) continue;
      written.add(name);
      lines.push(name);
      if (lines.length === LINES_PER_WRITE) {
        writeSync(fd, `\n${lines.join('\n')}`);
        lines = [];
      }
    }
    if (lines.length > 0) writeSync(fd, `\n${lines.join('\n')}`);
    writeSync(fd, '\n');
  } finally {
    closeSync(fd);
  }
  return { realDomains: real.size, syntheticDomains: written.size };
}
