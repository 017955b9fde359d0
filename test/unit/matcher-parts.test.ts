import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { CompiledMatcher, MatcherBuilder, type MatcherParts } from '../../blocklists/matcher.js';
import { seededRandom, syntheticNames } from '../../bench/synthetic-domains.js';

function buildFrom(entries: readonly [kind: 'domain' | 'url', value: string, categoryId: number][]): CompiledMatcher {
  const builder = new MatcherBuilder();
  for (const [kind, value, categoryId] of entries) builder.add(kind, value, categoryId);
  return builder.build();
}

const entries: [kind: 'domain' | 'url', value: string, categoryId: number][] = [
  ['domain', 'bet.example', 3],
  ['domain', 'casino.bet.example', 7],
  ['domain', '10.1.2.3', 5],
  ['url', 'chat.example/rooms', 9],
  ['url', 'www.chat.example/rooms/private', 11],
];

const probes: [host: string, pathAndQuery: string][] = [
  ['bet.example', '/'],
  ['a.casino.bet.example', '/'],
  ['notbet.example', '/'],
  ['10.1.2.3', '/'],
  ['www.chat.example', '/rooms/private/1'],
  ['chat.example', '/rooms'],
  ['chat.example', '/lobby'],
];

const ports: MessagePort[] = [];
afterEach(() => {
  for (const port of ports.splice(0)) port.close();
});

/** Posts `parts` through a real message channel, as a worker thread does, and returns what arrives. */
function postAcross(parts: MatcherParts, transfer: ArrayBuffer[]): Promise<MatcherParts> {
  const { port1, port2 } = new MessageChannel();
  ports.push(port1, port2);
  return new Promise((resolve) => {
    port2.once('message', resolve);
    port1.postMessage(parts, transfer);
  });
}

describe('CompiledMatcher parts', () => {
  it('cross a message channel with their arrays moved, not copied, and answer as the original did', async () => {
    const original = buildFrom(entries);
    const expected = probes.map(([host, p]) => [original.matchHost(host), original.matchUrl(host, p)]);
    const parts = original.toParts();
    const transfer = CompiledMatcher.transferList(parts);
    expect(transfer).toHaveLength(4);
    const received = await postAcross(parts, transfer);
    // Moved: the sending side's buffers are detached.
    expect(parts.domains.slots.byteLength).toBe(0);
    expect(parts.domains.filter.byteLength).toBe(0);
    const rebuilt = CompiledMatcher.fromParts(received);
    expect(probes.map(([host, p]) => [rebuilt.matchHost(host), rebuilt.matchUrl(host, p)])).toEqual(expected);
    expect([rebuilt.domainCount, rebuilt.urlCount]).toEqual([3, 2]);
    expect(Object.isFrozen(rebuilt.matchHost('bet.example'))).toBe(true);
    expect(rebuilt.matchHost('nowhere.example')).toBe(rebuilt.matchHost('bet.example.nowhere'));
  });

  it('answer alike for a list large enough that the presence filter decides most misses', async () => {
    const next = syntheticNames(seededRandom(5));
    const names = Array.from({ length: 50_000 }, () => next());
    const builder = new MatcherBuilder(names.length);
    names.forEach((name, i) => builder.add('domain', name, i % 70));
    const original = builder.build();
    const queries = [...names.slice(0, 2_000).map((name) => `www.${name}`), ...Array.from({ length: 20_000 }, () => `q.${next()}`)];
    const expected = queries.map((host) => original.matchHost(host).join());
    expect(expected.filter((answer) => answer !== '').length).toBeGreaterThan(2_000);
    const parts = original.toParts();
    const rebuilt = CompiledMatcher.fromParts(await postAcross(parts, CompiledMatcher.transferList(parts)));
    expect(queries.map((host) => rebuilt.matchHost(host).join())).toEqual(expected);
  });

  it('are refused when malformed, with what is wrong', () => {
    const good = (): MatcherParts => buildFrom(entries).toParts();
    const cases: [change: (parts: MatcherParts) => MatcherParts, message: RegExp][] = [
      [(p) => ({ ...p, categorySets: [[1], ...p.categorySets.slice(1)] }), /set 0 must be the empty set/],
      [(p) => ({ ...p, categorySets: [...p.categorySets, [5, 3]] }), /is not a sorted list of category ids/],
      [(p) => ({ ...p, urlRuleLists: [{ paths: ['/a'], setIds: [99_999] }] }), /url rule list 0 is malformed/],
      [(p) => ({ ...p, domainCount: -1 }), /entry counts must be non-negative integers/],
      [(p) => ({ ...p, domains: { ...p.domains, slots: new Int32Array(4) } }), /inconsistent sizes/],
      [(p) => ({ ...p, domains: { ...p.domains, slots: new Int32Array(3) } }), /inconsistent sizes/],
      [(p) => ({ ...p, domains: { ...p.domains, filter: new Int32Array(3) } }), /inconsistent sizes/],
      [(p) => ({ ...p, urls: { ...p.urls, slots: [] as unknown as Int32Array } }), /expected two Int32Arrays/],
    ];
    for (const [change, message] of cases) expect(() => CompiledMatcher.fromParts(change(good()))).toThrow(message);
  });
});
