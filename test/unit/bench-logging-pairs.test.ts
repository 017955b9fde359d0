// The logging bench's pairs (bench/logging-pairs.ts): the order its phases
// run in, and the cost each pair comes to.
import { describe, expect, it } from 'vitest';
import { loggingCostPercent, pairCostsPercent, phasePlan } from '../../bench/logging-pairs.js';

describe('the logging bench pairs', () => {
  it('runs the pairs in ABBA order: on first in odd pairs, off first in even ones', () => {
    expect(phasePlan(3).map((p) => `${p.label}/${p.pair}/${p.logging ? 'on' : 'off'}`)).toEqual([
      'on 1/1/on', 'off 1/1/off', 'off 2/2/off', 'on 2/2/on', 'on 3/3/on', 'off 3/3/off',
    ]);
  });

  it('compares the two phases of each pair, whichever ran first, and reports the median of the pairs', () => {
    const phases = [
      { pair: 1, logging: true, requestsPerSecond: 9_000 },
      { pair: 1, logging: false, requestsPerSecond: 10_000 },
      { pair: 2, logging: false, requestsPerSecond: 20_000 },
      { pair: 2, logging: true, requestsPerSecond: 19_000 },
      { pair: 3, logging: true, requestsPerSecond: 12_000 },
      { pair: 3, logging: false, requestsPerSecond: 10_000 },
    ];
    const costs = pairCostsPercent(phases);
    expect(costs[0]).toBeCloseTo(10, 9);
    expect(costs[1]).toBeCloseTo(5, 9);
    expect(costs[2]).toBeCloseTo(-20, 9);
    // Not 1 − median(on)/median(off), which is 1 − 12,000/10,000 here.
    expect(loggingCostPercent(phases)).toBeCloseTo(5, 9);
  });

  it('refuses a pair that lacks one of its halves', () => {
    expect(() => pairCostsPercent([{ pair: 1, logging: true, requestsPerSecond: 1 }, { pair: 1, logging: true, requestsPerSecond: 2 }])).toThrow(
      'pair 1 has 2 phases with logging on and 0 off, not one of each',
    );
  });
});
