import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CidrSet, parseCidr } from '../../core/cidr.js';

describe('CIDR ranges', () => {
  it('parses ranges and bare addresses, and refuses nonsense', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
    expect(parseCidr('192.168.1.7')).toEqual({ address: '192.168.1.7', prefix: 32, family: 'ipv4' });
    for (const bad of ['', '10.0.0.0/', '10.0.0.0/x', '10.0.0.0/40', 'example.com', '1.2.3.4/8/9', '::1/129']) {
      expect(parseCidr(bad), bad).toBeUndefined();
    }
  });

  it('matches members, including IPv4-mapped IPv6 addresses from dual-stack sockets', () => {
    const set = new CidrSet([parseCidr('10.0.0.0/8')!, parseCidr('::1')!]);
    expect(set.has('10.20.30.40')).toBe(true);
    expect(set.has('::ffff:10.20.30.40')).toBe(true);
    expect(set.has('::1')).toBe(true);
    expect(set.has('11.0.0.1')).toBe(false);
    expect(set.has('not-an-ip')).toBe(false);
  });
});

describe('CidrSet agrees with node:net BlockList', () => {
  const octet = fc.integer({ min: 0, max: 255 });
  const ipv4 = fc.tuple(octet, octet, octet, octet).map((parts) => parts.join('.'));

  it('for random IPv4 addresses and ranges, including mapped and malformed spellings', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })), { maxLength: 6 }), ipv4, fc.constantFrom('', '::ffff:'), (ranges, address, prefix) => {
        const reference = new net.BlockList();
        for (const [base, bits] of ranges) reference.addSubnet(base, bits, 'ipv4');
        const set = new CidrSet(ranges.map(([base, bits]) => parseCidr(`${base}/${bits}`)!));
        expect(set.has(`${prefix}${address}`)).toBe(reference.check(address, 'ipv4'));
      }),
      { numRuns: 2_000 },
    );
    const set = new CidrSet([parseCidr('10.0.0.0/8')!]);
    for (const bad of ['010.0.0.1', '10.0.0', '10.0.0.1.', '10..0.1', '10.0.0.256', '10.0.0.1a', '']) expect(set.has(bad), bad).toBe(false);
  });

  it('for IPv6 addresses, as BlockList says', () => {
    const set = new CidrSet([parseCidr('fc00::/7')!, parseCidr('::1')!, parseCidr('10.0.0.0/8')!]);
    expect(set.has('fd12:3456::1')).toBe(true);
    expect(set.has('::1')).toBe(true);
    expect(set.has('2001:db8::1')).toBe(false);
  });
});
