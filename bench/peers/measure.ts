// One peer proxy measured case by case, each case checked against the
// origin's own count so that a figure is only reported when the peer did
// what the case says: allowed requests all reached the origin and came back
// 2xx; blocked requests never reached it and were all the block answer;
// every CONNECT tunnel carried one request to the origin.
import { ORIGIN_BODY } from '../common.js';
import { measureConnectTunnels, measureIdleClients, originCountBounds, runWrk, type IdleClientResult, type TunnelResult, type WrkResult } from '../load.js';
import { BLOCKED_TEST_HOST } from './lists.js';
import type { OriginProcess } from './origin.js';
import type { RunningPeer } from './peer.js';
import type { TreeUsage } from './proc.js';
import { ORIGIN_HOST, verifyPeer } from './verify.js';

export interface MeasureSettings {
  seconds: number;
  connections: number;
  threads: 1 | 2;
  /** Seconds of the one-connection run (p50/p99 at light load). */
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

export interface PeerResult {
  name: string;
  version: string;
  settings: string[];
  startedIn: number;
  /** After start and verification, before load. */
  idleUsage: TreeUsage;
  allowed: LoadFigures;
  /** The one-connection runs, LIGHT_RUNS of them, in order. */
  lightRuns: LoadFigures[];
  blocked?: LoadFigures & { blockAnswer: string };
  tunnels?: TunnelResult;
  idle?: IdleClientResult;
}

export class MeasurementError extends Error {}

const WARM_UP_SECONDS = 3;
/**
 * One-connection runs per peer. The p99 at light load moves with whatever
 * else the machine does for a moment (one run of the origin alone gave
 * 9.22 ms against its usual 0.1–0.5), so the run with the median p99 is the
 * one reported, for every peer and the origin alike.
 */
export const LIGHT_RUNS = 3;

/** The one-connection run with the median p99. */
export function medianLightRun(result: Pick<PeerResult, 'lightRuns'>): LoadFigures {
  const byP99 = [...result.lightRuns].sort((a, b) => a.latencyP99Ms - b.latencyP99Ms);
  return byP99[Math.floor(byP99.length / 2)];
}

/**
 * The origin's count once it has stopped moving: a proxy may still be
 * forwarding requests it read before wrk closed its connections, and those
 * belong to the run that sent them, not to the next one.
 */
async function settledServed(origin: OriginProcess): Promise<number> {
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

async function loadRun(peer: RunningPeer, origin: OriginProcess, host: string, connections: number, threads: 1 | 2, seconds: number, countStatus?: number): Promise<{ figures: LoadFigures; served: number }> {
  const servedBefore = await origin.served();
  const cpuBefore = peer.usage().cpuSeconds;
  const result = await runWrk({
    connectPort: peer.port,
    target: `http://${host}:${origin.port}/`,
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

/** LIGHT_RUNS runs at one connection, each checked against the origin's count. */
async function lightRuns(name: string, run: () => Promise<{ figures: LoadFigures; served: number }>): Promise<LoadFigures[]> {
  const runs: LoadFigures[] = [];
  for (let i = 1; i <= LIGHT_RUNS; i++) {
    const light = await run();
    checkAllowed(name, `one connection, run ${i}`, light, 1);
    runs.push(light.figures);
  }
  return runs;
}

function checkAllowed(name: string, what: string, run: { figures: LoadFigures; served: number }, connections: number): void {
  const { figures, served } = run;
  const bounds = originCountBounds(figures, connections);
  if (figures.requests === 0) throw new MeasurementError(`${name}, ${what}: wrk completed no request`);
  if (figures.non2xx3xx > 0) throw new MeasurementError(`${name}, ${what}: ${figures.non2xx3xx} of ${figures.requests} answers were not 2xx/3xx`);
  if (served < bounds.min || served > bounds.max) {
    throw new MeasurementError(`${name}, ${what}: wrk completed ${figures.requests} requests but the origin served ${served} (expected ${bounds.min}–${bounds.max})`);
  }
}

export async function measurePeer(peer: RunningPeer, origin: OriginProcess, settings: MeasureSettings, startedIn: number): Promise<PeerResult> {
  await verifyPeer(peer, origin);
  const idleUsage = peer.usage();
  const log = (line: string) => console.error(`  ${peer.name}: ${line}`);

  // Every proxy gets the same few seconds of allowed load first, so that figures are of a warm proxy
  // (connections to the origin open, code compiled) rather than of its first moments.
  const warmUp = await loadRun(peer, origin, ORIGIN_HOST, settings.connections, settings.threads, WARM_UP_SECONDS);
  checkAllowed(peer.name, 'warm-up', warmUp, settings.connections);

  const allowed = await loadRun(peer, origin, ORIGIN_HOST, settings.connections, settings.threads, settings.seconds);
  checkAllowed(peer.name, 'allowed', allowed, settings.connections);
  log(`allowed ${Math.round(allowed.figures.requestsPerSecond)} req/s`);

  const light = await lightRuns(peer.name, () => loadRun(peer, origin, ORIGIN_HOST, 1, 1, settings.lightSeconds));
  log(`one connection p99 ${light.map((run) => run.latencyP99Ms.toFixed(2)).join(', ')} ms`);

  let blocked: PeerResult['blocked'];
  if (peer.blockAnswer) {
    const run = await loadRun(peer, origin, BLOCKED_TEST_HOST, settings.connections, settings.threads, settings.seconds, peer.blockAnswer.status);
    if (run.served !== 0) throw new MeasurementError(`${peer.name}, blocked: ${run.served} requests for ${BLOCKED_TEST_HOST} reached the origin (the filter was bypassed)`);
    const counted = run.figures.statusCount?.count ?? 0;
    if (run.figures.requests === 0 || counted !== run.figures.requests) {
      throw new MeasurementError(`${peer.name}, blocked: ${counted} of ${run.figures.requests} answers were the block answer (${peer.blockAnswer.description})`);
    }
    blocked = { ...run.figures, blockAnswer: peer.blockAnswer.description };
    log(`blocked ${Math.round(run.figures.requestsPerSecond)} req/s`);
  }

  const servedBeforeTunnels = await origin.served();
  const tunnels = await measureConnectTunnels({
    proxyPort: peer.port, targetHost: ORIGIN_HOST, targetPort: origin.port, count: settings.tunnels, concurrency: settings.connections, expectBody: ORIGIN_BODY,
  });
  const servedByTunnels = (await settledServed(origin)) - servedBeforeTunnels;
  if (servedByTunnels !== tunnels.tunnels) throw new MeasurementError(`${peer.name}, CONNECT: ${tunnels.tunnels} tunnels completed but the origin served ${servedByTunnels}`);
  log(`CONNECT ${Math.round(tunnels.tunnelsPerSecond)} tunnels/s, ${tunnels.failures} failed${tunnels.firstFailure ? ` (${tunnels.firstFailure})` : ''}`);

  const idle = await measureIdleClients({ proxyPort: peer.port, url: `http://${ORIGIN_HOST}:${origin.port}/`, clients: settings.idleClients, usage: () => peer.usage() });
  log(`${idle.clients} idle clients: ${idle.failures} failed, ${idle.closedByProxy} closed by the proxy, ${Math.round(idle.rssBytesPerConnection)} B RSS per connection`);

  return { name: peer.name, version: peer.version, settings: peer.settings, startedIn, idleUsage, allowed: allowed.figures, lightRuns: light, blocked, tunnels, idle };
}

/** The origin on its own, the limit: the same wrk runs straight at it. */
export async function measureOriginDirect(origin: OriginProcess, settings: MeasureSettings, usage: () => TreeUsage): Promise<PeerResult> {
  const direct: RunningPeer = { name: 'origin direct (limit)', version: `Node ${process.version}`, port: origin.port, pid: origin.pid, settings: ['bench/origin-process.ts, 1 KiB answers'], usage, stop: async () => undefined };
  const run = async (connections: number, threads: 1 | 2, seconds: number) => {
    const servedBefore = await origin.served();
    const cpuBefore = usage().cpuSeconds;
    const { output: _output, ...figures } = await runWrk({ connectPort: origin.port, target: '/', host: `${ORIGIN_HOST}:${origin.port}`, connections, threads, durationSeconds: seconds });
    const after = usage();
    return { figures: { ...figures, cpuSeconds: after.cpuSeconds - cpuBefore, usage: after }, served: (await settledServed(origin)) - servedBefore };
  };
  checkAllowed(direct.name, 'warm-up', await run(settings.connections, settings.threads, WARM_UP_SECONDS), settings.connections);
  const allowed = await run(settings.connections, settings.threads, settings.seconds);
  checkAllowed(direct.name, 'allowed', allowed, settings.connections);
  const light = await lightRuns(direct.name, () => run(1, 1, settings.lightSeconds));
  return { name: direct.name, version: direct.version, settings: direct.settings, startedIn: 0, idleUsage: usage(), allowed: allowed.figures, lightRuns: light };
}
