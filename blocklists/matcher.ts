// The compiled category lists: which categories cover a host (domain entries)
// or a host plus path (url entries). This is the proxy's hot path, so lookups
// walk the host once from the right, hashing as they go, and probe a flat
// open-addressing table at each label boundary: no substrings, no allocation.
// All state lives in typed arrays so the structure can later be shared with
// worker threads or saved to disk.
import type { CategoryLookup } from '../core/policy/types.js';
import { normaliseHost } from './host.js';

const EMPTY: readonly number[] = Object.freeze([]);

const DOT = 0x2e;
const MAX_HOST_LENGTH = 253;
const MAX_CATEGORY_ID = 0xffff;
/** Values stored per host are 24 bits (category-set ids, url rule-list ids). */
const MAX_VALUE = 0xffffff;
/** Each host's bytes are preceded by [length, value (24 bits, little-endian)]. */
const HEADER_BYTES = 4;
const MAX_LOAD = 0.7;
const INITIAL_SLOTS = 1024;
/** For sizing the text buffer from an expected host count; UT1 domains average 17 bytes. */
const TYPICAL_HOST_LENGTH = 20;
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

/** Spreads the FNV state over all 32 bits (murmur3's finaliser) so the low bits pick slots well. */
function finishHash(state: number): number {
  let h = state ^ (state >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * A set of hostnames, each with a 24-bit value, closed under "parent domain":
 * interning "a.b.com" also interns "b.com" and "com" (value 0 unless set), so
 * a lookup walking a host from the right can stop at the first absent suffix.
 */
class HostTable {
  private bytes: Uint8Array;
  /** Offset 0 marks an empty slot, so the first header starts after it. */
  private byteLength = HEADER_BYTES;
  /** Pairs [hash, offset of the host's header]; slot count is a power of two. */
  private slots: Int32Array;
  private slotMask: number;
  private hostCount = 0;
  /** Build time only: the offset of each host's parent domain (0 for a top-level label), by insertion order. */
  private parentOffsets: Int32Array | undefined;

  /**
   * Sized for `expectedHosts` up front when the caller knows it: each growth
   * allocates a new buffer, and with a large JS heap V8 answers external
   * memory growth with full garbage collections.
   */
  constructor(expectedHosts: number) {
    let slotCount = INITIAL_SLOTS;
    while (slotCount * MAX_LOAD < expectedHosts) slotCount *= 2;
    this.slots = new Int32Array(slotCount * 2);
    this.slotMask = slotCount - 1;
    this.bytes = new Uint8Array(Math.max(64 * 1024, expectedHosts * (HEADER_BYTES + TYPICAL_HOST_LENGTH)));
    this.parentOffsets = new Int32Array(Math.max(INITIAL_SLOTS, expectedHosts));
  }

  get memoryBytes(): number {
    return this.bytes.byteLength + this.slots.byteLength;
  }

  /** Bytes spent on the hosts' text alone (what a plain list would need). */
  get textBytes(): number {
    return this.byteLength - HEADER_BYTES * (this.hostCount + 1);
  }

  valueAt(offset: number): number {
    const bytes = this.bytes;
    return bytes[offset + 1] | (bytes[offset + 2] << 8) | (bytes[offset + 3] << 16);
  }

  setValue(offset: number, value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > MAX_VALUE) throw new Error(`host table value out of range: ${value}`);
    this.bytes[offset + 1] = value & 0xff;
    this.bytes[offset + 2] = (value >>> 8) & 0xff;
    this.bytes[offset + 3] = value >>> 16;
  }

  /**
   * The value of the longest suffix of `host` (on label boundaries, the whole
   * host included) that is in the table; 0 when none is.
   */
  deepestValue(host: string): number {
    const end = host.length;
    // A suffix starting after a dot below this index is longer than any hostname.
    const lowestDot = end - MAX_HOST_LENGTH - 1;
    const floor = lowestDot > 0 ? lowestDot : 0;
    let state = FNV_OFFSET;
    let value = 0;
    let i = end - 1;
    for (;;) {
      let c = 0;
      while (i >= floor && (c = host.charCodeAt(i)) !== DOT) {
        state = Math.imul(state ^ c, FNV_PRIME);
        i--;
      }
      // host[i + 1, end) is a suffix: i is at a dot, or -1 at the host's start.
      if (i < lowestDot) return value;
      const offset = this.find(host, i + 1, end - i - 1, finishHash(state));
      if (offset === 0) return value;
      value = this.valueAt(offset);
      if (i < 0) return value;
      state = Math.imul(state ^ DOT, FNV_PRIME);
      i--;
    }
  }

  /** Adds `host` and its parent domains where absent; returns the offset of host's entry. */
  intern(host: string): number {
    if (this.parentOffsets === undefined) throw new Error('host table is finished');
    const end = host.length;
    let state = FNV_OFFSET;
    let offset = 0;
    for (let i = end - 1; ; i--) {
      let c = 0;
      while (i >= 0 && (c = host.charCodeAt(i)) !== DOT) {
        state = Math.imul(state ^ c, FNV_PRIME);
        i--;
      }
      const hash = finishHash(state);
      const parent = offset;
      offset = this.find(host, i + 1, end - i - 1, hash);
      if (offset === 0) offset = this.insert(host, i + 1, hash, parent);
      if (i < 0) return offset;
      state = Math.imul(state ^ DOT, FNV_PRIME);
    }
  }

  /**
   * Ends the build: rewrites every host's value as merge(parent's new value,
   * own value), so a value can carry what its parent domains say, and drops
   * build-time state. Hosts are stored in insertion order and a parent is
   * always inserted before its children, so one sequential pass does it.
   */
  finish(merge: (inherited: number, own: number) => number): void {
    const parentOffsets = this.parentOffsets;
    if (parentOffsets === undefined) throw new Error('host table is finished');
    let offset = HEADER_BYTES;
    for (let k = 0; k < this.hostCount; k++) {
      const parent = parentOffsets[k];
      this.setValue(offset, merge(parent === 0 ? 0 : this.valueAt(parent), this.valueAt(offset)));
      offset += HEADER_BYTES + this.bytes[offset];
    }
    this.parentOffsets = undefined;
    this.bytes = this.bytes.slice(0, this.byteLength);
  }

  private find(host: string, start: number, length: number, hash: number): number {
    const slots = this.slots;
    const bytes = this.bytes;
    const pairMask = (this.slotMask << 1) | 1;
    let s = (hash & this.slotMask) << 1;
    for (;;) {
      const offset = slots[s + 1];
      if (offset === 0) return 0;
      if (slots[s] === hash && bytes[offset] === length) {
        const text = offset + HEADER_BYTES;
        let j = 0;
        while (j < length && bytes[text + j] === host.charCodeAt(start + j)) j++;
        if (j === length) return offset;
      }
      s = (s + 2) & pairMask;
    }
  }

  private insert(host: string, start: number, hash: number, parentOffset: number): number {
    if (this.hostCount + 1 > (this.slotMask + 1) * MAX_LOAD) this.growSlots();
    let parentOffsets = this.parentOffsets!;
    if (this.hostCount === parentOffsets.length) {
      parentOffsets = new Int32Array(parentOffsets.length * 2);
      parentOffsets.set(this.parentOffsets!);
      this.parentOffsets = parentOffsets;
    }
    parentOffsets[this.hostCount] = parentOffset;
    const offset = this.appendText(host, start, host.length - start);
    this.place(this.slots, this.slotMask, hash, offset);
    this.hostCount++;
    return offset;
  }

  private appendText(host: string, start: number, length: number): number {
    const offset = this.byteLength;
    const needed = offset + HEADER_BYTES + length;
    if (needed > 0x7fffffff) throw new Error('host table text exceeds 2 GiB');
    if (needed > this.bytes.length) {
      const grown = new Uint8Array(Math.min(0x7fffffff, Math.max(needed, this.bytes.length * 2)));
      grown.set(this.bytes.subarray(0, this.byteLength));
      this.bytes = grown;
    }
    const bytes = this.bytes;
    bytes[offset] = length; // the header's value bytes start at 0
    for (let j = 0; j < length; j++) bytes[offset + HEADER_BYTES + j] = host.charCodeAt(start + j);
    this.byteLength = needed;
    return offset;
  }

  private place(slots: Int32Array, slotMask: number, hash: number, offset: number): void {
    const pairMask = (slotMask << 1) | 1;
    let s = (hash & slotMask) << 1;
    while (slots[s + 1] !== 0) s = (s + 2) & pairMask;
    slots[s] = hash;
    slots[s + 1] = offset;
  }

  private growSlots(): void {
    const slotCount = (this.slotMask + 1) * 2;
    const grown = new Int32Array(slotCount * 2);
    for (let s = 0; s < this.slots.length; s += 2) {
      if (this.slots[s + 1] !== 0) this.place(grown, slotCount - 1, this.slots[s], this.slots[s + 1]);
    }
    this.slots = grown;
    this.slotMask = slotCount - 1;
  }
}

/** Category sets, interned: id 0 is the empty set; a set's array is frozen and shared. */
class CategorySets {
  readonly list: (readonly number[])[] = [EMPTY];
  private readonly idByKey = new Map<string, number>([['', 0]]);
  /** By set id: category id → the id of the set with that category added. */
  private readonly withCategoryCache: Map<number, number>[] = [];
  private readonly unionCache = new Map<number, number>();

  withCategory(setId: number, categoryId: number): number {
    const cache = (this.withCategoryCache[setId] ??= new Map());
    let id = cache.get(categoryId);
    if (id === undefined) {
      id = this.intern([...this.list[setId], categoryId]);
      cache.set(categoryId, id);
    }
    return id;
  }

  union(a: number, b: number): number {
    if (a === 0 || a === b) return b;
    if (b === 0) return a;
    const key = a < b ? a * (MAX_VALUE + 1) + b : b * (MAX_VALUE + 1) + a;
    let id = this.unionCache.get(key);
    if (id === undefined) {
      id = this.intern([...this.list[a], ...this.list[b]]);
      this.unionCache.set(key, id);
    }
    return id;
  }

  private intern(categoryIds: number[]): number {
    const sorted = [...new Set(categoryIds)].sort((x, y) => x - y);
    const key = sorted.join(',');
    let id = this.idByKey.get(key);
    if (id === undefined) {
      id = this.list.length;
      if (id > MAX_VALUE) throw new Error('more than 16 M distinct category sets');
      this.list.push(Object.freeze(sorted));
      this.idByKey.set(key, id);
    }
    return id;
  }
}

/**
 * The url entries of one host and of its parent domains, longest path first;
 * each rule's set already includes the sets of the rules whose paths are
 * prefixes of its own, so the first rule that matches answers.
 */
interface UrlRuleList {
  readonly paths: readonly string[];
  readonly setIds: readonly number[];
}

export class MatcherBuilder {
  private readonly domains: HostTable;
  private readonly sets = new CategorySets();
  private domainEntries = 0;
  /** host → path → category-set id */
  private readonly urlRules = new Map<string, Map<string, number>>();
  private urlEntries = 0;
  private built = false;

  /** expectedDomains (optional) pre-sizes the tables; a build from a known list is faster with it. */
  constructor(expectedDomains = 0) {
    if (!Number.isSafeInteger(expectedDomains) || expectedDomains < 0) throw new Error(`expectedDomains must be a non-negative integer, got ${expectedDomains}`);
    this.domains = new HostTable(expectedDomains);
  }

  /**
   * Adds a list entry. A domain value must already be a normalised host
   * (normaliseHost(value) === value); a url value is "host/path-prefix" with
   * no scheme, its host normalised here. Invalid values throw: the caller
   * validates entries first, so one reaching here is a programming error.
   */
  add(kind: 'domain' | 'url', value: string, categoryId: number): void {
    if (this.built) throw new Error('MatcherBuilder.add() after build()');
    if (!Number.isInteger(categoryId) || categoryId < 0 || categoryId > MAX_CATEGORY_ID) {
      throw new Error(`category id must be an integer 0..${MAX_CATEGORY_ID}, got ${categoryId}`);
    }
    if (kind === 'domain') this.addDomain(value, categoryId);
    else if (kind === 'url') this.addUrl(value, categoryId);
    else throw new Error(`unknown list entry kind: ${JSON.stringify(kind)}`);
  }

  build(): CompiledMatcher {
    if (this.built) throw new Error('MatcherBuilder.build() called twice');
    this.built = true;
    // A host is covered by its own entry and by every parent domain's.
    this.domains.finish((inherited, own) => this.sets.union(inherited, own));
    const { table: urls, lists } = this.compileUrlRules();
    return new CompiledMatcher(this.domains, urls, lists, this.sets.list, this.domainEntries, this.urlEntries);
  }

  private addDomain(host: string, categoryId: number): void {
    if (normaliseHost(host) !== host) throw new Error(`domain entry is not a normalised host: ${JSON.stringify(host)}`);
    const offset = this.domains.intern(host);
    const setId = this.domains.valueAt(offset);
    if (setId === 0) this.domainEntries++;
    this.domains.setValue(offset, this.sets.withCategory(setId, categoryId));
  }

  private addUrl(value: string, categoryId: number): void {
    const slash = value.indexOf('/');
    const host = slash === -1 ? undefined : normaliseHost(value.slice(0, slash));
    if (host === undefined) throw new Error(`url entry is not "host/path" with a valid host: ${JSON.stringify(value)}`);
    const path = value.slice(slash);
    let rules = this.urlRules.get(host);
    if (rules === undefined) this.urlRules.set(host, (rules = new Map()));
    const setId = rules.get(path);
    if (setId === undefined) this.urlEntries++;
    rules.set(path, this.sets.withCategory(setId ?? 0, categoryId));
  }

  private compileUrlRules(): { table: HostTable; lists: UrlRuleList[] } {
    const table = new HostTable(this.urlRules.size);
    // Value = 1 + index into `lists`; 0 = no rules. Own rules first, merged lists appended.
    const lists: UrlRuleList[] = [];
    for (const [host, rules] of this.urlRules) {
      lists.push({ paths: [...rules.keys()], setIds: [...rules.values()] });
      table.setValue(table.intern(host), lists.length);
    }
    table.finish((inherited, own) => {
      if (own === 0) return inherited;
      const setByPath = new Map<string, number>();
      for (const listId of [inherited, own]) {
        if (listId === 0) continue;
        const { paths, setIds } = lists[listId - 1];
        paths.forEach((path, i) => setByPath.set(path, this.sets.union(setByPath.get(path) ?? 0, setIds[i])));
      }
      lists.push(this.compileRuleList(setByPath));
      return lists.length;
    });
    return { table, lists };
  }

  private compileRuleList(setByPath: Map<string, number>): UrlRuleList {
    const paths = [...setByPath.keys()].sort((a, b) => b.length - a.length);
    const setIds = paths.map((path) => {
      let setId = 0;
      for (const prefix of paths) if (path.startsWith(prefix)) setId = this.sets.union(setId, setByPath.get(prefix)!);
      return setId;
    });
    return { paths, setIds };
  }
}

export class CompiledMatcher implements CategoryLookup {
  /** @internal built by MatcherBuilder */
  constructor(
    private readonly domains: HostTable,
    private readonly urls: HostTable,
    private readonly urlRuleLists: readonly UrlRuleList[],
    private readonly categorySets: readonly (readonly number[])[],
    readonly domainCount: number,
    readonly urlCount: number,
  ) {}

  /** `host` must be normalised (normaliseHost); anything else simply misses. */
  matchHost(host: string): readonly number[] {
    return this.categorySets[this.domains.deepestValue(host)];
  }

  matchUrl(host: string, pathAndQuery: string): readonly number[] {
    const listId = this.urls.deepestValue(host);
    if (listId === 0) return EMPTY;
    const { paths, setIds } = this.urlRuleLists[listId - 1];
    for (let i = 0; i < paths.length; i++) {
      if (pathAndQuery.startsWith(paths[i])) return this.categorySets[setIds[i]];
    }
    return EMPTY;
  }

  /** Bytes held in typed arrays (host text, headers and hash tables). */
  get memoryBytes(): number {
    return this.domains.memoryBytes + this.urls.memoryBytes;
  }

  /** Bytes of the domain entries' text alone, parent-domain markers included, for bytes-per-domain figures. */
  get domainTextBytes(): number {
    return this.domains.textBytes;
  }

  /** Distinct category combinations in use. */
  get categorySetCount(): number {
    return this.categorySets.length - 1;
  }
}
