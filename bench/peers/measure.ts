// The proxies measured side by side, each case checked against the origin's
// own count so that a figure is only reported when the proxy did what the
// case says: allowed requests all reached the origin and came back 2xx;
// blocked requests never reached it and were all the block answer; every
// CONNECT tunnel carried one request to the origin.
//
// All of them run at once and are measured in rounds: each round gives every
// proxy (and the origin on its own, the limit) one allowed run, one
// one-connection run and, for filtering proxies, one blocked run, in the
// order listed and then reversed in the next round. A proxy's figure is its
// median round. CONNECT tunnels and idle clients are measured once each,
// after the rounds. Measured one after another instead, the same build of
// Portcullis gave 9,691 and 16,162 allowed requests/s ten minutes apart: the
// machine's speed drifts, and a drift must fall on every proxy alike rather
// than on whichever happened to be measured in it. Before each timed run the
// machine is let go quiet (quiet.ts), so that one proxy's leftover work is
// not measured as the next one's slowness.
import { ORIGIN_BODY } from '../common.js';
import { measureConnectTunnels, measureIdleClients, originCountBounds, runWrk, type IdleClientResult, type TunnelResult, type WrkResult } from '../load.js';
import { BLOCKED_TEST_HOST } from './lists.js';
import type { RunningPeer } from './peer.js';
import { treeUsage, type TreeUsage } from './proc.js';
import { DEFAULT_QUIET, QuietTally, waitForQuietMachine, type QuietOptions } from './quiet.js';
import { ORIGIN_HOST, verifyPeer, type CountingOrigin } from './verify.js';

export interface MeasureSettings {
  /** Seconds of each allowed and blocked run (one of each per round). */
  seconds: number;
  /** Rounds over all the proxies; a proxy's figure is its median round. */
  rounds: number;
  /** Seconds of allowed load each proxy gets before any figure, so that figures are of a warm proxy. */
  warmUpSeconds: number;
  connections: number;
  threads: 1 | 2;
  /** Seconds of the one-connection run (p50/p99 at light load), one per round. */
  lightSeconds: number;
  tunnels: number;
  idleClients: number;
}

export interface LoadFigures extends WrkResult {
  /** CPU seconds of the peer's process tree during the run. */
  cpuSeconds: number;
  /** The peer's process tree right after the run. */
  usage: TreeUsage;
}

/** What is measured: a running proxy, or the origin itself (`direct`: origin-form requests straight to it, the limit). */
export interface Subject {
  peer: RunningPeer;
  direct: boolean;
  /** Seconds from starting it to its being ready (0 for the origin). */
  startedIn: number;
}

export interface PeerResult {
  name: string;
  version: string;
  settings: string[];
  startedIn: number;
  /** After start and verification, before load. */
  idleUsage: TreeUsage;
  /** The round with the median allowed rate. */
  allowed: LoadFigures;
  /** Every round's allowed run, in round order. */
  allowedRounds: LoadFigures[];
  /** The one-connection runs, one per round, in order. */
  lightRuns: LoadFigures[];
  /** The round with the median blocked rate, for filtering proxies. */
  blocked?: LoadFigures & { blockAnswer: string };
  blockedRounds?: LoadFigures[];
  tunnels?: TunnelResult;
  idle?: IdleClientResult;
}

export interface OriginWithCount extends CountingOrigin {
  pid: number;
}

export class MeasurementError extends Error {}

/** The run with the median of `value` (the upper middle one of an even count). */
export function medianRun<T>(runs: readonly T[], value: (run: T) => number): T {
  if (runs.length === 0) throw new Error('no runs to take the median of');
  const sorted = [...runs].sort((a, b) => value(a) - value(b));
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * The one-connection run with the median p99. The p99 at light load moves
 * with whatever else the machine does for a moment (one run of the origin
 * alone gave 9.22 ms against its usual 0.1–0.5), so the median run is the
 * one reported, for every peer and the origin alike.
 */
export function medianLightRun(result: Pick<PeerResult, 'lightRuns'>): LoadFigures {
  return medianRun(result.lightRuns, (run) => run.latencyP99Ms);
}

/** Round `round` (from 0) takes the subjects in the order given, the next one in reverse, and so on: no proxy always follows the same one. */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...items] : [...items].reverse();
}

/**
 * The origin's count once it has stopped moving: a proxy may still be
 * forwarding requests it read before wrk closed its connections, and those
 * belong to the run that sent them, not to the next one.
 */
async function settledServed(origin: CountingOrigin): Promise<number> {
  const deadline = Date.now() + 10_000;
  let last = await origin.served();
  let quietSince = Date.now();
  while (Date.now() - quietSince < 300 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = await origin.served();
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    }
  }
  return last;
}

interface CheckedRun {
  figures: LoadFigures;
  served: number;
}

async function loadRun(subject: Subject, origin: CountingOrigin, host: string, connections: number, threads: 1 | 2, seconds: number, countStatus?: number): Promise<CheckedRun> {
  const { peer } = subject;
  const servedBefore = await origin.served();
  const cpuBefore = peer.usage().cpuSeconds;
  const result = await runWrk({
    connectPort: peer.port,
    target: subject.direct ? '/' : `http://${host}:${origin.port}/`,
    host: `${host}:${origin.port}`,
    connections,
    threads,
    durationSeconds: seconds,
    countStatus,
  });
  const usage = peer.usage();
  const served = (await settledServed(origin)) - servedBefore;
  const { output: _output, ...figures } = result;
  return { figures: { ...figures, cpuSeconds: usage.cpuSeconds - cpuBefore, usage }, served };
}

function checkAllowed(name: string, what: string, run: CheckedRun, connections: number): void {
  const { figures, served } = run;
  const bounds = originCountBounds(figures, connections);
  if (figures.requests === 0) throw new MeasurementError(`${name}, ${what}: wrk completed no request`);
  if (figures.non2xx3xx > 0) throw new MeasurementError(`${name}, ${what}: ${figures.non2xx3xx} of ${figures.requests} answers were not 2xx/3xx`);
  if (served < bounds.min || served > bounds.max) {
    throw new MeasurementError(`${name}, ${what}: wrk completed ${figures.requests} requests but the origin served ${served} (expected ${bounds.min}–${bounds.max})`);
  }
}

function checkBlocked(peer: RunningPeer, what: string, run: CheckedRun): void {
  if (run.served !== 0) throw new MeasurementError(`${peer.name}, ${what}: ${run.served} requests for ${BLOCKED_TEST_HOST} reached the origin (the filter was bypassed)`);
  const counted = run.figures.statusCount?.count ?? 0;
  if (run.figures.requests === 0 || counted !== run.figures.requests) {
    throw new MeasurementError(`${peer.name}, ${what}: ${counted} of ${run.figures.requests} answers were the block answer (${peer.blockAnswer?.description})`);
  }
}

export interface SideBySideOptions {
  /** What counts as a quiet machine before each timed run; DEFAULT_QUIET unless given. */
  quiet?: QuietOptions;
  progress?: (line: string) => void;
}

export interface SideBySide {
  results: PeerResult[];
  /** What the waits for a quiet machine before the timed runs came to. */
  quiet: QuietTally;
}

interface Measured {
  subject: Subject;
  idleUsage: TreeUsage;
  allowed: LoadFigures[];
  light: LoadFigures[];
  blocked: LoadFigures[];
}

export async function measureSideBySide(subjects: readonly Subject[], origin: CountingOrigin, settings: MeasureSettings, options: SideBySideOptions = {}): Promise<SideBySide> {
  const quiet = new QuietTally(options.quiet ?? DEFAULT_QUIET);
  const progress = options.progress ?? (() => undefined);
  const waitForQuiet = async (): Promise<void> => quiet.add(await waitForQuietMachine(quiet.options));
  const timedRun = async (...args: Parameters<typeof loadRun>): Promise<CheckedRun> => {
    await waitForQuiet();
    return loadRun(...args);
  };

  const measured: Measured[] = [];
  for (const subject of subjects) {
    if (!subject.direct) await verifyPeer(subject.peer, origin);
    measured.push({ subject, idleUsage: subject.peer.usage(), allowed: [], light: [], blocked: [] });
  }
  // Every proxy gets the same few seconds of allowed load first, so that figures are of a warm proxy
  // (connections to the origin open, code compiled) rather than of its first moments.
  for (const { subject } of measured) {
    checkAllowed(subject.peer.name, 'warm-up', await loadRun(subject, origin, ORIGIN_HOST, settings.connections, settings.threads, settings.warmUpSeconds), settings.connections);
  }

  for (let round = 0; round < settings.rounds; round++) {
    progress(`round ${round + 1} of ${settings.rounds}`);
    for (const m of roundOrder(measured, round)) {
      const { peer } = m.subject;
      const what = (kind: string) => `${kind}, round ${round + 1}`;
      const allowed = await timedRun(m.subject, origin, ORIGIN_HOST, settings.connections, settings.threads, settings.seconds);
      checkAllowed(peer.name, what('allowed'), allowed, settings.connections);
      m.allowed.push(allowed.figures);
      const light = await timedRun(m.subject, origin, ORIGIN_HOST, 1, 1, settings.lightSeconds);
      checkAllowed(peer.name, what('one connection'), light, 1);
      m.light.push(light.figures);
      let line = `allowed ${Math.round(allowed.figures.requestsPerSecond)} req/s, one connection p99 ${light.figures.latencyP99Ms.toFixed(2)} ms`;
      if (peer.blockAnswer) {
        const blocked = await timedRun(m.subject, origin, BLOCKED_TEST_HOST, settings.connections, settings.threads, settings.seconds, peer.blockAnswer.status);
        checkBlocked(peer, what('blocked'), blocked);
        m.blocked.push(blocked.figures);
        line += `, blocked ${Math.round(blocked.figures.requestsPerSecond)} req/s`;
      }
      progress(`  ${peer.name}: ${line}`);
    }
  }

  const results: PeerResult[] = [];
  for (const m of measured) {
    const { peer, direct, startedIn } = m.subject;
    const byRate = (run: LoadFigures) => run.requestsPerSecond;
    const result: PeerResult = {
      name: peer.name, version: peer.version, settings: peer.settings, startedIn, idleUsage: m.idleUsage,
      allowed: medianRun(m.allowed, byRate), allowedRounds: m.allowed, lightRuns: m.light,
    };
    if (peer.blockAnswer) {
      result.blocked = { ...medianRun(m.blocked, byRate), blockAnswer: peer.blockAnswer.description };
      result.blockedRounds = m.blocked;
    }
    if (!direct) {
      await waitForQuiet();
      result.tunnels = await measureTunnels(m.subject, origin, settings);
      progress(`  ${peer.name}: CONNECT ${Math.round(result.tunnels.tunnelsPerSecond)} tunnels/s, ${result.tunnels.failures} failed${result.tunnels.firstFailure ? ` (${result.tunnels.firstFailure})` : ''}`);
      await waitForQuiet();
      const idle = await measureIdleClients({ proxyPort: peer.port, url: `http://${ORIGIN_HOST}:${origin.port}/`, clients: settings.idleClients, usage: () => peer.usage() });
      progress(`  ${peer.name}: ${idle.clients} idle clients: ${idle.failures} failed, ${idle.closedByProxy} closed by the proxy, ${Math.round(idle.rssBytesPerConnection)} B RSS per connection`);
      result.idle = idle;
    }
    results.push(result);
  }
  return { results, quiet };
}

async function measureTunnels(subject: Subject, origin: CountingOrigin, settings: MeasureSettings): Promise<TunnelResult> {
  const servedBefore = await origin.served();
  const tunnels = await measureConnectTunnels({
    proxyPort: subject.peer.port, targetHost: ORIGIN_HOST, targetPort: origin.port, count: settings.tunnels, concurrency: settings.connections, expectBody: ORIGIN_BODY,
  });
  const served = (await settledServed(origin)) - servedBefore;
  if (served !== tunnels.tunnels) throw new MeasurementError(`${subject.peer.name}, CONNECT: ${tunnels.tunnels} tunnels completed but the origin served ${served}`);
  return tunnels;
}

/** The origin on its own as a subject: the same wrk runs straight at it. */
export function originSubject(origin: OriginWithCount): Subject {
  return {
    direct: true,
    startedIn: 0,
    peer: { name: 'origin direct (limit)', version: `Node ${process.version}`, port: origin.port, pid: origin.pid, settings: ['bench/origin-process.ts, 1 KiB answers'], usage: () => treeUsage(origin.pid), stop: async () => undefined },
  };
}
