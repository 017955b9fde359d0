import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { normaliseHost } from '../../blocklists/host.js';
import { CompiledMatcher, hostFingerprint, MatcherBuilder } from '../../blocklists/matcher.js';
import { seededRandom, syntheticNames } from '../../bench/synthetic-domains.js';
import { NaiveMatcher } from '../support/naive-matcher.js';
import { loadUt1Lists, ut1Directory, type Ut1Entry, type Ut1Lists } from '../support/ut1-lists.js';

type Entry = Pick<Ut1Entry, 'kind' | 'value' | 'categoryId'>;

function compile(entries: readonly Entry[]): CompiledMatcher {
  const builder = new MatcherBuilder();
  for (const { kind, value, categoryId } of entries) builder.add(kind, value, categoryId);
  return builder.build();
}

function naive(entries: readonly Entry[]): NaiveMatcher {
  const matcher = new NaiveMatcher();
  for (const { kind, value, categoryId } of entries) matcher.add(kind, value, categoryId);
  return matcher;
}

const domain = (value: string, categoryId: number): Entry => ({ kind: 'domain', value, categoryId });
const url = (value: string, categoryId: number): Entry => ({ kind: 'url', value, categoryId });

describe('CompiledMatcher: exact cases', () => {
  const matcher = compile([
    domain('bet.com', 3),
    domain('bet.com', 1),
    domain('bet.com', 3),
    domain('casino.bet.com', 7),
    domain('social.example', 2),
    domain('a.b.c.d.example', 4),
    domain('uk', 9),
    domain('192.168.0.1', 5),
    domain('_srv.example.org', 6),
    domain('xn--bcher-kva.de', 8),
    domain('max.example', 65535),
    domain('zero.example', 0),
    url('example.com/games', 10),
    url('example.com/games/poker', 11),
    url('www.example.com/Games', 12),
    url('Shop.Example.NET./a/', 13),
    url('example.com/games', 14),
    url('192.168.0.1/admin', 15),
    url('quora.com/', 16),
  ]);

  it.each([
    ['bet.com', [1, 3]],
    ['www.bet.com', [1, 3]],
    ['a.b.c.bet.com', [1, 3]],
    ['casino.bet.com', [1, 3, 7]],
    ['x.casino.bet.com', [1, 3, 7]],
    ['social.example', [2]],
    ['m.social.example', [2]],
    ['a.b.c.d.example', [4]],
    ['z.a.b.c.d.example', [4]],
    ['co.uk', [9]],
    ['www.bbc.co.uk', [9]],
    ['uk', [9]],
    ['192.168.0.1', [5]],
    ['_srv.example.org', [6]],
    ['host._srv.example.org', [6]],
    ['www.xn--bcher-kva.de', [8]],
    ['max.example', [65535]],
    ['zero.example', [0]],
  ])('matchHost(%j) = %j', (host, expected) => {
    expect(matcher.matchHost(host)).toEqual(expected);
  });

  it.each([
    'evilbet.com', // a suffix, but not on a label boundary
    'bet.com.evil.net',
    'com',
    'b.c.d.example', // a parent of an entry is not covered by it
    'c.d.example',
    'example',
    'ocial.example',
    'socialexample',
    'bet.co',
    'et.com',
    'casino.bet.co',
    'BET.COM', // not normalised: callers normalise first
    'bet.com.',
    '.bet.com.',
    '192.168.0.10',
    '2.192.168.0.1.x',
    'max.example.org',
    'ukk',
    '',
    '.',
    '..',
  ])('matchHost(%j) misses', (host) => {
    expect(matcher.matchHost(host)).toEqual([]);
  });

  it('covers subdomains of an entry written with a leading dot in the host', () => {
    // A leading dot is not a normalised host, but the walk still reaches "bet.com" on a label boundary.
    expect(matcher.matchHost('.bet.com')).toEqual([1, 3]);
  });

  it.each([
    ['example.com', '/games', [10, 14]],
    ['example.com', '/games/x', [10, 14]],
    ['example.com', '/games?x=1', [10, 14]],
    ['example.com', '/gamesroom', [10, 14]],
    ['www.example.com', '/games?x', [10, 14]],
    ['example.com', '/games/poker', [10, 11, 14]],
    ['a.b.example.com', '/games/poker/texas', [10, 11, 14]],
    ['www.example.com', '/Games/1', [12]],
    ['m.www.example.com', '/Games', [12]],
    ['shop.example.net', '/a/b', [13]],
    ['192.168.0.1', '/admin/x', [15]],
    ['quora.com', '/', [16]],
    ['www.quora.com', '/anything?at=all', [16]],
  ])('matchUrl(%j, %j) = %j', (host, pathAndQuery, expected) => {
    expect(matcher.matchUrl(host, pathAndQuery)).toEqual(expected);
  });

  it.each([
    ['example.com', '/game'],
    ['example.com', '/Games'],
    ['example.com', ''],
    ['example.com', 'games'],
    ['example.com', '/x/games'],
    ['www.example.com', '/gam'],
    ['notexample.com', '/games'],
    ['example.co', '/games'],
    ['shop.example.net', '/a'],
    ['example.net', '/a/b'],
    ['192.168.0.1', '/'],
    ['quora.co', '/'],
    ['bet.com', '/games'],
  ])('matchUrl(%j, %j) misses', (host, pathAndQuery) => {
    expect(matcher.matchUrl(host, pathAndQuery)).toEqual([]);
  });

  it('returns one shared frozen empty array on every miss', () => {
    const miss = matcher.matchHost('nowhere.example');
    expect(Object.isFrozen(miss)).toBe(true);
    expect(matcher.matchHost('evilbet.com')).toBe(miss);
    expect(matcher.matchHost('com')).toBe(miss);
    expect(matcher.matchUrl('example.com', '/nothing')).toBe(miss);
    expect(matcher.matchUrl('nowhere.example', '/games')).toBe(miss);
    expect(compile([]).matchHost('bet.com')).toBe(miss);
  });

  it('returns the same frozen array for the same category set, whichever entry matched', () => {
    const hit = matcher.matchHost('www.bet.com');
    expect(Object.isFrozen(hit)).toBe(true);
    expect(matcher.matchHost('bet.com')).toBe(hit);
    expect(matcher.matchHost('x.y.bet.com')).toBe(hit);
    expect(matcher.matchHost('casino.bet.com')).not.toBe(hit);
    expect(() => (hit as number[]).push(2)).toThrow(TypeError);
    const games = matcher.matchUrl('example.com', '/games');
    expect(matcher.matchUrl('www.example.com', '/games/1')).toBe(games);
    // Url and domain lookups share one set of interned category sets.
    const other = compile([domain('a.example', 10), domain('a.example', 14), url('a.example/x', 10), url('a.example/x', 14)]);
    expect(other.matchUrl('a.example', '/x')).toBe(other.matchHost('a.example'));
  });

  it('counts distinct entries', () => {
    expect(matcher.domainCount).toBe(10);
    expect(matcher.urlCount).toBe(6);
    expect(matcher.memoryBytes).toBeGreaterThan(0);
    const empty = compile([]);
    expect([empty.domainCount, empty.urlCount]).toEqual([0, 0]);
  });
});

describe('CompiledMatcher: hosts kept as fingerprints', () => {
  /** Pairs of names whose first 32-bit hash is the same, so that they share a home slot and filter bits. */
  function namesSharingAHash(pairsWanted: number): [string, string][] {
    const next = syntheticNames(seededRandom(11));
    const byHash = new Map<number, string>();
    const pairs: [string, string][] = [];
    while (pairs.length < pairsWanted) {
      const name = next();
      const { hash } = hostFingerprint(name);
      const seen = byHash.get(hash);
      if (seen === undefined) byHash.set(hash, name);
      else if (seen !== name) pairs.push([seen, name]);
    }
    return pairs;
  }

  it('tells apart names whose hash collides, by the check', () => {
    const pairs = namesSharingAHash(3);
    for (const [a, b] of pairs) expect(hostFingerprint(a).check).not.toBe(hostFingerprint(b).check);
    // The table keeps what hostFingerprint computes (slots of [hash, check, meta]), so these pairs collide in it too.
    const { slots } = compile(pairs.map(([a]) => domain(a, 1))).toParts().domains;
    const kept = new Set<string>();
    for (let at = 0; at < slots.length; at += 3) if (slots[at + 2] !== 0) kept.add(`${slots[at]},${slots[at + 1]}`);
    for (const [a] of pairs) expect(kept).toContain(`${hostFingerprint(a).hash},${hostFingerprint(a).check}`);
    // A listed sibling of b makes b's parent a marker with subdomains, so a lookup of b walks on to b's own slot.
    const sibling = (name: string): string => `sibling.${name.slice(name.indexOf('.') + 1)}`;
    const listedOnly = compile(pairs.flatMap(([a, b]) => [domain(a, 1), domain(sibling(b), 2)]));
    const both = compile(pairs.flatMap(([a, b]) => [domain(a, 1), domain(b, 2)]));
    for (const [a, b] of pairs) {
      expect(listedOnly.matchHost(a)).toEqual([1]);
      expect(listedOnly.matchHost(b)).toEqual([]);
      expect(listedOnly.matchHost(`www.${b}`)).toEqual([]);
      expect([both.matchHost(a), both.matchHost(b)]).toEqual([[1], [2]]);
    }
  });
});

describe('MatcherBuilder: bad input', () => {
  it.each([-1, 65536, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses category id %d', (categoryId) => {
    expect(() => new MatcherBuilder().add('domain', 'example.com', categoryId)).toThrow(/category id must be an integer 0\.\.65535/);
  });

  it.each(['Example.com', 'example.com.', '', 'a..b', 'bücher.de', '0x7f.1', 'exa mple.com', '[::1]'])(
    'refuses domain %j, which is not a normalised host',
    (value) => {
      expect(() => new MatcherBuilder().add('domain', value, 1)).toThrow(`domain entry is not a normalised host: ${JSON.stringify(value)}`);
    },
  );

  it.each(['example.com', '/path', 'exa mple.com/x', '..com/x', ''])('refuses url %j', (value) => {
    expect(() => new MatcherBuilder().add('url', value, 1)).toThrow(`url entry is not "host/path" with a valid host: ${JSON.stringify(value)}`);
  });

  it('refuses an unknown kind', () => {
    expect(() => new MatcherBuilder().add('regex' as 'domain', 'x.com', 1)).toThrow('unknown list entry kind: "regex"');
  });

  it.each([-1, 1.5, Number.NaN])('refuses expectedDomains %d', (expected) => {
    expect(() => new MatcherBuilder(expected)).toThrow(/expectedDomains must be a non-negative integer/);
  });

  it('gives the same answers when pre-sized, over or under the real count', () => {
    for (const expected of [1, 2, 100_000]) {
      const builder = new MatcherBuilder(expected);
      for (const entry of [domain('bet.com', 1), domain('a.bet.com', 2), url('bet.com/x', 3)]) builder.add(entry.kind, entry.value, entry.categoryId);
      const matcher = builder.build();
      expect([matcher.matchHost('b.a.bet.com'), matcher.matchHost('bet.com'), matcher.matchUrl('a.bet.com', '/x/y')]).toEqual([[1, 2], [1], [3]]);
    }
  });

  it('gives the same answers for batches of hosts with dozens of labels each', () => {
    // 600 entries fill the builder's batches twice over, and each batch's 40-label hosts outgrow its first room for suffixes many times.
    const entries = Array.from({ length: 600 }, (_, k) =>
      domain(`${Array.from({ length: 40 }, (_, j) => `l${(k * 7 + j) % 13}`).join('.')}.site${k % 50}.test`, 1 + (k % 5)),
    );
    const compiled = compile(entries);
    const reference = naive(entries);
    expect(compiled.domainCount).toBe(reference.domainCount);
    for (const { value } of entries) {
      for (const host of [value, `www.${value}`, value.slice(value.indexOf('.') + 1)]) expectAgreement(compiled, reference, host, '/');
    }
    expect(compiled.matchHost(entries[599].value)).toEqual([5]);
  });

  it('is used once', () => {
    const builder = new MatcherBuilder();
    builder.add('domain', 'example.com', 1);
    builder.build();
    expect(() => builder.add('domain', 'example.org', 1)).toThrow('add() after build()');
    expect(() => builder.build()).toThrow('build() called twice');
  });

  it('normalises the host of a url entry', () => {
    const matcher = compile([url('WWW.Bücher.DE./x', 1), url('0x7f.1/admin', 2), url('[::FFFF:7F00:1]/root', 3)]);
    expect(matcher.matchUrl('www.xn--bcher-kva.de', '/x')).toEqual([1]);
    expect(matcher.matchUrl('127.0.0.1', '/admin')).toEqual([2]);
    expect(matcher.matchUrl('127.0.0.1', '/root')).toEqual([3]);
  });
});

// Small pools so that random entries and hosts share labels, suffixes and prefixes.
const labelPool = ['a', 'b', 'ab', 'ba', 'bet', 'evilbet', 'x-y', '_s', 'xn--p1ai', 'com', 'co', 'uk', '1', '10', '255', 'z'.repeat(63)];
const pathPool = ['/', '/a', '/ab', '/a/b', '/a/', '/b?x=1', '/A', '/ab/c'];
const labelArbitrary = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...labelPool) }, fc.stringMatching(/^[a-z0-9_-]{1,4}$/));
const poolHostArbitrary = fc.array(labelArbitrary, { minLength: 1, maxLength: 5 }).map((labels) => labels.join('.'));
/** Entry hosts: names from the pool, IP addresses in canonical form, and names near the length limits. */
const entryHostArbitrary = fc.oneof(
  { weight: 6, arbitrary: poolHostArbitrary },
  fc.ipV4(),
  fc.ipV6().map((address) => normaliseHost(address) ?? address),
  fc.tuple(fc.integer({ min: 1, max: 3 }), poolHostArbitrary).map(([n, host]) => `${'l'.repeat(63)}.`.repeat(n) + host),
  fc.tuple(fc.integer({ min: 1, max: 120 }), poolHostArbitrary).map(([n, host]) => `${'d.'.repeat(n)}${host}`),
).filter((host) => normaliseHost(host) === host);
const entrySetArbitrary = fc.array(
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('domain' as const), value: entryHostArbitrary, categoryId: fc.integer({ min: 0, max: 70 }) }) },
    fc.record({
      kind: fc.constant('url' as const),
      value: fc.tuple(entryHostArbitrary, fc.constantFrom(...pathPool)).map(([host, p]) => host + p),
      categoryId: fc.oneof(fc.integer({ min: 0, max: 70 }), fc.constant(65535)),
    }),
  ),
  { maxLength: 60 },
);

/** Any element of a (possibly huge) array. */
function oneOf<T>(values: readonly T[]): fc.Arbitrary<T> {
  return fc.nat(values.length - 1).map((i) => values[i]);
}

/** Hosts aimed at the walk's edges: subdomains, suffixes without a label boundary, odd characters, length limits. */
function adversarialHostArbitrary(knownHosts: readonly string[]): fc.Arbitrary<string> {
  const known = knownHosts.length > 0 ? oneOf(knownHosts) : poolHostArbitrary;
  return fc.oneof(
    poolHostArbitrary,
    known,
    fc.tuple(poolHostArbitrary, known).map(([sub, host]) => `${sub}.${host}`),
    fc.tuple(fc.stringMatching(/^[a-z0-9-]{1,3}$/), known).map(([glued, host]) => glued + host),
    fc.tuple(known, fc.nat(20)).map(([host, cut]) => host.slice(Math.min(cut, host.length))),
    known.map((host) => host.toUpperCase()),
    known.map((host) => `${host}.`),
    known.map((host) => `.${host}`),
    fc.tuple(known, fc.constantFrom('é', '\u0000', ' ', '%', ':', '..', 'Ａ', '\u{1f600}')).map(([host, odd]) => `${odd}.${host}`),
    fc.tuple(fc.integer({ min: 60, max: 300 }), known).map(([n, host]) => `${'q'.repeat(n)}.${host}`),
    fc.tuple(fc.integer({ min: 1, max: 140 }), known).map(([n, host]) => `${'a.'.repeat(n)}${host}`),
    fc.string({ maxLength: 30 }),
    fc.ipV4(),
    fc.ipV4Extended(),
    fc.ipV6(),
    fc.tuple(fc.ipV4(), known).map(([ip, host]) => `${ip}.${host}`),
    fc.tuple(known, fc.nat(255)).map(([host, octet]) => `${octet}.${host}`),
    known.map((host) => `[${host}]`),
    fc.tuple(fc.integer({ min: 1, max: 4 }), known).map(([n, host]) => `${'l'.repeat(63)}.`.repeat(n) + host),
    fc.tuple(fc.stringMatching(/^[a-z0-9]{1,3}$/), known).map(([label, host]) => `${label}.${'x.'.repeat(125)}${host}`),
    fc.constantFrom('', '.', '..', 'com', 'uk', '0.0.0.0', '::', '::1', '1', '1.2', '1.2.3', '1.2.3.4.5'),
  );
}

function expectAgreement(compiled: CompiledMatcher, reference: NaiveMatcher, host: string, pathAndQuery: string): void {
  expect(compiled.matchHost(host)).toEqual(reference.matchHost(host));
  expect(compiled.matchUrl(host, pathAndQuery)).toEqual(reference.matchUrl(host, pathAndQuery));
}

describe('CompiledMatcher agrees with the naive matcher', () => {
  it('on random entry sets and adversarial hosts', () => {
    fc.assert(
      fc.property(
        entrySetArbitrary.chain((entries) => {
          const hosts = entries.map((e) => (e.kind === 'domain' ? e.value : e.value.slice(0, e.value.indexOf('/'))));
          const query = fc.tuple(adversarialHostArbitrary(hosts), fc.oneof(fc.constantFrom(...pathPool), fc.string({ maxLength: 8 })));
          return fc.tuple(fc.constant(entries), fc.array(query, { minLength: 1, maxLength: 30 }));
        }),
        ([entries, queries]) => {
          const compiled = compile(entries);
          const reference = naive(entries);
          expect(compiled.domainCount).toBe(reference.domainCount);
          expect(compiled.urlCount).toBe(reference.urlCount);
          for (const [host, pathAndQuery] of queries) expectAgreement(compiled, reference, host, pathAndQuery);
        },
      ),
      { numRuns: 1500 },
    );
  }, 180_000);
});

describe('the real UT1 lists', () => {
  let lists: Ut1Lists;
  let compiled: CompiledMatcher;
  let reference: NaiveMatcher;
  const categoryId = (name: string): number => lists.categories.indexOf(name);
  const categoriesOf = (ids: readonly number[]): string[] => ids.map((id) => lists.categories[id]);

  beforeAll(() => {
    lists = loadUt1Lists();
    compiled = compile(lists.entries);
    reference = naive(lists.entries);
  }, 120_000);

  it('loads every category, refusing only a handful of lines', () => {
    expect(lists.categories).toContain('gambling');
    expect(lists.categories).toContain('social_networks');
    expect(lists.entries.length).toBeGreaterThan(600_000);
    // The snapshot has two entries with a leading dot (".afshin.ir"); anything more means a regression.
    expect(lists.rejected.length).toBeLessThanOrEqual(10);
    expect(compiled.domainCount).toBe(reference.domainCount);
    expect(compiled.domainCount).toBeGreaterThan(300_000);
    expect(compiled.urlCount).toBe(reference.urlCount);
  });

  it('uses at most 32 bytes per domain, keeping no text', () => {
    expect(compiled.memoryBytes / compiled.domainCount).toBeLessThanOrEqual(32);
  });

  it.each(['bet365.com', 'pokerstars.com', 'williamhill.com'])('covers %s and its subdomains as gambling', (host) => {
    expect(readFileSync(path.join(ut1Directory, 'gambling/domains'), 'utf8').split('\n')).toContain(host);
    for (const candidate of [host, `www.${host}`, `a.b.${host}`]) {
      expect(categoriesOf(compiled.matchHost(candidate))).toContain('gambling');
    }
    expect(compiled.matchHost(`not${host}`)).not.toContain(categoryId('gambling'));
  });

  it('covers facebook.com and its subdomains under each of its categories', () => {
    const expected = ['blog', 'forums', 'social_networks'].map(categoryId).sort((a, b) => a - b);
    expect(compiled.matchHost('facebook.com')).toEqual(expected);
    expect(compiled.matchHost('m.facebook.com')).toBe(compiled.matchHost('facebook.com'));
    for (const host of ['www.instagram.com', 'vm.tiktok.com', 'uk.linkedin.com']) {
      expect(categoriesOf(compiled.matchHost(host))).toContain('social_networks');
    }
  });

  it('misses hosts that are not listed', () => {
    for (const host of ['portcullis-school-proxy.example', 'www.bbc.co.uk', 'facebook.com.evil', 'nomorebet365.com', 'schools.example.org']) {
      expect(compiled.matchHost(host)).toEqual([]);
    }
  });

  it('matches a url entry by path prefix, on subdomains too', () => {
    const firstUrl = readFileSync(path.join(ut1Directory, 'gambling/urls'), 'utf8').split('\n')[0];
    const slash = firstUrl.indexOf('/');
    const [host, prefix] = [firstUrl.slice(0, slash), firstUrl.slice(slash)];
    expect(categoriesOf(compiled.matchUrl(host, prefix))).toContain('gambling');
    expect(categoriesOf(compiled.matchUrl(`www.${host}`, `${prefix}deeper?q=1`))).toContain('gambling');
    expect(compiled.matchUrl(host, '/unlisted-path-for-portcullis')).toEqual(reference.matchUrl(host, '/unlisted-path-for-portcullis'));
  });

  it('agrees with the naive matcher on every listed domain and on adversarial hosts', () => {
    const hosts = [...new Set(lists.entries.map((e) => (e.kind === 'domain' ? e.value : e.value.slice(0, e.value.indexOf('/')))))];
    // Every listed host, a subdomain of it, and a name that ends with it without a label boundary.
    const disagreements = hosts.flatMap((host) =>
      [host, `www.${host}`, `x${host}`].filter((candidate) => compiled.matchHost(candidate).join() !== reference.matchHost(candidate).join()),
    );
    expect(disagreements).toEqual([]);
    const urlPaths = lists.entries.filter((e) => e.kind === 'url').map((e) => e.value.slice(e.value.indexOf('/')));
    fc.assert(
      fc.property(adversarialHostArbitrary(hosts), fc.oneof(oneOf(urlPaths), fc.constantFrom('/', '/x')), (host, pathAndQuery) => {
        expectAgreement(compiled, reference, host, pathAndQuery);
      }),
      { numRuns: 20_000 },
    );
  });
});
