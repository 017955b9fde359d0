// Client address → the assignment of the most specific range that contains
// it. Ranges are bucketed by prefix length and keyed by their network
// number, so a lookup is one masked map probe per distinct prefix length in
// use (a handful), whatever the number of assignments.
import net from 'node:net';
import { parseCidr, unmapIpv4 } from '../cidr.js';

/** Assumes net.isIPv4(address). The unsigned 32-bit value, without allocating. */
function ipv4ToNumber(address: string): number {
  let value = 0;
  let part = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 0x2e) {
      value = value * 256 + part;
      part = 0;
    } else {
      part = part * 10 + (c - 0x30);
    }
  }
  return value * 256 + part;
}

/** Assumes net.isIPv6(address). */
function ipv6ToBigInt(address: string): bigint {
  let text = address;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = ipv4ToNumber(tail);
    text = `${text.slice(0, lastColon + 1)}${Math.floor(v4 / 0x10000).toString(16)}:${(v4 % 0x10000).toString(16)}`;
  }
  const [head, rest] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - restGroups.length;
  const groups = rest === undefined ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...restGroups];
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(parseInt(g, 16));
  return value;
}

interface Bucket<K, T> {
  prefix: number;
  networks: Map<K, T>;
}

/** IPv4 network number: the top `prefix` bits (a plain number: lookups of IPv4 clients allocate nothing). */
function ipv4Network(address: number, prefix: number): number {
  return Math.floor(address / 2 ** (32 - prefix));
}

function ipv6Network(address: bigint, prefix: number): bigint {
  return address >> BigInt(128 - prefix);
}

export class IpAssignmentMap<T> {
  private readonly v4: Bucket<number, T>[] = [];
  private readonly v6: Bucket<bigint, T>[] = [];
  readonly size: number;

  /** Throws on a malformed CIDR, naming it. Host bits set in a range are ignored. */
  constructor(entries: ReadonlyArray<{ cidr: string; value: T }>) {
    for (const { cidr, value } of entries) {
      const parsed = parseCidr(cidr);
      if (!parsed) throw new Error(`"${cidr}" is not an address or CIDR range`);
      if (parsed.family === 'ipv4') {
        bucketFor(this.v4, parsed.prefix).set(ipv4Network(ipv4ToNumber(parsed.address), parsed.prefix), value);
      } else {
        bucketFor(this.v6, parsed.prefix).set(ipv6Network(ipv6ToBigInt(parsed.address), parsed.prefix), value);
      }
    }
    // Longest prefix first: the first hit is the most specific.
    this.v4.sort((a, b) => b.prefix - a.prefix);
    this.v6.sort((a, b) => b.prefix - a.prefix);
    this.size = entries.length;
  }

  /** The most specific assignment containing `address`, or undefined (also for a non-address). */
  lookup(address: string): T | undefined {
    if (this.size === 0) return undefined;
    const plain = unmapIpv4(address);
    const version = net.isIP(plain);
    if (version === 4) {
      const number = ipv4ToNumber(plain);
      for (const bucket of this.v4) {
        const hit = bucket.networks.get(ipv4Network(number, bucket.prefix));
        if (hit !== undefined) return hit;
      }
    } else if (version === 6 && this.v6.length > 0) {
      const number = ipv6ToBigInt(plain);
      for (const bucket of this.v6) {
        const hit = bucket.networks.get(ipv6Network(number, bucket.prefix));
        if (hit !== undefined) return hit;
      }
    }
    return undefined;
  }
}

function bucketFor<K, T>(buckets: Bucket<K, T>[], prefix: number): Map<K, T> {
  let bucket = buckets.find((b) => b.prefix === prefix);
  if (!bucket) {
    bucket = { prefix, networks: new Map() };
    buckets.push(bucket);
  }
  return bucket.networks;
}
