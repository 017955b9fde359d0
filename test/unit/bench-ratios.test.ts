import { describe, expect, it } from 'vitest';
import type { LoadFigures, PeerResult } from '../../bench/peers/measure.js';
import type { TreeUsage } from '../../bench/peers/proc.js';
import { formatRatios } from '../../bench/peers/ratios.js';
import { formatPeerTable } from '../../bench/peers/table.js';

const MIB = 2 ** 20;
const usage = (rssMiB: number): TreeUsage => ({ processes: 1, cpuSeconds: 1, rssBytes: rssMiB * MIB, pssBytes: rssMiB * MIB });
const load = (requestsPerSecond: number, latencyP99Ms: number, rssMiB: number): LoadFigures => ({
  requests: requestsPerSecond * 10, durationSeconds: 10, requestsPerSecond, latencyP50Ms: 1, latencyP99Ms,
  socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 }, non2xx3xx: 0, cpuSeconds: 1, usage: usage(rssMiB),
});
/** lightP99: one figure for all three one-connection runs, or each run's. afterMiB: after the allowed, the one-connection and the blocked loads. */
function peer(name: string, figures: { allowed: number; blocked?: number; lightP99: number | number[]; idleMiB: number; afterMiB?: number[] }): PeerResult {
  const [allowedMiB, lightMiB, blockedMiB] = figures.afterMiB ?? [figures.idleMiB, figures.idleMiB, figures.idleMiB];
  const lightP99s = typeof figures.lightP99 === 'number' ? [figures.lightP99, figures.lightP99, figures.lightP99] : figures.lightP99;
  return {
    name, version: '1', settings: [], startedIn: 1, idleUsage: usage(figures.idleMiB),
    allowed: load(figures.allowed, 5, allowedMiB),
    lightRuns: lightP99s.map((p99) => load(1000, p99, lightMiB)),
    blocked: figures.blocked === undefined ? undefined : { ...load(figures.blocked, 5, blockedMiB), blockAnswer: '403' },
  };
}

describe('the ratios table', () => {
  const table = formatRatios([
    peer('origin direct (limit)', { allowed: 20_000, lightP99: [9.22, 0.5, 0.45], idleMiB: 60 }),
    peer('squid (2 workers)', { allowed: 10_000, lightP99: 1, idleMiB: 90 }),
    peer('squid + squidGuard (2 workers)', { allowed: 4_000, blocked: 10_000, lightP99: 1, idleMiB: 600 }),
    peer('Portcullis, 1 process', { allowed: 8_000, blocked: 15_000, lightP99: [1.5, 2.9, 14], idleMiB: 160, afterMiB: [200, 170, 210] }),
    peer('Portcullis, 1 process, 5,000,000 domains', { allowed: 6_000, blocked: 9_000, lightP99: 3, idleMiB: 337, afterMiB: [377, 340, 350] }),
  ]);
  const row = (name: string) => table.split('\n').find((line) => line.startsWith(`| ${name} |`))!.split(' | ');

  it('compares each Portcullis against the best peer, the origin and the best filtering peer, beside the aims; p99 added is median run against median run', () => {
    expect(row('Portcullis, 1 process').slice(1, 6)).toEqual(['0.80× (aim ≥ 1×)', '0.40× (aim ≥ 0.5×)', '1.50× (aim ≥ 2×)', '–', '2.40 ms (aim < 2 ms)']);
  });

  it('makes no p99 figure of an origin that was slower alone than through the proxy', () => {
    const disturbed = formatRatios([
      peer('origin direct (limit)', { allowed: 20_000, lightP99: 9.22, idleMiB: 60 }),
      peer('Portcullis, 1 process', { allowed: 8_000, blocked: 15_000, lightP99: 2.16, idleMiB: 160 }),
    ]);
    const cells = disturbed.split('\n').find((line) => line.startsWith('| Portcullis, 1 process |'))!.split(' | ');
    expect(cells[5]).toBe('– (the origin alone had the higher p99, 9.22 against 2.16 ms: disturbed, measure again)');
  });

  it('gives memory in MiB, idle and the highest after any request load, with the 400 MB aim for the full lists only', () => {
    expect(table).toContain('| RSS idle / highest after the request loads |');
    expect(row('Portcullis, 1 process')[6]).toBe('160 / 210 MiB |');
    expect(row('Portcullis, 1 process, 5,000,000 domains')[6]).toBe('337 / 377 MiB (aim < 400 MB = 381 MiB) |');
  });
});

describe('the peers table', () => {
  const settings = { seconds: 10, connections: 50, threads: 2 as const, lightSeconds: 5, tunnels: 3000, idleClients: 1000 };

  it("shows the one-connection run with the median p99, and names every run's p99", () => {
    const table = formatPeerTable([peer('squid (2 workers)', { allowed: 10_000, lightP99: [3.1, 0.31, 0.4], idleMiB: 90 })], settings);
    const cells = table.split('\n').find((line) => line.startsWith('| squid (2 workers) |'))!.split(' | ');
    expect(cells[7]).toBe('1.00 / 0.40');
    expect(table).toContain('the one-connection case 3 runs of 5 s, the run with the median p99 shown (p99 of each run, ms: squid (2 workers) 3.10, 0.31, 0.40)');
  });
});
