// Reads a process tree's resource use from /proc, so that a peer made of
// several processes (squid with its rewrite helpers and SMP kids) is counted
// whole; bench/lib.ts uses it for the bench's Postgres cluster.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

interface StatLine {
  pid: number;
  state: string;
  ppid: number;
  processGroup: number;
  cpuTicks: number;
  /** CPU of the process's children that have ended and been waited for. */
  reapedChildrenCpuTicks: number;
  rssPages: number;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return clockTicks;
}

let pageBytes: number | undefined;
function pageSize(): number {
  pageBytes ??= Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) || 4096;
  return pageBytes;
}

function readStat(pid: number): StatLine | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
  // The command (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // From the state: state(0) ppid(1) pgrp(2) ... utime(11) stime(12) cutime(13) cstime(14) ... rss(21)
  return {
    pid,
    state: fields[0],
    ppid: Number(fields[1]),
    processGroup: Number(fields[2]),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
    reapedChildrenCpuTicks: Number(fields[13]) + Number(fields[14]),
    rssPages: Number(fields[21]),
  };
}

function allStats(): StatLine[] {
  const stats: StatLine[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat) stats.push(stat);
  }
  return stats;
}

/** The stat lines of the process and all its live descendants, from one reading of /proc. */
function treeStats(rootPid: number): StatLine[] {
  const stats = allStats();
  const tree = new Set<number>(stats.some((s) => s.pid === rootPid) ? [rootPid] : []);
  let grown = true;
  while (grown) {
    grown = false;
    for (const s of stats) {
      if (!tree.has(s.pid) && tree.has(s.ppid)) {
        tree.add(s.pid);
        grown = true;
      }
    }
  }
  return stats.filter((s) => tree.has(s.pid));
}

/** The process and all its live descendants. */
export function processTree(rootPid: number): number[] {
  return treeStats(rootPid).map((s) => s.pid);
}

/** Whether the process exists and is not a zombie. */
export function isLiveProcess(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** Live processes (zombies aside) in a process group: a peer started as a group leader and everything it forked. */
export function processGroupMembers(processGroup: number): number[] {
  return allStats().filter((s) => s.processGroup === processGroup && s.state !== 'Z').map((s) => s.pid);
}

export interface TreeUsage {
  processes: number;
  /**
   * CPU seconds of the tree: each live process's utime + stime and its
   * ended children's (cutime + cstime), so that a helper or autovacuum
   * worker that exits between two readings keeps its share in the total.
   */
  cpuSeconds: number;
  /** Sum of RSS: counts pages shared between the processes once per process. */
  rssBytes: number;
  /** Sum of PSS (/proc/<pid>/smaps_rollup): shared pages divided between their sharers, so the sum is the tree's real share. */
  pssBytes: number;
}

function pssBytes(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function usageOf(stats: readonly StatLine[]): TreeUsage {
  let ticks = 0;
  let rssPages = 0;
  let pss = 0;
  for (const stat of stats) {
    ticks += stat.cpuTicks + stat.reapedChildrenCpuTicks;
    rssPages += stat.rssPages;
    pss += pssBytes(stat.pid);
  }
  return { processes: stats.length, cpuSeconds: ticks / ticksPerSecond(), rssBytes: rssPages * pageSize(), pssBytes: pss };
}

export function treeUsage(rootPid: number): TreeUsage {
  return usageOf(treeStats(rootPid));
}

/**
 * The tree's use without the processes `excluded` picks and their
 * descendants, all from one reading of /proc: two readings (the whole tree,
 * then the part to take away) would disagree whenever a process started or
 * ended between them, a Postgres backend say, and the difference would be off
 * by that process.
 */
export function treeUsageWithout(rootPid: number, excluded: (pid: number) => boolean): TreeUsage {
  const tree = treeStats(rootPid);
  const left = new Set(tree.map((s) => s.pid));
  let shrunk = true;
  while (shrunk) {
    shrunk = false;
    for (const s of tree) {
      if (left.has(s.pid) && (excluded(s.pid) || !left.has(s.ppid)) && s.pid !== rootPid) {
        left.delete(s.pid);
        shrunk = true;
      }
    }
  }
  return usageOf(tree.filter((s) => left.has(s.pid)));
}

/** CPU seconds of this process's children that have ended (a wrk run, once execFile has waited for it). */
export function reapedChildrenCpuSeconds(): number {
  return readStat(process.pid)!.reapedChildrenCpuTicks / ticksPerSecond();
}
