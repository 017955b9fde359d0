// The compiled category lists: which categories cover a host (domain entries)
// or a host plus path (url entries). This is the proxy's hot path, so lookups
// walk the host once from the right, hashing as they go, and probe a flat
// open-addressing table of host fingerprints at each label boundary: no
// substrings, no allocation.
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
/** A slot is three ints: [hash, check, meta]. */
const SLOT_INTS = 3;
/** meta's sign bit: the slot holds a host (an empty slot's meta is 0). */
const OCCUPIED = 1 << 31;
/** meta's bit 30: the host has longer hosts (subdomains) in the table. */
const HAS_SUBDOMAINS = 1 << 30;
/** meta's low 30 bits: the host's id while building, its value once finished. */
const PAYLOAD = HAS_SUBDOMAINS - 1;
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
/** The hash: FNV-1a. */
const HASH_OFFSET = 0x811c9dc5 | 0;
const HASH_PRIME = 0x01000193;
/** The check: a walk with another offset, an odd multiplier (murmur2's) and a rotation (checkStep), finished differently. */
const CHECK_OFFSET = 0x3c6ef372;
const CHECK_MULTIPLIER = 0x5bd1e995;
const TWO_POW_31 = 2 ** 31;
/**
 * Presence filter bits per host: the filter (a blocked Bloom filter, two
 * bits in one 32-bit word) is small enough to stay in the CPU cache, so most
 * misses end there without touching the slot array in main memory (by the
 * usual estimate a few per cent of absent hosts get through at this size).
 */
const FILTER_BITS_PER_HOST = 10;

/** One character into the hash's state (FNV-1a). */
function hashStep(state: number, c: number): number {
  return Math.imul(state ^ c, HASH_PRIME);
}

/** Spreads the hash's state over all 32 bits (murmur3's finaliser). */
function finishHash(state: number): number {
  let h = state ^ (state >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * One character into the check's state. The rotation brings the product's
 * high bits down: in a plain xor-multiply walk (as the hash is) the state's
 * low k bits depend only on the characters' low k bits, so for names that
 * differ only in a high bit ('0' and 'p', '.' and 'n') those bits would be
 * the same and the check would tell them apart by fewer than 32.
 */
function checkStep(state: number, c: number): number {
  const h = Math.imul(state ^ c, CHECK_MULTIPLIER);
  return (h << 15) | (h >>> 17);
}

/** Spreads the check's state, with the suffix's length folded in (another finaliser, lowbias32's). */
function finishCheck(state: number, length: number): number {
  let h = state ^ length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return h ^ (h >>> 16);
}

/**
 * The slot where a hash's probe starts: its top 31 bits scaled to the slot
 * count (so any count works, not only powers of two). Where the product
 * exceeds 2^53 it rounds by far less than slotCount, so the result stays
 * below it.
 */
function homeSlot(hash: number, slotCount: number): number {
  return ((hash >>> 1) * slotCount) / TWO_POW_31 | 0;
}

function slotCountFor(hosts: number): number {
  return Math.max(MIN_SLOTS, Math.ceil(hosts / FINISHED_LOAD));
}

/** The filter's two bits for a hash, from bits 22-31: apart from the word's (the low bits) while the filter has at most 2^22 words (13 M hosts). */
function filterBits(hash: number): number {
  return (1 << ((hash >>> 22) & 31)) | (1 << (hash >>> 27));
}

/**
 * A host's fingerprint, as the table keeps it, computed on its own: for tests
 * (lookups and builds compute it incrementally, suffix by suffix, in the same
 * steps).
 */
export function hostFingerprint(host: string): { hash: number; check: number } {
  let hash = HASH_OFFSET;
  let check = CHECK_OFFSET;
  for (let i = host.length - 1; i >= 0; i--) {
    const c = host.charCodeAt(i);
    hash = hashStep(hash, c);
    check = checkStep(check, c);
  }
  return { hash: finishHash(hash), check: finishCheck(check, host.length) };
}

/** The typed arrays of one host table, as moved between threads. */
export interface HostTableArrays {
  /** SLOT_INTS ints per slot: [hash, check, meta]. */
  slots: Int32Array;
  /** Presence filter over the hashes; its length is a power of two. */
  filter: Int32Array;
  hostCount: number;
}

/**
 * A set of hostnames, each with a 24-bit value, closed under "parent domain":
 * interning "a.b.com" also interns "b.com" and "com" (value 0 unless set), so
 * a lookup walking a host from the right can stop at the first absent suffix,
 * and at the first host that has no subdomains in the table.
 *
 * A host is kept as a 64-bit fingerprint, two independent 32-bit hashes of
 * its text, not as the text itself. A hit then costs the filter and the slot
 * (not also the text, a third read from main memory), and there is no text
 * to hold. The price is that two names could share a fingerprint, about one
 * chance in 2^64 for a given pair. A name that is not listed would then get
 * the listed host's categories. Two listed hosts would be kept as one, the
 * later one's categories added to it but its parent domains' not: with 5
 * million hosts, about one build in a million.
 */
class HostTable {
  private slots: Int32Array;
  private slotCount: number;
  /** Built by finish(); until then it has one word that lets everything through. */
  private filter: Int32Array = new Int32Array([-1]);
  private filterMask = 0;
  private hostCount = 0;
  /** Build time only: each host's value and parent's id (-1 for a top-level label), by id (insertion order). */
  private values: Int32Array | undefined;
  private parents: Int32Array | undefined;
  /** Build time only: the suffixes of the hosts being interned (see internAll). */
  private suffixHashes: Int32Array = new Int32Array(1024);
  private suffixChecks: Int32Array = new Int32Array(1024);
  private suffixStarts: Int32Array = new Int32Array(1024);
  private touchSink = 0;

  /**
   * Sized for `expectedHosts` up front when the caller knows it: each growth
   * copies or rehashes everything, and with a large JS heap V8 answers
   * external memory growth with full garbage collections.
   */
  static forBuild(expectedHosts: number): HostTable {
    const hosts = Math.ceil(expectedHosts * (1 + MARKERS_PER_HOST));
    const table = new HostTable(new Int32Array(slotCountFor(hosts) * SLOT_INTS), 0);
    table.values = new Int32Array(Math.max(MIN_SLOTS, hosts));
    table.parents = new Int32Array(Math.max(MIN_SLOTS, hosts));
    return table;
  }

  /** A finished table from its arrays (as another thread's build sent them); the layout is checked, not the content. */
  static fromArrays({ slots, filter, hostCount }: HostTableArrays): HostTable {
    if (!(slots instanceof Int32Array) || !(filter instanceof Int32Array) || !Number.isSafeInteger(hostCount)) {
      throw new Error('host table arrays: expected two Int32Arrays and a host count');
    }
    const filterIsPowerOfTwo = filter.length > 0 && (filter.length & (filter.length - 1)) === 0;
    const slotCount = slots.length / SLOT_INTS;
    if (slotCount < 1 || !Number.isInteger(slotCount) || hostCount < 0 || hostCount >= slotCount || !filterIsPowerOfTwo) {
      throw new Error('host table arrays: inconsistent sizes');
    }
    const table = new HostTable(slots, hostCount);
    table.filter = filter;
    table.filterMask = filter.length - 1;
    return table;
  }

  private constructor(slots: Int32Array, hostCount: number) {
    this.slots = slots;
    this.slotCount = slots.length / SLOT_INTS;
    this.hostCount = hostCount;
  }

  get arrays(): HostTableArrays {
    if (this.values !== undefined) throw new Error('host table is not finished');
    return { slots: this.slots, filter: this.filter, hostCount: this.hostCount };
  }

  get memoryBytes(): number {
    return this.slots.byteLength + this.filter.byteLength;
  }

  /** Build time only: the value of the host with this id. */
  valueAt(id: number): number {
    return this.buildValues()[id];
  }

  /** Build time only. */
  setValue(id: number, value: number): void {
    this.buildValues()[id] = checkedValue(value);
  }

  private buildValues(): Int32Array {
    if (this.values === undefined) throw new Error('host table is finished');
    return this.values;
  }

  /**
   * The value of the longest suffix of `host` (on label boundaries, the whole
   * host included) that is in the table; 0 when none is. Values are merged
   * with their parents' at build time, so the longest suffix answers alone.
   */
  deepestValue(host: string): number {
    const slots = this.slots;
    const filter = this.filter;
    const filterMask = this.filterMask;
    const end = host.length;
    // A suffix starting after a dot below this index is longer than any hostname.
    const lowestDot = end - MAX_HOST_LENGTH - 1;
    const floor = lowestDot > 0 ? lowestDot : 0;
    let hashState = HASH_OFFSET;
    let checkState = CHECK_OFFSET;
    let value = 0;
    let i = end - 1;
    for (;;) {
      let c = 0;
      while (i >= floor && (c = host.charCodeAt(i)) !== DOT) {
        hashState = hashStep(hashState, c);
        checkState = checkStep(checkState, c);
        i--;
      }
      // host[i + 1, end) is a suffix: i is at a dot, or -1 at the host's start.
      if (i < lowestDot) return value;
      const hash = finishHash(hashState);
      const bits = filterBits(hash);
      if ((filter[hash & filterMask] & bits) !== bits) return value;
      const slot = this.find(hash, finishCheck(checkState, end - i - 1));
      if (slot < 0) return value;
      const meta = slots[slot * SLOT_INTS + 2];
      value = meta & PAYLOAD;
      if (i < 0 || (meta & HAS_SUBDOMAINS) === 0) return value;
      hashState = hashStep(hashState, DOT);
      checkState = checkStep(checkState, DOT);
      i--;
    }
  }

  /** Adds `host` and its parent domains where absent; returns host's id. */
  intern(host: string): number {
    const ids = new Int32Array(1);
    this.internAll([host], 1, ids);
    return ids[0];
  }

  /**
   * Interns hosts[0..count) in order, as intern() does each, and writes each
   * one's id to ids[k]. A batch is quicker than one host at a time: at
   * millions of hosts each new host's slot is a read from main memory
   * (hundreds of nanoseconds here), and JavaScript cannot prefetch. So the
   * batch's slots are first read in a loop that does nothing else, which
   * lets the CPU have many of those reads in flight at once; the interns
   * then find their slots in cache.
   */
  internAll(hosts: readonly string[], count: number, ids: Int32Array): void {
    this.buildValues();
    const suffixCount = this.hashSuffixes(hosts, count);
    this.touchHomeSlots(suffixCount);
    const hashes = this.suffixHashes;
    const checks = this.suffixChecks;
    const starts = this.suffixStarts;
    let at = 0;
    for (let k = 0; k < count; k++) {
      let id = -1;
      let parentSlot = -1;
      for (;;) {
        const start = starts[at];
        const hash = hashes[at];
        const check = checks[at];
        at++;
        if (parentSlot !== -1) this.slots[parentSlot * SLOT_INTS + 2] |= HAS_SUBDOMAINS;
        let slot = this.find(hash, check);
        if (slot < 0) slot = this.insert(hash, check, id);
        id = this.slots[slot * SLOT_INTS + 2] & PAYLOAD;
        if (start === 0) break;
        parentSlot = slot;
      }
      ids[k] = id;
    }
  }

  /**
   * Fills the suffix scratch with every suffix of each host (on label
   * boundaries), shortest first, as a lookup walks them; returns how many
   * there are. A suffix's hash and check are the ones deepestValue computes.
   */
  private hashSuffixes(hosts: readonly string[], count: number): number {
    let n = 0;
    for (let k = 0; k < count; k++) {
      const host = hosts[k];
      // A host has at most one suffix per two characters, plus one.
      if (n + (host.length >> 1) + 1 > this.suffixHashes.length) this.growSuffixScratch(n + host.length);
      const hashes = this.suffixHashes;
      const checks = this.suffixChecks;
      const starts = this.suffixStarts;
      const end = host.length;
      let hashState = HASH_OFFSET;
      let checkState = CHECK_OFFSET;
      for (let i = end - 1; ; i--) {
        let c = 0;
        while (i >= 0 && (c = host.charCodeAt(i)) !== DOT) {
          hashState = hashStep(hashState, c);
          checkState = checkStep(checkState, c);
          i--;
        }
        hashes[n] = finishHash(hashState);
        checks[n] = finishCheck(checkState, end - i - 1);
        starts[n] = i + 1;
        n++;
        if (i < 0) break;
        hashState = hashStep(hashState, DOT);
        checkState = checkStep(checkState, DOT);
      }
    }
    return n;
  }

  /** Makes room for `needed` suffixes, keeping those already hashed. */
  private growSuffixScratch(needed: number): void {
    const length = Math.max(needed, this.suffixHashes.length * 2);
    this.suffixHashes = grownCopy(this.suffixHashes, length);
    this.suffixChecks = grownCopy(this.suffixChecks, length);
    this.suffixStarts = grownCopy(this.suffixStarts, length);
  }

  /** Reads the home slot of each hashed suffix; the reads are independent of each other, so they overlap. */
  private touchHomeSlots(suffixCount: number): void {
    const slots = this.slots;
    const slotCount = this.slotCount;
    const hashes = this.suffixHashes;
    let sink = 0;
    for (let k = 0; k < suffixCount; k++) sink ^= slots[homeSlot(hashes[k], slotCount) * SLOT_INTS + 2];
    // Kept so that the compiler cannot drop the reads as unused.
    this.touchSink ^= sink;
  }

  /**
   * Ends the build: rewrites every host's value as merge(parent's new value,
   * own value), so a value can carry what its parent domains say, moves the
   * values into the slots and drops build-time state. Ids follow insertion
   * order and a parent is always inserted before its children, so one pass
   * in id order merges.
   */
  finish(merge: (inherited: number, own: number) => number): void {
    const values = this.buildValues();
    const parents = this.parents!;
    for (let id = 0; id < this.hostCount; id++) {
      const parent = parents[id];
      values[id] = checkedValue(merge(parent < 0 ? 0 : values[parent], values[id]));
    }
    const slots = this.slots;
    for (let at = 2; at < slots.length; at += SLOT_INTS) {
      const meta = slots[at];
      if (meta !== 0) slots[at] = (meta & ~PAYLOAD) | values[meta & PAYLOAD];
    }
    this.values = this.parents = undefined;
    this.suffixHashes = this.suffixChecks = this.suffixStarts = new Int32Array(0);
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
    for (let at = 0; at < slots.length; at += SLOT_INTS) {
      if (slots[at + 2] === 0) continue;
      const hash = slots[at];
      filter[hash & mask] |= filterBits(hash);
    }
    this.filter = filter;
    this.filterMask = mask;
  }

  /** The slot holding the host with this fingerprint, or -1. */
  private find(hash: number, check: number): number {
    const slots = this.slots;
    const slotCount = this.slotCount;
    let s = homeSlot(hash, slotCount);
    for (;;) {
      const at = s * SLOT_INTS;
      if (slots[at + 2] === 0) return -1;
      if (slots[at] === hash && slots[at + 1] === check) return s;
      if (++s === slotCount) s = 0;
    }
  }

  /** Adds a host with value 0 under the next id; returns its slot. */
  private insert(hash: number, check: number, parentId: number): number {
    if (this.hostCount === PAYLOAD) throw new Error('host table holds more than 2^30 hosts');
    if (this.hostCount + 1 > this.slotCount * MAX_LOAD) this.rehash(this.slotCount * 2);
    const id = this.hostCount++;
    if (id === this.values!.length) {
      this.values = grownCopy(this.values!);
      this.parents = grownCopy(this.parents!);
    }
    this.values![id] = 0;
    this.parents![id] = parentId;
    return this.place(this.slots, this.slotCount, hash, check, OCCUPIED | id);
  }

  private place(slots: Int32Array, slotCount: number, hash: number, check: number, meta: number): number {
    let s = homeSlot(hash, slotCount);
    while (slots[s * SLOT_INTS + 2] !== 0) if (++s === slotCount) s = 0;
    const at = s * SLOT_INTS;
    slots[at] = hash;
    slots[at + 1] = check;
    slots[at + 2] = meta;
    return s;
  }

  /** Moves every host into a new slot array of `slotCount` slots. */
  private rehash(slotCount: number): void {
    const old = this.slots;
    const slots = new Int32Array(slotCount * SLOT_INTS);
    for (let at = 0; at < old.length; at += SLOT_INTS) {
      if (old[at + 2] !== 0) this.place(slots, slotCount, old[at], old[at + 1], old[at + 2]);
    }
    this.slots = slots;
    this.slotCount = slotCount;
  }
}

function checkedValue(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_VALUE) throw new Error(`host table value out of range: ${value}`);
  return value;
}

/** A copy of `array` in a longer one (twice as long unless told). */
function grownCopy(array: Int32Array, length = array.length * 2): Int32Array {
  const grown = new Int32Array(length);
  grown.set(array);
  return grown;
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
  private readonly pendingIds = new Int32Array(DOMAIN_BATCH);
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
    this.domains.internAll(hosts, hosts.length, this.pendingIds);
    for (let k = 0; k < hosts.length; k++) {
      const id = this.pendingIds[k];
      const setId = this.domains.valueAt(id);
      if (setId === 0) this.domainEntries++;
      this.domains.setValue(id, this.sets.withCategory(setId, this.pendingCategories[k]));
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
    return [parts.domains, parts.urls].flatMap(({ slots, filter }) => [slots.buffer, filter.buffer] as ArrayBuffer[]);
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

  /** Bytes held in typed arrays (the hash tables and their filters: no host text is kept). */
  get memoryBytes(): number {
    return this.domains.memoryBytes + this.urls.memoryBytes;
  }

  /** Distinct category combinations in use. */
  get categorySetCount(): number {
    return this.categorySets.length - 1;
  }
}
