// Domain matcher benchmark: the compiled matcher against the naive Map one,
// in the same run, on the real UT1 domains padded with synthetic names to N
// domains.
//
//   npx tsc -p bench/tsconfig.json
//   node --expose-gc dist-bench/bench/matcher.js [domains=5000000] [queries=1000000]
//
// Both builds read the entries the way blocklists/load.ts receives them from
// Postgres (COPY text in chunks, one short-lived string per entry), so the
// build time includes parsing, as a real reload does. Lookups: 90 % misses
// on fresh realistic names, 10 % hits on subdomains of listed domains; the
// query strings are flat, as hostnames parsed from a request are. Prints
// build time, lookups/s (median of TIMED_RUNS passes), bytes per domain.
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { CategoryLookup } from '../core/policy/types.js';
import { type CompiledMatcher, MatcherBuilder } from '../blocklists/matcher.js';
import { NaiveMatcher } from '../test/support/naive-matcher.js';
import { loadUt1Lists } from '../test/support/ut1-lists.js';
import { COMMON_SUBDOMAINS, seededRandom, syntheticNames } from './synthetic-domains.js';

const HIT_SHARE = 0.1;
const TIMED_RUNS = 5;
/** About the size of the chunks a COPY stream delivers. */
const CHUNK_CHARS = 64 * 1024;

function positiveIntegerArgument(index: number, fallback: number): number {
  const text = process.argv[index];
  if (text === undefined) return fallback;
  const value = Number(text.replace(/_/g, ''));
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`argument ${index - 1} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

/** Seconds of CPU this process has used: on a shared machine, steadier than wall time. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

interface Timing {
  wall: number;
  cpu: number;
}

function timed(work: () => void): Timing {
  const [wallStart, cpuStart] = [performance.now(), cpuSeconds()];
  work();
  return { wall: (performance.now() - wallStart) / 1000, cpu: cpuSeconds() - cpuStart };
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
}

/** Median lookups per second over TIMED_RUNS passes, after a warm-up pass; by wall and by CPU time. */
function measureLookups(matcher: CategoryLookup, queries: readonly string[]): { wall: number; cpu: number; hits: number } {
  let hits = 0;
  const pass = (): void => {
    hits = 0;
    for (let i = 0; i < queries.length; i++) if (matcher.matchHost(queries[i]).length > 0) hits++;
  };
  pass();
  const runs = Array.from({ length: TIMED_RUNS }, () => timed(pass));
  return { wall: queries.length / median(runs.map((r) => r.wall)), cpu: queries.length / median(runs.map((r) => r.cpu)), hits };
}

/** The JS heap in use and the bytes of all ArrayBuffers, after full collections. */
function memoryInUse(): { heap: number; arrayBuffers: number } {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect) {
    collect();
    collect();
  }
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heap: heapUsed, arrayBuffers };
}

/** A string with its own flat one-byte storage, as a parsed request's hostname is (not a rope of concatenations). */
function flat(text: string): string {
  return Buffer.from(text, 'latin1').toString('latin1');
}

/** Entries as COPY text lines ("category\tkind\tvalue\n") in chunks. */
class EntryText {
  readonly chunks: string[] = [];
  private current = '';

  add(categoryId: number, kind: 'domain' | 'url', value: string): void {
    this.current += `${categoryId}\t${kind}\t${value}\n`;
    if (this.current.length >= CHUNK_CHARS) {
      this.chunks.push(flat(this.current));
      this.current = '';
    }
  }

  finish(): void {
    if (this.current !== '') this.chunks.push(flat(this.current));
    this.current = '';
  }

  /** Parses every line as blocklists/load.ts does and hands it to `add`. */
  feed(add: (kind: 'domain' | 'url', value: string, categoryId: number) => void): void {
    for (const text of this.chunks) {
      let start = 0;
      for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
        const firstTab = text.indexOf('\t', start);
        const secondTab = text.indexOf('\t', firstTab + 1);
        const kind = text.slice(firstTab + 1, secondTab) as 'domain' | 'url';
        add(kind, text.slice(secondTab + 1, newline), Number(text.slice(start, firstTab)));
        start = newline + 1;
      }
    }
  }
}

function main(): void {
  const domainTarget = positiveIntegerArgument(2, 5_000_000);
  const queryCount = positiveIntegerArgument(3, 1_000_000);
  if (!(globalThis as { gc?: () => void }).gc) console.warn('run node with --expose-gc for heap figures; they will be rough without it');

  const lists = loadUt1Lists();
  const text = new EntryText();
  const listed = new Set<string>();
  for (const entry of lists.entries) {
    text.add(entry.categoryId, entry.kind, entry.value);
    if (entry.kind === 'domain') listed.add(entry.value);
  }
  const realDomains = listed.size;
  const random = seededRandom(20261122);
  const nextName = syntheticNames(random);
  const categoryCount = lists.categories.length;
  while (listed.size < domainTarget) {
    const name = nextName();
    if (listed.has(name)) continue;
    listed.add(name);
    text.add(Math.floor(random() * categoryCount), 'domain', name);
  }
  text.finish();

  // Misses: fresh names from another stream that no entry covers; hits: subdomains of listed names.
  const isCovered = (host: string): boolean => {
    for (let dot = -1; ; dot = host.indexOf('.', dot + 1)) {
      if (listed.has(host.slice(dot + 1))) return true;
      if (host.indexOf('.', dot + 1) === -1) return false;
    }
  };
  const listedNames = [...listed];
  const queryRandom = seededRandom(7);
  const nextQueryName = syntheticNames(queryRandom);
  const queries: string[] = [];
  for (let i = 0; i < queryCount; i++) {
    if (queryRandom() < HIT_SHARE) {
      const name = listedNames[Math.floor(queryRandom() * listedNames.length)];
      queries.push(flat(`${COMMON_SUBDOMAINS[Math.floor(queryRandom() * COMMON_SUBDOMAINS.length)]}.${name}`));
    } else {
      let name = nextQueryName();
      while (isCovered(name)) name = nextQueryName();
      queries.push(flat(name));
    }
  }
  listed.clear();
  listedNames.length = 0;

  const beforeCompiled = memoryInUse();
  let compiled: CompiledMatcher | undefined;
  const compiledBuild = timed(() => {
    const builder = new MatcherBuilder(domainTarget);
    text.feed((kind, value, categoryId) => builder.add(kind, value, categoryId));
    compiled = builder.build();
  });
  if (compiled === undefined) throw new Error('build produced no matcher');
  const afterCompiled = memoryInUse();
  const compiledHeap = afterCompiled.heap + afterCompiled.arrayBuffers - beforeCompiled.heap - beforeCompiled.arrayBuffers;

  const beforeNaive = memoryInUse();
  const naive = new NaiveMatcher();
  const naiveBuild = timed(() => text.feed((kind, value, categoryId) => naive.add(kind, value, categoryId)));
  const afterNaive = memoryInUse();
  const naiveHeap = afterNaive.heap + afterNaive.arrayBuffers - beforeNaive.heap - beforeNaive.arrayBuffers;

  let disagreements = 0;
  for (let i = 0; i < Math.min(queries.length, 100_000); i++) {
    if (compiled.matchHost(queries[i]).join() !== naive.matchHost(queries[i]).join()) disagreements++;
  }

  const compiledLookups = measureLookups(compiled, queries);
  const naiveLookups = measureLookups(naive, queries);

  const domains = compiled.domainCount;
  const row = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
  const perDomain = (bytes: number): string => (bytes / domains).toFixed(1);
  console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, load average before lookups: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`domains: ${domains.toLocaleString('en-GB')} (${realDomains.toLocaleString('en-GB')} real UT1, the rest synthetic); ${compiled.categorySetCount} category sets`);
  console.log(`queries: ${queries.length.toLocaleString('en-GB')}, ${HIT_SHARE * 100} % aimed at listed domains; hits found: compiled ${compiledLookups.hits.toLocaleString('en-GB')}, naive ${naiveLookups.hits.toLocaleString('en-GB')}; disagreements on the first 100 k: ${disagreements}`);
  console.log('');
  // The compiled matcher keeps fingerprints, not text: its typed arrays are all it holds per domain.
  console.log(row(['matcher', 'build s (wall / cpu)', 'M lookups/s (wall / cpu)', 'heap bytes/domain', 'typed-array bytes/domain (no text kept)']));
  console.log(row(['---', '---:', '---:', '---:', '---:']));
  const seconds = (t: Timing): string => `${t.wall.toFixed(2)} / ${t.cpu.toFixed(2)}`;
  const rate = (l: { wall: number; cpu: number }): string => `${(l.wall / 1e6).toFixed(2)} / ${(l.cpu / 1e6).toFixed(2)}`;
  console.log(row(['compiled', seconds(compiledBuild), rate(compiledLookups), perDomain(compiledHeap), perDomain(compiled.memoryBytes)]));
  console.log(row(['naive Map', seconds(naiveBuild), rate(naiveLookups), perDomain(naiveHeap), '–']));
  console.log('');
  console.log(`compiled / naive lookups: ${(compiledLookups.wall / naiveLookups.wall).toFixed(1)}x by wall time, ${(compiledLookups.cpu / naiveLookups.cpu).toFixed(1)}x by CPU time`);
  const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
  console.log(`compiled typed arrays: ${mib(compiled.memoryBytes)} MiB`);
  console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (disagreements > 0) process.exitCode = 1;
}

main();
