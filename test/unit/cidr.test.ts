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
