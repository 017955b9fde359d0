import { describe, expect, it } from 'vitest';
import { medianRun, roundOrder, type LoadFigures, type PeerResult } from '../../bench/peers/measure.js';
import { QuietTally } from '../../bench/peers/quiet.js';
import type { TreeUsage } from '../../bench/peers/proc.js';
import { NODE_RELAY_NAME } from '../../bench/peers/node-relay.js';
import { formatRatios } from '../../bench/peers/ratios.js';
import { formatPeerTable } from '../../bench/peers/table.js';

const MIB = 2 ** 20;
const usage = (rssMiB: number): TreeUsage => ({ processes: 1, cpuSeconds: 1, rssBytes: rssMiB * MIB, pssBytes: rssMiB * MIB });
const load = (requestsPerSecond: number, latencyP99Ms: number, rssMiB: number): LoadFigures => ({
  requests: requestsPerSecond * 10, durationSeconds: 10, requestsPerSecond, latencyP50Ms: 1, latencyP99Ms,
  socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 }, non2xx3xx: 0, cpuSeconds: 1, usage: usage(rssMiB),
});
/**
 * allowed, blocked: one rate for all three rounds, or each round's. lightP99: likewise for the
 * one-connection runs. afterMiB: after the allowed, the one-connection and the blocked loads.
 */
function peer(name: string, figures: { allowed: number | number[]; blocked?: number | number[]; lightP99: number | number[]; idleMiB: number; afterMiB?: number[] }): PeerResult {
  const [allowedMiB, lightMiB, blockedMiB] = figures.afterMiB ?? [figures.idleMiB, figures.idleMiB, figures.idleMiB];
  const rounds = (value: number | number[]) => (typeof value === 'number' ? [value, value, value] : value);
  // The median of three rounds, worked out here rather than by the code under test.
  const middle = (runs: LoadFigures[]) => {
    if (runs.length !== 3) throw new Error('the fixture works out the median of three rounds only');
    return [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[1];
  };
  const allowedRounds = rounds(figures.allowed).map((rate) => load(rate, 5, allowedMiB));
  const blockedRounds = figures.blocked === undefined ? undefined : rounds(figures.blocked).map((rate) => load(rate, 5, blockedMiB));
  return {
    name, version: '1', settings: [], startedIn: 1, idleUsage: usage(figures.idleMiB),
    allowed: middle(allowedRounds),
    allowedRounds,
    lightRuns: rounds(figures.lightP99).map((p99) => load(1000, p99, lightMiB)),
    blocked: blockedRounds === undefined ? undefined : { ...middle(blockedRounds), blockAnswer: '403' },
    blockedRounds,
  };
}

describe('the ratios table', () => {
  const table = formatRatios([
    peer('origin direct (limit)', { allowed: 20_000, lightP99: [9.22, 0.5, 0.45], idleMiB: 60 }),
    // Faster than every peer, but a reference: never the best peer.
    peer(NODE_RELAY_NAME, { allowed: [12_000, 11_000, 10_000], lightP99: 1, idleMiB: 50 }),
    peer('squid (2 workers)', { allowed: 10_000, lightP99: 1, idleMiB: 90 }),
    peer('squid + squidGuard (2 workers)', { allowed: 4_000, blocked: 10_000, lightP99: 1, idleMiB: 600 }),
    peer('Portcullis, 1 process', { allowed: 8_000, blocked: 15_000, lightP99: [1.5, 2.9, 14], idleMiB: 160, afterMiB: [200, 170, 210] }),
    peer('Portcullis, 1 process, 5,000,000 domains', { allowed: 6_000, blocked: 9_000, lightP99: 3, idleMiB: 337, afterMiB: [377, 340, 350] }),
  ]);
  const row = (name: string) => table.split('\n').find((line) => line.startsWith(`| ${name} |`))!.split(' | ');

  it('compares each Portcullis against the best peer, the origin, the Node relay and the best filtering peer, beside the aims; p99 added is taken round by round', () => {
    expect(row('Portcullis, 1 process').slice(1, 7)).toEqual([
      '0.80× (rounds 0.80, 0.80, 0.80; aim ≥ 1×)',
      '0.40× (rounds 0.40, 0.40, 0.40; aim ≥ 0.5×)',
      '0.73× (rounds 0.67, 0.73, 0.80)',
      '1.50× (rounds 1.50, 1.50, 1.50; aim ≥ 2×)',
      '–',
      '2.40 ms (rounds -7.72, 2.40, 13.55; aim < 2 ms)',
    ]);
  });

  it('makes no p99 figure of an origin that was slower alone than through the proxy', () => {
    const disturbed = formatRatios([
      peer('origin direct (limit)', { allowed: 20_000, lightP99: 9.22, idleMiB: 60 }),
      peer('Portcullis, 1 process', { allowed: 8_000, blocked: 15_000, lightP99: 2.16, idleMiB: 160 }),
    ]);
    const cells = disturbed.split('\n').find((line) => line.startsWith('| Portcullis, 1 process |'))!.split(' | ');
    expect(cells[6]).toBe('– (the origin alone had the higher p99 in most rounds: disturbed, measure again)');
  });

  it('names the best peer without the Node relay, and gives the relay against the origin', () => {
    expect(table).toContain('allowed req/s ÷ best peer of each round (squid (2 workers))');
    expect(table).toContain(`${NODE_RELAY_NAME} ÷ origin direct: 0.55× (rounds 0.60, 0.55, 0.50) allowed requests/s.`);
    expect(table).not.toContain(`| ${NODE_RELAY_NAME} |`);
  });

  it('leaves the relay column empty, with no line of its own, when it was not measured', () => {
    const withoutRelay = formatRatios([
      peer('origin direct (limit)', { allowed: 20_000, lightP99: 0.5, idleMiB: 60 }),
      peer('Portcullis, 1 process', { allowed: 8_000, blocked: 15_000, lightP99: 1, idleMiB: 160 }),
    ]);
    expect(withoutRelay.split('\n').find((line) => line.startsWith('| Portcullis, 1 process |'))!.split(' | ')[3]).toBe('–');
    expect(withoutRelay).not.toContain(`${NODE_RELAY_NAME} ÷ origin direct`);
  });

  it('gives memory in MiB, idle and the highest after any request load, with the 400 MB aim for the full lists only', () => {
    expect(table).toContain('| RSS idle / highest after the request loads |');
    expect(row('Portcullis, 1 process')[7]).toBe('160 / 210 MiB |');
    expect(row('Portcullis, 1 process, 5,000,000 domains')[7]).toBe('337 / 377 MiB (aim < 400 MB = 381 MiB) |');
  });
});

describe('the peers table', () => {
  const settings = { seconds: 5, rounds: 3, warmUpSeconds: 3, connections: 50, threads: 2 as const, lightSeconds: 5, tunnels: 3000, idleClients: 1000 };
  const quiet = new QuietTally({ maxBusyCores: 0.25, windowMs: 500, timeoutMs: 20_000 });
  quiet.add({ quiet: true, waitedMs: 1_500, busyCores: 0.1 });
  quiet.add({ quiet: false, waitedMs: 20_200, busyCores: 0.9 });

  it("shows each proxy's median round, and every round's figure", () => {
    const table = formatPeerTable([peer('squid + squidGuard (2 workers)', { allowed: [12_000, 9_000, 10_000], blocked: [8_000, 11_000, 9_500], lightP99: [3.1, 0.31, 0.4], idleMiB: 90 })], settings, quiet);
    const cells = table.split('\n').find((line) => line.startsWith('| squid + squidGuard (2 workers) |'))!.split(' | ');
    expect(cells[1]).toBe('10,000');
    expect(cells[4]).toBe('9,500');
    expect(cells[7]).toBe('1.00 / 0.40');
    expect(table).toContain('allowed req/s: squid + squidGuard (2 workers) 12,000, 9,000, 10,000.');
    expect(table).toContain('Blocked req/s: squid + squidGuard (2 workers) 8,000, 11,000, 9,500.');
    expect(table).toContain('One-connection p99, ms: squid + squidGuard (2 workers) 3.10, 0.31, 0.40.');
  });

  it('says how long the bench waited for a quiet machine, and how many runs went ahead without it', () => {
    const table = formatPeerTable([peer('squid (2 workers)', { allowed: 10_000, lightP99: 1, idleMiB: 90 })], settings, quiet);
    expect(table).toContain('Before each of the 2 timed runs (tunnels and idle clients included) the bench waited for the machine to go quiet (under 0.25 cores busy, all processes, over 500 ms): 22 s of waiting in all; 1 of them went ahead after 20 s without it (up to 0.90 cores busy).');
  });
});

describe('rounds', () => {
  it('take the proxies in the order listed, then reversed, then in order again', () => {
    expect([0, 1, 2].map((round) => roundOrder(['origin', 'portcullis', 'squid'], round).join(' '))).toEqual([
      'origin portcullis squid',
      'squid portcullis origin',
      'origin portcullis squid',
    ]);
  });

  it("give a proxy's figure as its median round, whatever order the rounds came in", () => {
    const runs = [12_000, 9_000, 10_000].map((rate) => load(rate, 5, 100));
    expect(medianRun(runs, (run) => run.requestsPerSecond).requestsPerSecond).toBe(10_000);
    expect(() => medianRun([], (run: LoadFigures) => run.requestsPerSecond)).toThrow(/no runs/);
  });

  it('compare Portcullis with the best peer within each round, and give the median of those ratios', () => {
    // Median over median would pair Portcullis's 6,000 (round 2) with squid's 8,000 (round 3): 0.75×.
    const ratios = formatRatios([
      peer('squid (2 workers)', { allowed: [10_000, 5_000, 8_000], lightP99: 1, idleMiB: 90 }),
      peer('tinyproxy', { allowed: [500, 6_000, 400], lightP99: 1, idleMiB: 3 }),
      peer('Portcullis, 1 process', { allowed: [9_000, 7_200, 4_000], blocked: 15_000, lightP99: 1, idleMiB: 160 }),
    ]);
    const lines = ratios.split('\n');
    expect(lines[0]).toContain('allowed req/s ÷ best peer of each round (squid (2 workers) or tinyproxy)');
    expect(lines.find((line) => line.startsWith('| Portcullis, 1 process |'))!.split(' | ')[1]).toBe('0.90× (rounds 0.90, 1.20, 0.50; aim ≥ 1×)');
  });
});
