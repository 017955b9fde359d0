// The logging bench (bench/proxy-logging.ts) checks every phase against the
// origin's own count, the proxy's tallies and the rows access_log gained, and
// fails rather than report a figure when any of them disagree. These tests
// run it compiled, as `npm run bench` does (its proxy and origin are child
// processes started from dist-bench/), briefly: two short pairs of phases on
// the real UT1 lists, and a run on lists too small to be the real ones.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyBenchResult } from '../../bench/proxy-logging.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const benchScript = path.join(root, 'dist-bench', 'bench', 'proxy-logging.js');
const UT1 = '/work/shared/ut1';

const hasWrk = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

function runBench(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [benchScript], { env: { ...process.env, ...env }, timeout: 150_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'bench-proxy-logging-'));
  // The bench's own build, as `npm run bench` makes it.
  execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'bench', 'tsconfig.json')], { stdio: 'inherit' });
}, 120_000);

afterAll(() => rm(scratch, { recursive: true, force: true }));

describe('the proxy-logging bench', () => {
  it.skipIf(!hasWrk)('measures pairs of phases whose counts agree, every request logged on and none off, in ABBA order', async () => {
    const run = await runBench({ BENCH_UT1: UT1, BENCH_PHASE_SECONDS: '1', BENCH_PAIRS: '2', BENCH_CONNECTIONS: '4', BENCH_WARM_UP_SECONDS: '1' });
    expect(run.stderr).not.toMatch(/Error/);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as ProxyBenchResult;
    expect(result.policy.domains).toBeGreaterThan(100_000);
    expect(result.phases.map((p) => p.label)).toEqual(['on 1', 'off 1', 'off 2', 'on 2']);
    for (const phase of result.phases) {
      expect(phase.requests).toBeGreaterThan(0);
      if (phase.logging) {
        // Every request wrk counted is a row; those in flight when it stopped (at most one per connection) are rows too.
        expect(phase.rowsAdded).toBeGreaterThanOrEqual(phase.requests);
        expect(phase.rowsAdded).toBeLessThanOrEqual(phase.requests + 4);
      } else {
        expect(phase.rowsAdded).toBe(0);
      }
    }
    // Each pair compares its own two phases, whichever ran first.
    const rate = (label: string) => result.phases.find((p) => p.label === label)!.requestsPerSecond;
    const expected = [(1 - rate('on 1') / rate('off 1')) * 100, (1 - rate('on 2') / rate('off 2')) * 100];
    expect(result.pairCostsPercent[0]).toBeCloseTo(expected[0], 9);
    expect(result.pairCostsPercent[1]).toBeCloseTo(expected[1], 9);
    expect(result.loggingCostPercent).toBeCloseTo((expected[0] + expected[1]) / 2, 9);
  }, 150_000);

  it('refuses to measure a policy that does not hold the real lists', async () => {
    const lists = path.join(scratch, 'ut1');
    mkdirSync(path.join(lists, 'gambling'), { recursive: true });
    writeFileSync(path.join(lists, 'gambling', 'domains'), '888casino.com\nbet.example\n');
    const run = await runBench({ BENCH_UT1: lists, BENCH_PHASE_SECONDS: '1', BENCH_PAIRS: '1', BENCH_CONNECTIONS: '4', BENCH_WARM_UP_SECONDS: '1' });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/has only 2 listed domains: the UT1 lists did not load/);
    expect(run.stdout).toBe('');
  }, 150_000);
});
