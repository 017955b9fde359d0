// The benchmark's Portcullis peer (bench/peers/portcullis.ts) refuses to be
// measured with lists other than the ones it was given: asked for at least
// N domains, it reads the count the policy in service holds from /healthz
// and fails, stopping the program, when it is short. Against the BUILT
// program (dist/), as the benchmark runs it.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPortcullis } from '../../bench/peers/portcullis.js';
import { isLiveProcess } from '../../bench/peers/proc.js';
import { freePort } from '../support/global-postgres.js';

let work: string;
let lists: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'bench-portcullis-'));
  await chmod(work, 0o711); // as root, the embedded Postgres runs as `postgres` and must enter it
  lists = path.join(work, 'ut1');
  mkdirSync(path.join(lists, 'gambling'), { recursive: true });
  writeFileSync(path.join(lists, 'gambling', 'domains'), '888casino.com\nbet.example\n');
  mkdirSync(path.join(lists, 'adult'), { recursive: true });
  writeFileSync(path.join(lists, 'adult', 'domains'), 'adult.example\n');
});

afterAll(() => rm(work, { recursive: true, force: true }));

/** Processes whose command line names `dir`: the embedded Postgres is started with its data folder under it. */
function processesUsing(dir: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

async function start(name: string, minimumDomains: number) {
  const dir = path.join(work, name);
  mkdirSync(dir);
  return startPortcullis({ dir, port: await freePort(), lists, originPort: await freePort(), workers: 1, minimumDomains });
}

describe('the benchmark Portcullis peer checks the lists in service', () => {
  it('names the peer after the domains it serves when there are enough', async () => {
    const peer = await start('enough', 3);
    try {
      expect(peer.name).toBe('Portcullis, 1 process, 3 domains');
      expect(processesUsing(path.join(work, 'enough')).length).toBeGreaterThan(0);
    } finally {
      await peer.stop();
    }
    expect(isLiveProcess(peer.pid)).toBe(false);
    expect(processesUsing(path.join(work, 'enough'))).toEqual([]);
  }, 120_000);

  it('fails loudly, and leaves nothing running, when the policy holds fewer domains than it was given', async () => {
    const failure = await start('short', 4).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    expect(failure?.message).toMatch(/serves 3 domains, fewer than the 4 it was given/);
    expect(processesUsing(path.join(work, 'short'))).toEqual([]);
  }, 120_000);
});
