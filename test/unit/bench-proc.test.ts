// Resource use of a process tree read from /proc, whole or without a subtree
// (Portcullis without its embedded Postgres), on a real tree of processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processTree, treeUsage, treeUsageWithout } from '../../bench/peers/proc.js';

describe('a process tree read from /proc', () => {
  let shell: ChildProcess;
  let sleeper: number;

  beforeAll(async () => {
    // A shell that waits on a child of its own: a tree of two processes.
    shell = spawn('sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore' });
    const deadline = Date.now() + 5_000;
    while (processTree(shell.pid!).length < 2) {
      if (Date.now() > deadline) throw new Error('the test tree did not start');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    sleeper = processTree(shell.pid!).find((pid) => pid !== shell.pid)!;
  });
  afterAll(() => {
    process.kill(sleeper, 'SIGKILL');
    shell.kill('SIGKILL');
  });

  const comm = (pid: number) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();

  it('counts the whole tree', () => {
    expect(comm(sleeper)).toBe('sleep');
    const whole = treeUsage(shell.pid!);
    expect(whole.processes).toBe(2);
    expect(whole.rssBytes).toBeGreaterThan(0);
  });

  it('leaves out a subtree picked by a predicate, read in the same pass, and keeps the rest', () => {
    const withoutSleep = treeUsageWithout(shell.pid!, (pid) => comm(pid) === 'sleep');
    expect(withoutSleep.processes).toBe(1);
    // What is left is the shell alone: its own figures, read the same way.
    const shellOnly = treeUsageWithout(shell.pid!, (pid) => pid === sleeper);
    expect(shellOnly.processes).toBe(1);
    const statRss = Number(readFileSync(`/proc/${shell.pid}/stat`, 'utf8').split(') ')[1].split(' ')[21]) * 4096;
    expect(withoutSleep.rssBytes).toBe(statRss);
    expect(treeUsageWithout(shell.pid!, () => false).processes).toBe(2);
  });
});
