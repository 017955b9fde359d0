// Domain matcher benchmark: the compiled matcher against the naive Map one,
// on the real UT1 domains padded with synthetic names to N domains.
//
//   npx tsc --outDir /tmp/benchbuild -p tsconfig.json
//   node --expose-gc /tmp/benchbuild/bench/matcher.js [domains=5000000] [queries=1000000]
//
// Prints build time, lookups/s (90 % misses on random realistic hosts, 10 %
// hits on subdomains of listed domains) and bytes per domain.
import { performance } from 'node:perf_hooks';
import type { CategoryLookup } from '../core/policy/types.js';
import { type CompiledMatcher, MatcherBuilder } from '../blocklists/matcher.js';
import { NaiveMatcher } from '../test/support/naive-matcher.js';
import { loadUt1Lists } from '../test/support/ut1-lists.js';

const HIT_SHARE = 0.1;
const TIMED_RUNS = 3;

function positiveIntegerArgument(index: number, fallback: number): number {
  const text = process.argv[index];
  if (text === undefined) return fallback;
  const value = Number(text.replace(/_/g, ''));
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`argument ${index - 1} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

/** mulberry32: a small seeded generator, so every run sees the same names. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = 'ba be bi bo bu ca co cu da de di do fa fe fi go ha he hi ho ja jo ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo wa we xa ya yo za zo an en in on un ar er ir or ur al el il ol ex ix ox st tr pr gr bl cl fl sh ch th'.split(' ');
const TLDS = ['com', 'com', 'com', 'com', 'com', 'net', 'org', 'fr', 'de', 'co.uk', 'ru', 'info', 'io', 'nl', 'it', 'es', 'pl', 'com.br', 'xyz', 'online', 'biz', 'eu', 'be', 'ch'];
const SUBDOMAINS = ['www', 'm', 'blog', 'shop', 'cdn', 'static', 'mail', 'en', 'fr', 'app', 'api', 'img'];

/** Names shaped like list entries: a 2-5 syllable word, sometimes a digit or hyphen, a common TLD, sometimes a subdomain. */
function syntheticNames(random: () => number): () => string {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)];
  const word = (): string => {
    let text = '';
    const syllables = 2 + Math.floor(random() * 4);
    for (let i = 0; i < syllables; i++) text += pick(SYLLABLES);
    const extra = random();
    if (extra < 0.1) text += String(Math.floor(random() * 100));
    else if (extra < 0.15) text += `-${pick(SYLLABLES)}${pick(SYLLABLES)}`;
    return text;
  };
  return () => {
    const base = `${word()}.${pick(TLDS)}`;
    const level = random();
    if (level < 0.15) return `${pick(SUBDOMAINS)}.${base}`;
    if (level < 0.2) return `${word()}.${base}`;
    return base;
  };
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

function heapUsed(): number {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect) {
    collect();
    collect();
  }
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

function main(): void {
  const domainTarget = positiveIntegerArgument(2, 5_000_000);
  const queryCount = positiveIntegerArgument(3, 1_000_000);
  if (!(globalThis as { gc?: () => void }).gc) console.warn('run node with --expose-gc for heap figures; they will be rough without it');

  const lists = loadUt1Lists();
  const entries = lists.entries.filter((e) => e.kind === 'domain');
  const listed = new Set(entries.map((e) => e.value));
  const realDomains = listed.size;
  const random = seededRandom(20261122);
  const nextName = syntheticNames(random);
  const categoryCount = lists.categories.length;
  while (listed.size < domainTarget) {
    const name = nextName();
    if (listed.has(name)) continue;
    listed.add(name);
    entries.push({ kind: 'domain', value: name, categoryId: Math.floor(random() * categoryCount) });
  }
  const listedNames = [...listed];

  // Misses: fresh names from another stream that no entry covers; hits: subdomains of listed names.
  const isCovered = (host: string): boolean => {
    for (let dot = -1; ; dot = host.indexOf('.', dot + 1)) {
      if (listed.has(host.slice(dot + 1))) return true;
      if (host.indexOf('.', dot + 1) === -1) return false;
    }
  };
  const queryRandom = seededRandom(7);
  const nextQueryName = syntheticNames(queryRandom);
  const queries: string[] = [];
  for (let i = 0; i < queryCount; i++) {
    if (queryRandom() < HIT_SHARE) {
      const name = listedNames[Math.floor(queryRandom() * listedNames.length)];
      queries.push(`${SUBDOMAINS[Math.floor(queryRandom() * SUBDOMAINS.length)]}.${name}`);
    } else {
      let name = nextQueryName();
      while (isCovered(name)) name = nextQueryName();
      queries.push(name);
    }
  }
  listed.clear();

  const heapBeforeCompiled = heapUsed();
  let compiled: CompiledMatcher | undefined;
  const compiledBuild = timed(() => {
    const builder = new MatcherBuilder(entries.length);
    for (const { kind, value, categoryId } of entries) builder.add(kind, value, categoryId);
    compiled = builder.build();
  });
  const compiledHeap = heapUsed() - heapBeforeCompiled;

  const heapBeforeNaive = heapUsed();
  const naive = new NaiveMatcher();
  const naiveBuild = timed(() => {
    for (const { kind, value, categoryId } of entries) naive.add(kind, value, categoryId);
  });
  const naiveHeap = heapUsed() - heapBeforeNaive;
  if (compiled === undefined) throw new Error('build produced no matcher');

  let disagreements = 0;
  for (let i = 0; i < Math.min(queries.length, 100_000); i++) {
    if (compiled.matchHost(queries[i]).join() !== naive.matchHost(queries[i]).join()) disagreements++;
  }

  const compiledLookups = measureLookups(compiled, queries);
  const naiveLookups = measureLookups(naive, queries);

  const domains = compiled.domainCount;
  const indexBytes = compiled.memoryBytes - compiled.domainTextBytes;
  const row = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
  const perDomain = (bytes: number): string => (bytes / domains).toFixed(1);
  console.log(`domains: ${domains.toLocaleString('en-GB')} (${realDomains.toLocaleString('en-GB')} real UT1, the rest synthetic); ${compiled.categorySetCount} category sets`);
  console.log(`queries: ${queries.length.toLocaleString('en-GB')}, ${HIT_SHARE * 100} % aimed at listed domains; hits found: compiled ${compiledLookups.hits.toLocaleString('en-GB')}, naive ${naiveLookups.hits.toLocaleString('en-GB')}; disagreements on the first 100 k: ${disagreements}`);
  console.log('');
  console.log(row(['matcher', 'build s (wall / cpu)', 'M lookups/s (wall / cpu)', 'heap bytes/domain', 'index bytes/domain beyond text']));
  console.log(row(['---', '---:', '---:', '---:', '---:']));
  const seconds = (t: Timing): string => `${t.wall.toFixed(2)} / ${t.cpu.toFixed(2)}`;
  const rate = (l: { wall: number; cpu: number }): string => `${(l.wall / 1e6).toFixed(2)} / ${(l.cpu / 1e6).toFixed(2)}`;
  console.log(row(['compiled', seconds(compiledBuild), rate(compiledLookups), perDomain(compiledHeap), perDomain(indexBytes)]));
  console.log(row(['naive Map', seconds(naiveBuild), rate(naiveLookups), perDomain(naiveHeap), '–']));
  console.log('');
  console.log(`compiled typed arrays: ${(compiled.memoryBytes / 2 ** 20).toFixed(1)} MiB, of which host text ${(compiled.domainTextBytes / 2 ** 20).toFixed(1)} MiB`);
  if (disagreements > 0) process.exitCode = 1;
}

main();
