// The compiled category lists: which categories cover a host (domain entries)
// or a host plus path (url entries). This is the proxy's hot path, so lookups
// walk the host once from the right, hashing as they go, and probe a flat
// open-addressing table at each label boundary: no substrings, no allocation.
// A lookup stops at the first suffix that is absent (a cache-sized presence
// filter answers most of those without touching the table) or that has no
// subdomains listed. All state lives in typed arrays, so a matcher built in a
// worker thread moves to the main thread without a copy (MatcherParts).
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
/**
 * The load a table is sized for from the expected host count, and the load
 * it is held at in service. A build goes straight to it rather than filling a
 * roomier table and rehashing down: at 5 million domains that rehash, and the
 * first touch of the roomier table's pages, took half a second. Inserts scan
 * a little further from their slot; with their slots read ahead in batches
 * (internAll) that costs little.
 */
const FINISHED_LOAD = 0.75;
/** Past this load the table doubles (during a build only, when there are more hosts than expected). */
const MAX_LOAD = 0.8;
/**
 * A finished table is rehashed down to FINISHED_LOAD only when that saves at
 * least this share of its slots: a build that had to grow (or that expected
 * far more hosts) ends with slots to spare, held for as long as the lists are
 * in service.
 */
const WORTHWHILE_SHRINK = 0.2;
const MIN_SLOTS = 1024;
/** A host with listed subdomains also interns its parents as markers; this allows for them when sizing. */
const MARKERS_PER_HOST = 0.25;
/** For sizing the text buffer from an expected host count; UT1 domains average 17 bytes. */
const TYPICAL_HOST_LENGTH = 18;
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
/** Bit 0 of a slot's stored hash says whether the host has longer hosts (subdomains) in the table. */
const HAS_SUBDOMAINS = 1;
const TWO_POW_31 = 2 ** 31;
/**
 * Presence filter bits per host: the filter (a blocked Bloom filter, two
 * bits in one 32-bit word) is small enough to stay in the CPU cache, so most
 * misses end there without touching the slot array in main memory (by the
 * usual estimate a few per cent of absent hosts get through at this size).
 */
const FILTER_BITS_PER_HOST = 10;

/** Spreads the FNV state over all 32 bits (murmur3's finaliser). */
function finishHash(state: number): number {
  let h = state ^ (state >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * The slot where a hash's probe starts: its top 31 bits scaled to the slot
 * count (so any count works, not only powers of two). Bit 0 is left out: it
 * holds the HAS_SUBDOMAINS flag in stored hashes. Where the product exceeds
 * 2^53 it rounds by far less than slotCount, so the result stays below it.
 */
function homeSlot(hash: number, slotCount: number): number {
  return ((hash >>> 1) * slotCount) / TWO_POW_31 | 0;
}

function slotCountFor(hosts: number): number {
  return Math.max(MIN_SLOTS, Math.ceil(hosts / FINISHED_LOAD));
}

/**
 * The filter's word for a hash: its low bits from bit 1 (bit 0 is not kept
 * in stored hashes); the slot position comes from the top bits.
 */
function filterWord(hash: number, wordMask: number): number {
  return (hash >>> 1) & wordMask;
}

/** The filter's two bits for a hash, from bits 22-31: apart from the word's bits while the filter has at most 2^21 words (6.7 M hosts). */
function filterBits(hash: number): number {
  return (1 << ((hash >>> 22) & 31)) | (1 << (hash >>> 27));
}

/** The typed arrays of one host table, as moved between threads. */
export interface HostTableArrays {
  /** [length, value (3 bytes)] then the host's text, for each host; offset 0 unused. */
  bytes: Uint8Array;
  /** Pairs [hash with HAS_SUBDOMAINS in bit 0, offset of the host's header in `bytes`]. */
  slots: Int32Array;
  /** Presence filter over the stored hashes; its length is a power of two. */
  filter: Int32Array;
  hostCount: number;
}

/**
 * A set of hostnames, each with a 24-bit value, closed under "parent domain":
 * interning "a.b.com" also interns "b.com" and "com" (value 0 unless set), so
 * a lookup walking a host from the right can stop at the first absent suffix,
 * and at the first host that has no subdomains in the table.
 */
class HostTable {
  private bytes: Uint8Array;
  /** Offset 0 marks an empty slot, so the first header starts after it. */
  private byteLength = HEADER_BYTES;
  private slots: Int32Array;
  private slotCount: number;
  /** Built by finish(); until then it has one word that lets everything through. */
  private filter: Int32Array = new Int32Array([-1]);
  private filterMask = 0;
  private hostCount = 0;
  /** Build time only: the offset of each host's parent domain (0 for a top-level label), by insertion order. */
  private parentOffsets: Int32Array | undefined;
  /** Build time only: the suffixes of the hosts being interned (see internAll). */
  private suffixHashes = new Int32Array(1024);
  private suffixStarts = new Int32Array(1024);
  private touchSink = 0;

  /**
   * Sized for `expectedHosts` up front when the caller knows it: each growth
   * copies or rehashes everything, and with a large JS heap V8 answers
   * external memory growth with full garbage collections.
   */
  static forBuild(expectedHosts: number): HostTable {
    const hosts = Math.ceil(expectedHosts * (1 + MARKERS_PER_HOST));
    const table = new HostTable(
      new Uint8Array(Math.max(64 * 1024, hosts * (HEADER_BYTES + TYPICAL_HOST_LENGTH))),
      new Int32Array(slotCountFor(hosts) * 2),
      0,
    );
    table.parentOffsets = new Int32Array(Math.max(MIN_SLOTS, hosts));
    return table;
  }

  /** A finished table from its arrays (as another thread's build sent them); the layout is checked, not the content. */
  static fromArrays({ bytes, slots, filter, hostCount }: HostTableArrays): HostTable {
    if (!(bytes instanceof Uint8Array) || !(slots instanceof Int32Array) || !(filter instanceof Int32Array) || !Number.isSafeInteger(hostCount)) {
      throw new Error('host table arrays: expected a Uint8Array, two Int32Arrays and a host count');
    }
    const filterIsPowerOfTwo = filter.length > 0 && (filter.length & (filter.length - 1)) === 0;
    if (slots.length < 2 || slots.length % 2 !== 0 || hostCount < 0 || hostCount >= slots.length / 2 || bytes.length < HEADER_BYTES || !filterIsPowerOfTwo) {
      throw new Error('host table arrays: inconsistent sizes');
    }
    const table = new HostTable(bytes, slots, hostCount);
    table.byteLength = bytes.length;
    table.filter = filter;
    table.filterMask = filter.length - 1;
    return table;
  }

  private constructor(bytes: Uint8Array, slots: Int32Array, hostCount: number) {
    this.bytes = bytes;
    this.slots = slots;
    this.slotCount = slots.length / 2;
    this.hostCount = hostCount;
  }

  get arrays(): HostTableArrays {
    if (this.parentOffsets !== undefined) throw new Error('host table is not finished');
    return { bytes: this.bytes, slots: this.slots, filter: this.filter, hostCount: this.hostCount };
  }

  get memoryBytes(): number {
    return this.bytes.byteLength + this.slots.byteLength + this.filter.byteLength;
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
   * host included) that is in the table; 0 when none is. Values are merged
   * with their parents' at build time, so the longest suffix answers alone.
   */
  deepestValue(host: string): number {
    const slots = this.slots;
    const bytes = this.bytes;
    const slotCount = this.slotCount;
    const filter = this.filter;
    const filterMask = this.filterMask;
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
      const hash = finishHash(state);
      const bits = filterBits(hash);
      if ((filter[filterWord(hash, filterMask)] & bits) !== bits) return value;
      const start = i + 1;
      const length = end - start;
      let s = homeSlot(hash, slotCount);
      let offset: number;
      let stored: number;
      for (;;) {
        offset = slots[2 * s + 1];
        if (offset === 0) return value;
        stored = slots[2 * s];
        // Only a matching hash (bit 0 aside) is worth reading the text for.
        if (((stored ^ hash) & ~HAS_SUBDOMAINS) === 0 && bytes[offset] === length) {
          const text = offset + HEADER_BYTES - start;
          let j = start;
          while (j < end && bytes[text + j] === host.charCodeAt(j)) j++;
          if (j === end) break;
        }
        if (++s === slotCount) s = 0;
      }
      value = bytes[offset + 1] | (bytes[offset + 2] << 8) | (bytes[offset + 3] << 16);
      if (i < 0 || (stored & HAS_SUBDOMAINS) === 0) return value;
      state = Math.imul(state ^ DOT, FNV_PRIME);
      i--;
    }
  }

  /** Adds `host` and its parent domains where absent; returns the offset of host's entry. */
  intern(host: string): number {
    const offsets = new Int32Array(1);
    this.internAll([host], 1, offsets);
    return offsets[0];
  }

  /**
   * Interns hosts[0..count) in order, as intern() does each, and writes the
   * offset of each one's entry to offsets[k]. A batch is quicker than one
   * host at a time: at millions of hosts each new host's slot is a read from
   * main memory (hundreds of nanoseconds here), and JavaScript cannot
   * prefetch. So the batch's slots are first read in a loop that does nothing
   * else, which lets the CPU have many of those reads in flight at once; the
   * interns then find their slots in cache.
   */
  internAll(hosts: readonly string[], count: number, offsets: Int32Array): void {
    if (this.parentOffsets === undefined) throw new Error('host table is finished');
    const suffixCount = this.hashSuffixes(hosts, count);
    this.touchHomeSlots(suffixCount);
    const hashes = this.suffixHashes;
    const starts = this.suffixStarts;
    let at = 0;
    for (let k = 0; k < count; k++) {
      const host = hosts[k];
      let offset = 0;
      let parentSlot = -1;
      for (;;) {
        const start = starts[at];
        const hash = hashes[at];
        at++;
        if (parentSlot !== -1) this.slots[2 * parentSlot] |= HAS_SUBDOMAINS;
        let slot = this.find(host, start, hash);
        if (slot < 0) slot = this.insert(host, start, hash, offset);
        offset = this.slots[2 * slot + 1];
        if (start === 0) break;
        parentSlot = slot;
      }
      offsets[k] = offset;
    }
  }

  /**
   * Fills suffixHashes and suffixStarts with every suffix of each host (on
   * label boundaries), shortest first, as a lookup walks them; returns how
   * many there are. A suffix's hash is the one deepestValue computes for it.
   */
  private hashSuffixes(hosts: readonly string[], count: number): number {
    let n = 0;
    for (let k = 0; k < count; k++) {
      const host = hosts[k];
      // A host has at most one suffix per two characters, plus one.
      if (n + (host.length >> 1) + 1 > this.suffixHashes.length) this.growSuffixScratch(n + host.length);
      const hashes = this.suffixHashes;
      const starts = this.suffixStarts;
      let state = FNV_OFFSET;
      for (let i = host.length - 1; ; i--) {
        let c = 0;
        while (i >= 0 && (c = host.charCodeAt(i)) !== DOT) {
          state = Math.imul(state ^ c, FNV_PRIME);
          i--;
        }
        hashes[n] = finishHash(state);
        starts[n] = i + 1;
        n++;
        if (i < 0) break;
        state = Math.imul(state ^ DOT, FNV_PRIME);
      }
    }
    return n;
  }

  /** Makes room for `needed` suffixes, keeping those already hashed. */
  private growSuffixScratch(needed: number): void {
    const length = Math.max(needed, this.suffixHashes.length * 2);
    const hashes = new Int32Array(length);
    const starts = new Int32Array(length);
    hashes.set(this.suffixHashes);
    starts.set(this.suffixStarts);
    this.suffixHashes = hashes;
    this.suffixStarts = starts;
  }

  /** Reads the home slot of each hashed suffix; the reads are independent of each other, so they overlap. */
  private touchHomeSlots(suffixCount: number): void {
    const slots = this.slots;
    const slotCount = this.slotCount;
    const hashes = this.suffixHashes;
    let sink = 0;
    for (let k = 0; k < suffixCount; k++) sink ^= slots[2 * homeSlot(hashes[k], slotCount) + 1];
    // Kept so that the compiler cannot drop the reads as unused.
    this.touchSink ^= sink;
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
    const bytes = this.bytes;
    let offset = HEADER_BYTES;
    for (let k = 0; k < this.hostCount; k++) {
      const parent = parentOffsets[k];
      this.setValue(offset, merge(parent === 0 ? 0 : this.valueAt(parent), this.valueAt(offset)));
      offset += HEADER_BYTES + bytes[offset];
    }
    this.parentOffsets = undefined;
    this.suffixHashes = this.suffixStarts = new Int32Array(0);
    // The buffer was sized from an estimate. Its tail past the text was never
    // written, so it is address space, not memory; copying the text into a
    // buffer of the exact size would cost a first touch of every page again
    // (a quarter of a second at 5 million domains here) for nothing.
    this.bytes = bytes.subarray(0, this.byteLength);
    this.compactSlots();
    this.buildFilter();
  }

  /**
   * Rehashes into FINISHED_LOAD's slot count when that is worth it. Home slots
   * follow the hash's top bits in both tables, so reading the old one in order
   * writes the new one almost in order too.
   */
  private compactSlots(): void {
    const slotCount = slotCountFor(this.hostCount);
    if (slotCount < this.slotCount * (1 - WORTHWHILE_SHRINK)) this.rehash(slotCount);
  }

  private buildFilter(): void {
    let words = 1;
    while (words * 32 < this.hostCount * FILTER_BITS_PER_HOST) words *= 2;
    const filter = new Int32Array(words);
    const mask = words - 1;
    const slots = this.slots;
    for (let s = 0; s < slots.length; s += 2) {
      if (slots[s + 1] === 0) continue;
      // The stored hash lacks bit 0, which neither filterWord nor filterBits reads.
      const hash = slots[s];
      filter[filterWord(hash, mask)] |= filterBits(hash);
    }
    this.filter = filter;
    this.filterMask = mask;
  }

  /** The slot holding host[start..], or -1. */
  private find(host: string, start: number, hash: number): number {
    const slots = this.slots;
    const bytes = this.bytes;
    const slotCount = this.slotCount;
    const length = host.length - start;
    let s = homeSlot(hash, slotCount);
    for (;;) {
      const offset = slots[2 * s + 1];
      if (offset === 0) return -1;
      if (((slots[2 * s] ^ hash) & ~HAS_SUBDOMAINS) === 0 && bytes[offset] === length) {
        const text = offset + HEADER_BYTES;
        let j = 0;
        while (j < length && bytes[text + j] === host.charCodeAt(start + j)) j++;
        if (j === length) return s;
      }
      if (++s === slotCount) s = 0;
    }
  }

  /** Appends host[start..] with value 0; returns its slot. */
  private insert(host: string, start: number, hash: number, parentOffset: number): number {
    if (this.hostCount + 1 > this.slotCount * MAX_LOAD) this.rehash(this.slotCount * 2);
    let parentOffsets = this.parentOffsets!;
    if (this.hostCount === parentOffsets.length) {
      parentOffsets = new Int32Array(parentOffsets.length * 2);
      parentOffsets.set(this.parentOffsets!);
      this.parentOffsets = parentOffsets;
    }
    parentOffsets[this.hostCount] = parentOffset;
    const offset = this.appendText(host, start);
    this.hostCount++;
    return this.place(this.slots, this.slotCount, hash & ~HAS_SUBDOMAINS, offset);
  }

  private appendText(host: string, start: number): number {
    const length = host.length - start;
    const offset = this.byteLength;
    const needed = offset + HEADER_BYTES + length;
    if (needed > 0x7fffffff) throw new Error('host table text exceeds 2 GiB');
    if (needed > this.bytes.length) {
      const grown = new Uint8Array(Math.min(0x7fffffff, Math.max(needed, Math.ceil(this.bytes.length * 1.5))));
      grown.set(this.bytes.subarray(0, this.byteLength));
      this.bytes = grown;
    }
    const bytes = this.bytes;
    bytes[offset] = length; // the header's value bytes start at 0
    for (let j = 0; j < length; j++) bytes[offset + HEADER_BYTES + j] = host.charCodeAt(start + j);
    this.byteLength = needed;
    return offset;
  }

  private place(slots: Int32Array, slotCount: number, stored: number, offset: number): number {
    let s = homeSlot(stored, slotCount);
    while (slots[2 * s + 1] !== 0) if (++s === slotCount) s = 0;
    slots[2 * s] = stored;
    slots[2 * s + 1] = offset;
    return s;
  }

  /** Moves every host into a new slot array of `slotCount` slots. */
  private rehash(slotCount: number): void {
    const slots = new Int32Array(slotCount * 2);
    for (let s = 0; s < this.slotCount; s++) {
      const offset = this.slots[2 * s + 1];
      if (offset !== 0) this.place(slots, slotCount, this.slots[2 * s], offset);
    }
    this.slots = slots;
    this.slotCount = slotCount;
  }
}

/** Category sets, interned: id 0 is the empty set; a set's array is frozen and shared. */
class CategorySets {
  readonly list: (readonly number[])[] = [EMPTY];
  private readonly idByKey = new Map<string, number>([['', 0]]);
  /** By set id: category id → the id of the set with that category added. */
  private readonly withCategoryCache: Map<number, number>[] = [];
  private readonly unionCache = new Map<number, number>();
  /** category id → the id of the set holding it alone (0: not yet interned); most hosts are in one category. */
  private readonly singletonIds: number[] = [];

  /** The sets of another thread's build, as MatcherParts carries them. */
  static fromList(sets: readonly (readonly number[])[]): (readonly number[])[] {
    if (!Array.isArray(sets) || sets.length === 0 || sets[0].length !== 0) throw new Error('category sets: set 0 must be the empty set');
    return sets.map((set, id) => {
      if (id === 0) return EMPTY;
      if (!Array.isArray(set) || !set.every((c, k) => Number.isInteger(c) && c >= 0 && c <= MAX_CATEGORY_ID && (k === 0 || c > set[k - 1]))) {
        throw new Error(`category sets: set ${id} is not a sorted list of category ids`);
      }
      return Object.freeze([...set]);
    });
  }

  withCategory(setId: number, categoryId: number): number {
    if (setId === 0) {
      const known = this.singletonIds[categoryId];
      if (known !== undefined) return known;
      return (this.singletonIds[categoryId] = this.intern([categoryId]));
    }
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

/**
 * What a CompiledMatcher is made of, in a form postMessage can carry: the
 * typed arrays move without a copy (see transferList), the small rest is
 * cloned. A matcher built in a worker thread crosses over this way.
 */
export interface MatcherParts {
  domains: HostTableArrays;
  urls: HostTableArrays;
  urlRuleLists: readonly UrlRuleList[];
  categorySets: readonly (readonly number[])[];
  domainCount: number;
  urlCount: number;
}

/** Domain entries interned together (HostTable.internAll). */
const DOMAIN_BATCH = 256;

export class MatcherBuilder {
  private readonly domains: HostTable;
  private readonly sets = new CategorySets();
  private domainEntries = 0;
  /** Domain entries waiting for their batch, and their categories. */
  private readonly pendingHosts: string[] = [];
  private readonly pendingCategories = new Int32Array(DOMAIN_BATCH);
  private readonly pendingOffsets = new Int32Array(DOMAIN_BATCH);
  /** host → path → category-set id */
  private readonly urlRules = new Map<string, Map<string, number>>();
  private urlEntries = 0;
  private built = false;

  /** expectedDomains (optional) pre-sizes the tables; a build from a known list is faster with it. */
  constructor(expectedDomains = 0) {
    if (!Number.isSafeInteger(expectedDomains) || expectedDomains < 0) throw new Error(`expectedDomains must be a non-negative integer, got ${expectedDomains}`);
    this.domains = HostTable.forBuild(expectedDomains);
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
    this.internPendingDomains();
    // A host is covered by its own entry and by every parent domain's.
    this.domains.finish((inherited, own) => this.sets.union(inherited, own));
    const { table: urls, lists } = this.compileUrlRules();
    return new CompiledMatcher(this.domains, urls, lists, this.sets.list, this.domainEntries, this.urlEntries);
  }

  private addDomain(host: string, categoryId: number): void {
    if (normaliseHost(host) !== host) throw new Error(`domain entry is not a normalised host: ${JSON.stringify(host)}`);
    this.pendingCategories[this.pendingHosts.length] = categoryId;
    this.pendingHosts.push(host);
    if (this.pendingHosts.length === DOMAIN_BATCH) this.internPendingDomains();
  }

  /** Interns the waiting domain entries and adds each one's category to its host's set, in the order they came. */
  private internPendingDomains(): void {
    const hosts = this.pendingHosts;
    this.domains.internAll(hosts, hosts.length, this.pendingOffsets);
    for (let k = 0; k < hosts.length; k++) {
      const offset = this.pendingOffsets[k];
      const setId = this.domains.valueAt(offset);
      if (setId === 0) this.domainEntries++;
      this.domains.setValue(offset, this.sets.withCategory(setId, this.pendingCategories[k]));
    }
    hosts.length = 0;
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
    const table = HostTable.forBuild(this.urlRules.size);
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
  /**
   * A matcher from the parts of one built elsewhere (another thread): the
   * arrays are taken over, not copied. Shapes are checked so that a wrong
   * message fails here rather than as wrong answers later.
   */
  static fromParts(parts: MatcherParts): CompiledMatcher {
    const categorySets = CategorySets.fromList(parts.categorySets);
    const urlRuleLists = parts.urlRuleLists.map(({ paths, setIds }, id) => {
      const valid =
        Array.isArray(paths) && Array.isArray(setIds) && paths.length === setIds.length &&
        paths.every((p) => typeof p === 'string') && setIds.every((s) => Number.isInteger(s) && s >= 0 && s < categorySets.length);
      if (!valid) throw new Error(`matcher parts: url rule list ${id} is malformed`);
      return { paths, setIds };
    });
    for (const count of [parts.domainCount, parts.urlCount]) {
      if (!Number.isSafeInteger(count) || count < 0) throw new Error('matcher parts: entry counts must be non-negative integers');
    }
    return new CompiledMatcher(
      HostTable.fromArrays(parts.domains),
      HostTable.fromArrays(parts.urls),
      urlRuleLists,
      categorySets,
      parts.domainCount,
      parts.urlCount,
    );
  }

  /** The buffers to list when posting `parts`, so that they move instead of being copied. */
  static transferList(parts: MatcherParts): ArrayBuffer[] {
    return [parts.domains, parts.urls].flatMap(({ bytes, slots, filter }) => [bytes.buffer, slots.buffer, filter.buffer] as ArrayBuffer[]);
  }

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

  /** This matcher's parts, to post to another thread; the matcher must not be used once they are transferred. */
  toParts(): MatcherParts {
    return {
      domains: this.domains.arrays,
      urls: this.urls.arrays,
      urlRuleLists: this.urlRuleLists,
      categorySets: this.categorySets,
      domainCount: this.domainCount,
      urlCount: this.urlCount,
    };
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
