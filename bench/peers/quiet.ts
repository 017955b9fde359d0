// Waits for the machine to be quiet before a timed run, so that work left
// over from the run before (a proxy's database writing what it logged,
// autovacuum after an import, a peer still closing connections) is not
// measured as the next peer's slowness. The whole machine's CPU is read
// from /proc/stat, whoever is busy.
import { readFileSync } from 'node:fs';

export interface CpuTicks {
  /** Ticks spent running anything: user, nice, system, irq and softirq. */
  busy: number;
  /** Busy and idle ticks (iowait counts as idle; steal, time the hypervisor gave elsewhere, is left out). */
  total: number;
}

/** The machine-wide CPU line of /proc/stat ("cpu  user nice system idle iowait irq softirq steal …"). */
export function parseCpuTicks(procStat: string): CpuTicks {
  const line = /^cpu\s+(.*)$/m.exec(procStat);
  if (!line) throw new Error('/proc/stat has no machine-wide "cpu" line');
  const [user, nice, system, idle, iowait, irq, softirq] = line[1].trim().split(/\s+/).map(Number);
  if (![user, nice, system, idle, iowait, irq, softirq].every(Number.isFinite)) throw new Error(`/proc/stat's cpu line is not numbers: ${line[0]}`);
  const busy = user + nice + system + irq + softirq;
  return { busy, total: busy + idle + iowait };
}

/** The CPUs /proc/stat's machine-wide line sums over (its cpuN lines), whatever this process may run on. */
export function cpuCount(procStat: string): number {
  return procStat.match(/^cpu\d+\s/gm)?.length ?? 0;
}

/** Cores busy between two readings: 1.5 means one and a half of the machine's cores were in use throughout. */
export function busyCoresBetween(before: CpuTicks, after: CpuTicks, cores: number): number {
  const total = after.total - before.total;
  return total <= 0 ? 0 : ((after.busy - before.busy) / total) * cores;
}

export interface QuietOptions {
  /** Quiet means fewer cores than this busy over one window. */
  maxBusyCores: number;
  windowMs: number;
  /** Give up waiting after this long; the run then goes ahead and the wait is counted as not quiet. */
  timeoutMs: number;
  /** Where the CPU ticks come from; /proc/stat by default. */
  readTicks?: () => CpuTicks;
  /** The CPUs the ticks are summed over; /proc/stat's count by default. */
  cores?: number;
}

export interface QuietWait {
  quiet: boolean;
  waitedMs: number;
  /** Cores busy in the last window. */
  busyCores: number;
}

export const DEFAULT_QUIET: QuietOptions = { maxBusyCores: 0.25, windowMs: 500, timeoutMs: 20_000 };

const procStatTicks = (): CpuTicks => parseCpuTicks(readFileSync('/proc/stat', 'utf8'));
let procStatCores: number | undefined;

export async function waitForQuietMachine(options: QuietOptions = DEFAULT_QUIET): Promise<QuietWait> {
  const readTicks = options.readTicks ?? procStatTicks;
  // The machine's CPUs do not change while the bench runs: counted once.
  const cores = options.cores ?? (procStatCores ??= cpuCount(readFileSync('/proc/stat', 'utf8')));
  const started = Date.now();
  let before = readTicks();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, options.windowMs));
    const after = readTicks();
    const busyCores = busyCoresBetween(before, after, cores);
    before = after;
    const waitedMs = Date.now() - started;
    if (busyCores < options.maxBusyCores) return { quiet: true, waitedMs, busyCores };
    if (waitedMs >= options.timeoutMs) return { quiet: false, waitedMs, busyCores };
  }
}

/** What the waits before a run of timed loads came to, for the report. */
export class QuietTally {
  constructor(readonly options: QuietOptions) {}

  runs = 0;
  waitedMs = 0;
  notQuiet = 0;
  highestBusyCores = 0;

  add(wait: QuietWait): void {
    this.runs++;
    this.waitedMs += wait.waitedMs;
    if (!wait.quiet) {
      this.notQuiet++;
      this.highestBusyCores = Math.max(this.highestBusyCores, wait.busyCores);
    }
  }
}
