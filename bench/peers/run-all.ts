// Every proxy of the comparison, all running at once against the same local
// origin and measured side by side, with the origin on its own as the limit:
// the run behind the peers table in BENCHMARKS.md (bench/run.ts) and
// bench/peers/try.ts.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { runWrk } from '../load.js';
import { writePaddedUt1Folder } from '../padded-lists.js';
import { startE2guardian } from './e2guardian.js';
import { measureSideBySide, originSubject, type MeasureSettings, type SideBySide, type Subject } from './measure.js';
import { startOriginProcess } from './origin.js';
import { startNodeRelay } from './node-relay.js';
import type { RunningPeer } from './peer.js';
import { startPortcullis } from './portcullis.js';
import { freePort } from '../common.js';
import { startSquid } from './squid.js';
import { startSquidGuard } from './squidguard.js';
import { startTinyproxy } from './tinyproxy.js';
import { ORIGIN_HOST, verifyPeer } from './verify.js';

/** The size of the full lists issue 7 sets its memory aim for; portcullis-5m pads the UT1 lists to it. */
const FULL_LIST_DOMAINS = 5_000_000;

type Starter = (options: { dir: string; port: number; lists: string; originPort: number }) => Promise<RunningPeer>;

export const STARTERS: Record<string, Starter> = {
  portcullis: (o) => startPortcullis({ ...o, workers: os.availableParallelism() }),
  'portcullis-1': (o) => startPortcullis({ ...o, workers: 1 }),
  'portcullis-5m': (o) => {
    const lists = path.join(o.dir, 'ut1-padded');
    const padded = writePaddedUt1Folder(o.lists, lists, FULL_LIST_DOMAINS);
    return startPortcullis({ ...o, lists, workers: 1, minimumDomains: padded.syntheticDomains });
  },
  squid: (o) => startSquid(o),
  'squid-1w': (o) => startSquid({ ...o, workers: 1 }),
  squidguard: (o) => startSquidGuard(o),
  'squidguard-1w': (o) => startSquidGuard({ ...o, workers: 1 }),
  e2guardian: (o) => startE2guardian(o),
  tinyproxy: (o) => startTinyproxy(o),
  'node-relay': (o) => startNodeRelay(o),
};

export const DEFAULT_PEERS = ['origin', 'node-relay', 'portcullis', 'portcullis-1', 'portcullis-5m', 'squid', 'squidguard', 'e2guardian', 'tinyproxy'];

/** Checks the names before anything starts, so that a typo fails at once. */
export function checkPeerNames(names: readonly string[]): void {
  const unknown = names.filter((name) => name !== 'origin' && !STARTERS[name]);
  if (unknown.length > 0) throw new Error(`unknown peers ${unknown.join(', ')} (known: origin, ${Object.keys(STARTERS).join(', ')})`);
}

/**
 * Starts every proxy named (and takes the origin on its own as the limit,
 * "origin"), measures them side by side in rounds (measure.ts), then stops
 * them all. They run at once, each in a temp folder of its own.
 */
export async function measureAllPeers(names: readonly string[], settings: MeasureSettings, lists: string, progress: (line: string) => void): Promise<SideBySide> {
  checkPeerNames(names);
  const origin = await startOriginProcess();
  const started: Array<{ peer?: RunningPeer; dir: string }> = [];
  let measuring: unknown;
  try {
    const subjects: Subject[] = [];
    for (const name of names) {
      if (name === 'origin') {
        subjects.push(originSubject(origin));
        continue;
      }
      progress(`starting ${name}…`);
      const entry: (typeof started)[number] = { dir: await mkdtemp(path.join(os.tmpdir(), `portcullis-bench-${name}-`)) };
      started.push(entry);
      const began = performance.now();
      entry.peer = await STARTERS[name]({ dir: entry.dir, port: await freePort(), lists, originPort: origin.port });
      subjects.push({ peer: entry.peer, direct: false, startedIn: (performance.now() - began) / 1_000 });
    }
    return await measureSideBySide(subjects, origin, settings, { progress });
  } catch (err) {
    measuring = err;
    throw err;
  } finally {
    // Every one is stopped and its folder removed even if another would not stop.
    const failures: unknown[] = [];
    for (const { peer, dir } of started) {
      await peer?.stop().catch((err: unknown) => failures.push(err));
      await rm(dir, { recursive: true, force: true }).catch((err: unknown) => failures.push(err));
    }
    await origin.stop().catch((err: unknown) => failures.push(err));
    if (failures.length) {
      const cleanUp = `${failures.length} of the bench's processes or folders could not be cleaned up`;
      // Thrown from here it replaces a measuring error: that one comes first, not lost.
      if (measuring === undefined) throw new AggregateError(failures, cleanUp);
      throw new AggregateError([measuring, ...failures], `measuring failed (${(measuring as Error).message}), and ${cleanUp}`);
    }
  }
}

/** BENCH_PEERS, or every peer. */
export function peerNamesFromEnv(): string[] {
  return process.env.BENCH_PEERS?.split(',').map((name) => name.trim()) ?? DEFAULT_PEERS;
}

/** The side-by-side settings from the BENCH_* variables, each read (and checked) by `read`. */
export function peerSettingsFromEnv(read: (name: string, fallback: number) => number, threads: 1 | 2): MeasureSettings {
  return {
    seconds: read('BENCH_PEER_SECONDS', 5),
    rounds: read('BENCH_PEER_ROUNDS', 3),
    warmUpSeconds: 3,
    connections: read('BENCH_CONNECTIONS', 50),
    threads,
    lightSeconds: 5,
    tunnels: read('BENCH_TUNNELS', 3000),
    idleClients: read('BENCH_IDLE_CLIENTS', 1000),
  };
}

/** The profile's load lasts as long as each proxy's allowed load in all rounds together. */
export function profileSeconds(settings: MeasureSettings): number {
  return settings.seconds * settings.rounds;
}

const MAIN_THREAD_PROFILE = /^CPU\.\d{8}\.\d{6}\.\d+\.0\.\d+\.cpuprofile$/;

/**
 * A CPU profile of one Portcullis process serving allowed requests (wrk,
 * profileSeconds(), the same connections), for "where the time goes". Returns the
 * main thread's .cpuprofile file, written when the process stops.
 */
export async function profilePortcullis(settings: MeasureSettings, lists: string, profileDir: string): Promise<string> {
  const origin = await startOriginProcess();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-profile-'));
  let peer: RunningPeer | undefined;
  try {
    peer = await startPortcullis({ dir, port: await freePort(), lists, originPort: origin.port, workers: 1, cpuProfileDir: profileDir });
    await verifyPeer(peer, origin);
    const result = await runWrk({
      connectPort: peer.port, target: `http://${ORIGIN_HOST}:${origin.port}/`, host: `${ORIGIN_HOST}:${origin.port}`,
      connections: settings.connections, threads: settings.threads, durationSeconds: profileSeconds(settings),
    });
    if (result.requests === 0 || result.non2xx3xx > 0) throw new Error(`profiling run: ${result.requests} requests, ${result.non2xx3xx} not 2xx/3xx`);
  } finally {
    await peer?.stop();
    await rm(dir, { recursive: true, force: true });
    await origin.stop();
  }
  // One profile per thread (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile): the
  // list-building worker thread writes its own; the requests are served by thread 0.
  const files = await readdir(profileDir);
  const mainThread = files.filter((name) => MAIN_THREAD_PROFILE.test(name));
  if (mainThread.length !== 1) {
    throw new Error(`expected one main-thread CPU profile in ${profileDir}, found ${mainThread.length} (files: ${files.join(', ') || 'none'})`);
  }
  return path.join(profileDir, mainThread[0]);
}
