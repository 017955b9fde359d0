// CIDR ranges and membership tests, on top of node:net's BlockList.
import net from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses "10.0.0.0/8", "fd00::/8" or a bare address (a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const [address, prefixText, ...rest] = text.trim().split('/');
  if (rest.length > 0 || address === undefined) return undefined;
  const version = net.isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Strips the IPv4-mapped IPv6 prefix that dual-stack sockets report (::ffff:10.0.0.1). */
export function unmapIpv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The dotted-quad IPv4 address as an unsigned 32-bit number, or -1 when it is not one. */
function ipv4ToNumber(address: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3 && !(digits > 0 && octet === 0)) {
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  return dots === 3 && digits > 0 ? value * 256 + octet : -1;
}

// Dotted-quad IPv4 addresses are checked with arithmetic: this runs on every connection and
// every request, and node:net's BlockList builds a SocketAddress object for each check.
// Everything else goes to a BlockList holding every range, as before.
export class CidrSet {
  private readonly ipv4: Array<{ first: number; last: number }> = [];
  private readonly list = new net.BlockList();
  readonly size: number;

  constructor(cidrs: readonly Cidr[]) {
    for (const c of cidrs) {
      this.list.addSubnet(c.address, c.prefix, c.family);
      if (c.family === 'ipv4') {
        const span = 2 ** (32 - c.prefix);
        const first = Math.floor(ipv4ToNumber(c.address) / span) * span;
        this.ipv4.push({ first, last: first + span - 1 });
      }
    }
    this.size = cidrs.length;
  }

  has(address: string): boolean {
    const plain = unmapIpv4(address);
    const v4 = ipv4ToNumber(plain);
    if (v4 >= 0) return this.ipv4.some((range) => v4 >= range.first && v4 <= range.last);
    return net.isIPv6(plain) && this.list.check(plain, 'ipv6');
  }
}
