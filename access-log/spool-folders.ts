// Where each process's access-log spool lives (DATA_DIR/spool for a single
// process, DATA_DIR/spool/worker-N for cluster worker N), and adoption of
// spool files left behind by a writer that no longer runs under the same
// folder: PROXY_WORKERS changed (spool/worker-N for N no longer started, or
// spool/ itself after a switch between one process and several). Before any
// writer starts, their data files are moved into a folder whose writer will
// replay them, numbered after that folder's own files so that each folder
// still replays in order. A folder whose lock a live process holds is left alone.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename } from 'node:fs/promises';
import path from 'node:path';

const DATA_FILE = /^spool-(\d{12})\.jsonl$/;

function heldByAnotherLiveProcess(dir: string): boolean {
  const lock = path.join(dir, 'spool.lock');
  if (!existsSync(lock)) return false;
  const holder = Number(readFileSync(lock, 'utf8').trim());
  if (!Number.isInteger(holder) || holder <= 0 || holder === process.pid) return false;
  try {
    process.kill(holder, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function dataFiles(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((name) => DATA_FILE.test(name)).sort();
}

/** Moves the data files of `sources` into `target`; returns how many files moved. */
export async function adoptSpoolFiles(sources: readonly string[], target: string): Promise<number> {
  await mkdir(target, { recursive: true, mode: 0o700 });
  const existing = await dataFiles(target);
  let nextSeq = existing.length ? Number(DATA_FILE.exec(existing.at(-1)!)![1]) + 1 : 1;
  let moved = 0;
  for (const source of sources) {
    if (path.resolve(source) === path.resolve(target) || heldByAnotherLiveProcess(source)) continue;
    for (const name of await dataFiles(source)) {
      await rename(path.join(source, name), path.join(target, `spool-${String(nextSeq++).padStart(12, '0')}.jsonl`));
      moved++;
    }
  }
  return moved;
}

export function spoolRoot(dataDir: string): string {
  return path.join(dataDir, 'spool');
}

export function workerSpoolDir(dataDir: string, index: number): string {
  return path.join(spoolRoot(dataDir), `worker-${index}`);
}

/** The worker-N folders that exist, with their N. */
export async function workerSpoolFolders(dataDir: string): Promise<Array<{ dir: string; index: number }>> {
  const root = spoolRoot(dataDir);
  if (!existsSync(root)) return [];
  return (await readdir(root, { withFileTypes: true }))
    .filter((entry) => entry.isDirectory() && /^worker-\d+$/.test(entry.name))
    .map((entry) => ({ dir: path.join(root, entry.name), index: Number(entry.name.slice('worker-'.length)) }));
}

/** Before the writers start: gathers every stray spool file into the folders that will be replayed. */
export async function gatherStraySpools(dataDir: string, workers: number): Promise<number> {
  const folders = await workerSpoolFolders(dataDir);
  if (workers <= 1) return adoptSpoolFiles(folders.map((f) => f.dir), spoolRoot(dataDir));
  const orphans = folders.filter((f) => f.index >= workers).map((f) => f.dir);
  return adoptSpoolFiles([spoolRoot(dataDir), ...orphans], workerSpoolDir(dataDir, 0));
}
