// Resource use of a process tree read from /proc, whole or without a subtree
// (Portcullis without its embedded Postgres), on a real tree of processes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processTree, treeUsage, treeUsageWithout } from '../../bench/peers/proc.js';

describe('a process tree read from /proc', () => {
  let shell: ChildProcess;
  let subshell: number;
  let sleeper: number;
  const pageSize = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());

  beforeAll(async () => {
    // Three levels: a shell, a subshell of its own, and a sleep under that.
    shell = spawn('sh', ['-c', '(sleep 30 & wait) & wait'], { stdio: 'ignore' });
    const deadline = Date.now() + 5_000;
    while (processTree(shell.pid!).length < 3) {
      if (Date.now() > deadline) throw new Error('the test tree did not start');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const below = processTree(shell.pid!).filter((pid) => pid !== shell.pid);
    sleeper = below.find((pid) => comm(pid) === 'sleep')!;
    subshell = below.find((pid) => pid !== sleeper)!;
  });
  afterAll(() => {
    for (const pid of [sleeper, subshell]) if (pid !== undefined) process.kill(pid, 'SIGKILL');
    shell?.kill('SIGKILL');
  });

  function comm(pid: number): string {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  }
  const rssOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[21]) * pageSize;

  it('counts the whole tree', () => {
    const whole = treeUsage(shell.pid!);
    expect(whole.processes).toBe(3);
    expect(whole.rssBytes).toBeGreaterThan(0);
    expect(treeUsageWithout(shell.pid!, () => false).processes).toBe(3);
  });

  it('leaves out a process picked by a predicate and everything under it, read in the same pass', () => {
    expect(treeUsageWithout(shell.pid!, (pid) => comm(pid) === 'sleep').processes).toBe(2);
    // The subshell and the sleep under it go together: the shell alone is left, with its own figures.
    const shellOnly = treeUsageWithout(shell.pid!, (pid) => pid === subshell);
    expect(shellOnly.processes).toBe(1);
    expect(shellOnly.rssBytes).toBe(rssOf(shell.pid!));
  });
});
