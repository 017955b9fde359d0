// The wait for a quiet machine before each timed run of the peer benchmark:
// /proc/stat read right, cores busy worked out from two readings, and the
// wait ending when the machine is quiet or giving up when it never is.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { busyCoresBetween, cpuCount, parseCpuTicks, QuietTally, waitForQuietMachine, type CpuTicks } from '../../bench/peers/quiet.js';

// Captured from a 2-core machine: user nice system idle iowait irq softirq steal guest guest_nice.
const PROC_STAT = `cpu  1000 20 300 5000 40 5 6 70 0 0
cpu0 500 10 150 2500 20 3 3 35 0 0
cpu1 500 10 150 2500 20 2 3 35 0 0
intr 12345 0 0
ctxt 67890
`;

describe('reading /proc/stat', () => {
  it('counts user, nice, system, irq and softirq as busy, idle and iowait as idle, and leaves steal out', () => {
    expect(parseCpuTicks(PROC_STAT)).toEqual({ busy: 1000 + 20 + 300 + 5 + 6, total: 1000 + 20 + 300 + 5 + 6 + 5000 + 40 });
  });

  it("reads this machine's /proc/stat", () => {
    const ticks = parseCpuTicks(readFileSync('/proc/stat', 'utf8'));
    expect(ticks.total).toBeGreaterThan(ticks.busy);
    expect(ticks.busy).toBeGreaterThan(0);
  });

  it('counts the CPUs the machine-wide line sums over', () => {
    expect(cpuCount(PROC_STAT)).toBe(2);
    expect(cpuCount(readFileSync('/proc/stat', 'utf8'))).toBeGreaterThan(0);
  });

  it('refuses text without the machine-wide line', () => {
    expect(() => parseCpuTicks('cpu0 1 2 3 4 5 6 7\n')).toThrow(/no machine-wide "cpu" line/);
  });
});

describe('cores busy between two readings', () => {
  it('scales the busy share to the cores', () => {
    expect(busyCoresBetween({ busy: 100, total: 1000 }, { busy: 150, total: 1100 }, 2)).toBe(1);
    expect(busyCoresBetween({ busy: 100, total: 1000 }, { busy: 100, total: 1000 }, 2)).toBe(0);
  });
});

const CORES = 2;

/** Readings (of CORES CPUs) that make each window as busy as the next figure (in cores), then idle; counts the windows read. */
function windows(busyCores: number[]): { readTicks: () => CpuTicks; ended: () => number } {
  let ticks: CpuTicks = { busy: 0, total: 0 };
  let readings = 0;
  return {
    readTicks: () => {
      // The first reading starts the first window; each one after ends a window (and starts the next).
      if (readings++ > 0) {
        const busy = busyCores.shift() ?? 0;
        ticks = { busy: ticks.busy + (busy / CORES) * 100, total: ticks.total + 100 };
      }
      return ticks;
    },
    ended: () => Math.max(0, readings - 1),
  };
}

describe('waiting for a quiet machine', () => {
  // Counted in windows, not wall-clock time: a timer may fire a millisecond
  // early by Date.now(), so a bound in milliseconds would fail now and then.
  it('waits through busy windows and returns at the first quiet one', async () => {
    const machine = windows([1.5, 0.8, 0.1, 2]);
    const wait = await waitForQuietMachine({ maxBusyCores: 0.25, windowMs: 5, timeoutMs: 5_000, readTicks: machine.readTicks, cores: CORES });
    expect(wait.quiet).toBe(true);
    expect(wait.busyCores).toBeCloseTo(0.1);
    expect(machine.ended()).toBe(3);
  });

  it('gives up after its time, says the machine was not quiet, and reads no more', async () => {
    const machine = windows(Array(1000).fill(1));
    const wait = await waitForQuietMachine({ maxBusyCores: 0.25, windowMs: 5, timeoutMs: 40, readTicks: machine.readTicks, cores: CORES });
    expect(wait.quiet).toBe(false);
    expect(wait.busyCores).toBeCloseTo(1);
    // Timed by the same clock as the wait itself, so this holds however late the timers fire.
    expect(wait.waitedMs).toBeGreaterThanOrEqual(40);
    const endedAtGivingUp = machine.ended();
    expect(endedAtGivingUp).toBeGreaterThanOrEqual(1);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(machine.ended()).toBe(endedAtGivingUp);
  });

  it('tallies the waits: time waited, and the runs that went ahead on a busy machine', () => {
    const tally = new QuietTally({ maxBusyCores: 0.25, windowMs: 500, timeoutMs: 20_000 });
    tally.add({ quiet: true, waitedMs: 600, busyCores: 0.1 });
    tally.add({ quiet: false, waitedMs: 20_100, busyCores: 0.7 });
    tally.add({ quiet: false, waitedMs: 20_300, busyCores: 0.5 });
    expect(tally).toMatchObject({ runs: 3, waitedMs: 41_000, notQuiet: 2, highestBusyCores: 0.7 });
  });
});
