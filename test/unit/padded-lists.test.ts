// The benchmark's padded UT1 folder (bench/padded-lists.ts): the real lists
// copied as they are, synthetic names appended to adult/domains up to the
// total asked for, none repeating a real line, and the same names every run.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writePaddedUt1Folder } from '../../bench/padded-lists.js';

let work: string;
let source: string;

function writeList(category: string, name: string, text: string): void {
  mkdirSync(path.join(source, category), { recursive: true });
  writeFileSync(path.join(source, category, name), text);
}

const lines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter((line) => line !== '');

beforeEach(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'padded-lists-'));
  source = path.join(work, 'ut1');
  writeList('gambling', 'domains', '888casino.com\nbet.example\n');
  writeList('gambling', 'urls', 'casino.example/poker\n');
  writeList('games', 'domains', '# a comment\nPlay.Example\nbet.example\n');
  // No trailing newline: the padding must still start on a line of its own.
  writeList('adult', 'domains', 'adult.example');
  writeList('adult', 'usage', 'black\n');
});

afterEach(() => rmSync(work, { recursive: true, force: true }));

describe('writePaddedUt1Folder', () => {
  it('copies the lists and pads adult/domains to the total with new names', () => {
    const target = path.join(work, 'padded');
    const padded = writePaddedUt1Folder(source, target, 5_000);
    expect(padded).toEqual({ realDomains: 4, syntheticDomains: 4_996 });

    expect(readFileSync(path.join(target, 'gambling', 'domains'), 'utf8')).toBe('888casino.com\nbet.example\n');
    expect(readFileSync(path.join(target, 'gambling', 'urls'), 'utf8')).toBe('casino.example/poker\n');
    expect(readFileSync(path.join(target, 'games', 'domains'), 'utf8')).toBe('# a comment\nPlay.Example\nbet.example\n');

    const adult = lines(path.join(target, 'adult', 'domains'));
    expect(adult[0]).toBe('adult.example');
    const synthetic = adult.slice(1);
    expect(synthetic).toHaveLength(4_996);
    expect(new Set(synthetic).size).toBe(4_996);
    for (const name of synthetic) expect(name).toMatch(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/);
  });

  it('skips a name the real lists already hold, still reaching the total', () => {
    writePaddedUt1Folder(source, path.join(work, 'first'), 100);
    // The first synthetic name (line 0 is the real adult.example), made a real entry of another category.
    const first = lines(path.join(work, 'first', 'adult', 'domains'))[1];
    writeList('games', 'domains', `play.example\n${first.toUpperCase()}\n`);
    const padded = writePaddedUt1Folder(source, path.join(work, 'second'), 100);
    expect(padded).toEqual({ realDomains: 5, syntheticDomains: 95 });
    expect(lines(path.join(work, 'second', 'adult', 'domains'))).not.toContain(first);
  });

  it('writes the same names on every run', () => {
    writePaddedUt1Folder(source, path.join(work, 'first'), 2_000);
    writePaddedUt1Folder(source, path.join(work, 'second'), 2_000);
    expect(readFileSync(path.join(work, 'second', 'adult', 'domains'), 'utf8')).toBe(readFileSync(path.join(work, 'first', 'adult', 'domains'), 'utf8'));
  });

  it('refuses a target that exists, a folder without lists, and a total it cannot pad to', () => {
    mkdirSync(path.join(work, 'taken'));
    expect(() => writePaddedUt1Folder(source, path.join(work, 'taken'), 100)).toThrow(/already exists/);
    const empty = path.join(work, 'empty');
    mkdirSync(empty);
    expect(() => writePaddedUt1Folder(empty, path.join(work, 'from-empty'), 100)).toThrow(/no domains files/);
    expect(() => writePaddedUt1Folder(source, path.join(work, 'too-small'), 4)).toThrow(/already holds 4 domains/);
  });
});
