import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALLOCATOR_ENVIRONMENT, missingAllocatorSettings, withoutAllocatorSettings } from '../../core/allocator-settings.js';

const repoFile = (name: string): string => readFileSync(new URL(`../../${name}`, import.meta.url), 'utf8');
const settings = Object.entries(ALLOCATOR_ENVIRONMENT).map(([name, value]) => `${name}=${value}`);

describe('the allocator settings Portcullis runs with', () => {
  it('are set by `npm start`', () => {
    const start: string = JSON.parse(repoFile('package.json')).scripts.start;
    expect(start).toMatch(/node dist\/bin\/portcullis\.js start$/);
    for (const setting of settings) expect(start.split(' ')).toContain(setting);
  });

  it('are set by the Docker image', () => {
    const envLines = repoFile('Dockerfile').split('\n').filter((line) => line.startsWith('ENV '));
    for (const setting of settings) expect(envLines.some((line) => line.split(/\s+/).includes(setting))).toBe(true);
  });

  it('are reported as missing when the environment lacks them', () => {
    expect(missingAllocatorSettings({}, 'linux')).toEqual(settings);
    expect(missingAllocatorSettings({ MALLOC_MMAP_THRESHOLD_: '' }, 'linux')).toEqual(settings);
    expect(missingAllocatorSettings({ ...ALLOCATOR_ENVIRONMENT }, 'linux')).toEqual([]);
    // Any value turns glibc's adjustment off: an administrator's own is left alone.
    expect(missingAllocatorSettings({ MALLOC_MMAP_THRESHOLD_: '262144' }, 'linux')).toEqual([]);
  });

  it('count as set when given as glibc tunables instead, and not when other tunables are', () => {
    expect(missingAllocatorSettings({ GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=131072' }, 'linux')).toEqual([]);
    expect(missingAllocatorSettings({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=262144' }, 'linux')).toEqual([]);
    expect(missingAllocatorSettings({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, 'linux')).toEqual(settings);
    expect(missingAllocatorSettings({ GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=' }, 'linux')).toEqual(settings);
  });

  it('as tunables, are kept from what starts inside withoutAllocatorSettings, while the other tunables stay', async () => {
    const before = process.env.GLIBC_TUNABLES;
    try {
      process.env.GLIBC_TUNABLES = 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072';
      expect(await withoutAllocatorSettings(async () => process.env.GLIBC_TUNABLES)).toBe('glibc.malloc.arena_max=2');
      expect(process.env.GLIBC_TUNABLES).toBe('glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072');
      process.env.GLIBC_TUNABLES = 'glibc.malloc.mmap_threshold=131072';
      expect(await withoutAllocatorSettings(async () => 'GLIBC_TUNABLES' in process.env)).toBe(false);
      expect(process.env.GLIBC_TUNABLES).toBe('glibc.malloc.mmap_threshold=131072');
    } finally {
      if (before === undefined) delete process.env.GLIBC_TUNABLES;
      else process.env.GLIBC_TUNABLES = before;
    }
  });

  it('are not asked for where glibc does not read them', () => {
    expect(missingAllocatorSettings({}, 'darwin')).toEqual([]);
  });

  it('are kept from what starts inside withoutAllocatorSettings, and put back after, whether it succeeds or fails', async () => {
    const names = Object.keys(ALLOCATOR_ENVIRONMENT);
    const before = names.map((name) => process.env[name]);
    process.env.MALLOC_MMAP_THRESHOLD_ = '262144'; // an administrator's own value is put back as it was
    try {
      const seen = await withoutAllocatorSettings(async () => names.map((name) => process.env[name]));
      expect(seen).toEqual(names.map(() => undefined));
      expect(process.env.MALLOC_MMAP_THRESHOLD_).toBe('262144');
      await expect(withoutAllocatorSettings(() => Promise.reject(new Error('did not start')))).rejects.toThrow('did not start');
      expect(process.env.MALLOC_MMAP_THRESHOLD_).toBe('262144');
      delete process.env.MALLOC_MMAP_THRESHOLD_;
      await withoutAllocatorSettings(async () => undefined);
      expect('MALLOC_MMAP_THRESHOLD_' in process.env).toBe(false); // not set where it was not
    } finally {
      names.forEach((name, i) => (before[i] === undefined ? delete process.env[name] : (process.env[name] = before[i])));
    }
  });
});
