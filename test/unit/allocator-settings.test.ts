import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALLOCATOR_ENVIRONMENT, missingAllocatorSettings } from '../../core/allocator-settings.js';

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

  it('are not asked for where glibc does not read them', () => {
    expect(missingAllocatorSettings({}, 'darwin')).toEqual([]);
  });
});
