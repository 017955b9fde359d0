import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gatherStraySpools, spoolRoot, workerSpoolDir } from '../../access-log/spool-folders.js';

describe('gathering spool files left by writers that no longer run', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-spool-folders-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  async function spoolFile(dir: string, seq: number, content: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, `spool-${String(seq).padStart(12, '0')}.jsonl`), content);
  }

  async function contents(dir: string): Promise<string[]> {
    const names = (await readdir(dir)).filter((n) => n.startsWith('spool-')).sort();
    return Promise.all(names.map((n) => readFile(path.join(dir, n), 'utf8')));
  }

  it('one process: moves every worker folder’s files into the spool folder, after its own, in order', async () => {
    await spoolFile(spoolRoot(dataDir), 3, 'root-3');
    await spoolFile(workerSpoolDir(dataDir, 0), 1, 'w0-1');
    await spoolFile(workerSpoolDir(dataDir, 0), 2, 'w0-2');
    await spoolFile(workerSpoolDir(dataDir, 1), 7, 'w1-7');
    expect(await gatherStraySpools(dataDir, 1)).toBe(3);
    expect(await contents(spoolRoot(dataDir))).toEqual(['root-3', 'w0-1', 'w0-2', 'w1-7']);
    expect(await contents(workerSpoolDir(dataDir, 0))).toEqual([]);
    expect(await contents(workerSpoolDir(dataDir, 1))).toEqual([]);
  });

  it('two workers: worker 0 takes the single-process files and those of worker 2 and up; worker 1 keeps its own', async () => {
    await spoolFile(spoolRoot(dataDir), 1, 'root-1');
    await spoolFile(workerSpoolDir(dataDir, 0), 4, 'w0-4');
    await spoolFile(workerSpoolDir(dataDir, 1), 1, 'w1-1');
    await spoolFile(workerSpoolDir(dataDir, 2), 1, 'w2-1');
    expect(await gatherStraySpools(dataDir, 2)).toBe(2);
    expect(await contents(workerSpoolDir(dataDir, 0))).toEqual(['w0-4', 'root-1', 'w2-1']);
    expect(await contents(workerSpoolDir(dataDir, 1))).toEqual(['w1-1']);
    expect(await contents(spoolRoot(dataDir))).toEqual([]);
  });

  it('leaves a folder alone while a live process holds its lock, and takes over one left by a dead process', async () => {
    await spoolFile(workerSpoolDir(dataDir, 0), 1, 'held');
    await writeFile(path.join(workerSpoolDir(dataDir, 0), 'spool.lock'), String(process.ppid));
    await spoolFile(workerSpoolDir(dataDir, 1), 1, 'orphaned');
    await writeFile(path.join(workerSpoolDir(dataDir, 1), 'spool.lock'), '2147483646');
    expect(await gatherStraySpools(dataDir, 1)).toBe(1);
    expect(await contents(spoolRoot(dataDir))).toEqual(['orphaned']);
    expect(await contents(workerSpoolDir(dataDir, 0))).toEqual(['held']);
  });

  it('does nothing on a first start', async () => {
    expect(await gatherStraySpools(dataDir, 2)).toBe(0);
    expect(existsSync(workerSpoolDir(dataDir, 0))).toBe(true);
  });
});
