import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CATEGORY_KEY_PATTERN, CATEGORY_METADATA, isKnownCategory, metadataFor } from '../../blocklists/categories.js';

const UT1 = '/work/shared/ut1';
const folders = readdirSync(UT1, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);

/** Category names declared in UT1's global_usage ("NAME: <key>" lines). */
function globalUsageNames(): string[] {
  return readFileSync(path.join(UT1, 'global_usage'), 'utf8')
    .split('\n')
    .map((line) => /^NAME:\s+(\S+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

describe('category metadata', () => {
  it('covers the real snapshot: at least 60 category folders', () => {
    expect(folders.length).toBeGreaterThanOrEqual(60);
  });

  it.each(folders)('describes the UT1 folder %s with a name, a description and its usage', (key) => {
    expect(isKnownCategory(key)).toBe(true);
    const m = metadataFor(key);
    expect(m.key).toBe(key);
    expect(m.name.length).toBeGreaterThan(2);
    expect(m.name).not.toBe(key); // a readable name, not the French folder name repeated
    expect(m.description).toMatch(/^[A-Z].{10,}\.$/);
    expect(m.source).toBe('ut1');
    expect(m.illegal).toBe(false);
    const usageFile = path.join(UT1, key, 'usage');
    if (existsSync(usageFile)) {
      const firstWord = readFileSync(usageFile, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .find((l) => l === 'black' || l === 'white');
      expect(m.usage).toBe(firstWord);
    }
  });

  it('describes every category named in global_usage', () => {
    const names = globalUsageNames();
    expect(names.length).toBeGreaterThan(50);
    expect(names.filter((n) => !isKnownCategory(n))).toEqual([]);
  });

  it('has unique, valid keys', () => {
    const keys = CATEGORY_METADATA.map((m) => m.key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const key of keys) expect(key).toMatch(CATEGORY_KEY_PATTERN);
  });

  it('marks iwf and ctiru as licensed illegal content of critical severity, and nothing else as illegal', () => {
    for (const key of ['iwf', 'ctiru']) {
      expect(metadataFor(key)).toMatchObject({ source: 'licensed', illegal: true, severity: 'critical', usage: 'black' });
    }
    expect(CATEGORY_METADATA.filter((m) => m.illegal).map((m) => m.key).sort()).toEqual(['ctiru', 'iwf']);
    expect(CATEGORY_METADATA.filter((m) => m.severity === 'critical').map((m) => m.key).sort()).toEqual(['ctiru', 'iwf']);
  });

  it('maps the UKCIS content classes', () => {
    const classOf = (key: string) => metadataFor(key).ukcisClass;
    expect(classOf('adult')).toBe('pornography');
    expect(classOf('agressif')).toBe('discrimination');
    expect(classOf('drogue')).toBe('drugs');
    expect(classOf('gambling')).toBe('gambling');
    expect(classOf('arjel')).toBe('gambling');
    for (const key of ['malware', 'phishing', 'hacking', 'ddos', 'cryptojacking']) expect(classOf(key)).toBe('malware_hacking');
    expect(classOf('warez')).toBe('piracy');
    expect(classOf('dangerous_material')).toBe('violence');
    expect(classOf('ctiru')).toBe('extremism');
    expect(classOf('sect')).toBeNull();
    expect(classOf('cooking')).toBeNull();
  });

  it('gives a plain, harmless description for an unknown category', () => {
    expect(isKnownCategory('school-local-list')).toBe(false);
    expect(metadataFor('school-local-list')).toMatchObject({
      key: 'school-local-list',
      name: 'school-local-list',
      severity: 'low',
      ukcisClass: null,
      illegal: false,
      usage: 'black',
    });
  });
});
