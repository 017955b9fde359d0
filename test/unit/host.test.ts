import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { normaliseHost, splitHostPort } from '../../blocklists/host.js';

describe('normaliseHost: names', () => {
  it.each([
    ['example.com', 'example.com'],
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['WWW.Example.Com.', 'www.example.com'],
    ['localhost', 'localhost'],
    ['_dmarc.example.com', '_dmarc.example.com'],
    ['a-b.c_d.example', 'a-b.c_d.example'],
    ['1password.com', '1password.com'],
    ['123.example.com', '123.example.com'],
    ['3com', '3com'],
    ['0xg', '0xg'],
    ['a.0xg', 'a.0xg'],
    ['1.2.3.0xg', '1.2.3.0xg'],
    ['bücher.de', 'xn--bcher-kva.de'],
    ['BÜCHER.de.', 'xn--bcher-kva.de'],
    ['xn--bcher-kva.de', 'xn--bcher-kva.de'],
    ['XN--BCHER-KVA.DE', 'xn--bcher-kva.de'],
    ['例え。テスト', 'xn--r8jz45g.xn--zckzah'],
    ['ＥＸＡＭＰＬＥ.com', 'example.com'],
    ['faß.de', 'xn--fa-hia.de'],
    ['axn--b.com', 'axn--b.com'],
    ['a.xn-b.com', 'a.xn-b.com'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseHost(input)).toBe(expected);
  });

  it('returns an already-canonical name as the same string', () => {
    const host = ['www', 'example', 'co', 'uk'].join('.');
    expect(normaliseHost(host)).toBe(host);
  });

  it.each([
    ['', 'empty'],
    [' ', 'whitespace'],
    [' example.com', 'leading space'],
    ['example.com ', 'trailing space'],
    ['exa mple.com', 'inner space'],
    ['example.com\t', 'tab'],
    ['exam\nple.com', 'newline'],
    ['example\u0000.com', 'NUL'],
    ['example\u007f.com', 'DEL'],
    ['.', 'only a dot'],
    ['..', 'two dots'],
    ['.example.com', 'leading dot'],
    ['example..com', 'empty label'],
    ['example.com..', 'two trailing dots'],
    ['exa%6dple.com', 'percent'],
    ['user@example.com', 'userinfo'],
    ['example.com/path', 'slash'],
    ['example.com:80', 'port'],
    ['exa*mple.com', 'asterisk'],
    ['exa+mple.com', 'plus'],
    ['[example.com]', 'bracketed name'],
    ['a'.repeat(64) + '.com', 'label of 64 bytes'],
    [`${'a'.repeat(63)}.`.repeat(4).slice(0, 255), 'over 253 bytes'],
    ['xn--zz.com', 'invalid punycode'],
    ['www.XN--ZZ.com', 'invalid punycode in upper case'],
    ['foo.123', 'name ending in a number'],
    ['a.0x', 'name ending in a hex number'],
    ['exa\u200bmple\u0000.com', 'non-ASCII with a control'],
    ['\u00a0', 'non-breaking space'],
    ['a\u3000b.com', 'ideographic space'],
  ])('%j (%s) is invalid', (input) => {
    expect(normaliseHost(input)).toBeUndefined();
  });

  it('accepts a 63-byte label and a 253-byte name', () => {
    const label63 = 'a'.repeat(63);
    expect(normaliseHost(`${label63}.com`)).toBe(`${label63}.com`);
    const name253 = `${label63}.${label63}.${label63}.${'b'.repeat(61)}`;
    expect(name253.length).toBe(253);
    expect(normaliseHost(name253)).toBe(name253);
    expect(normaliseHost(`${name253}.`)).toBe(name253);
    expect(normaliseHost(`${name253}c`)).toBeUndefined();
  });
});

describe('normaliseHost: IPv4', () => {
  it.each([
    ['192.168.0.1', '192.168.0.1'],
    ['192.168.0.1.', '192.168.0.1'],
    ['3232235521', '192.168.0.1'],
    ['0xC0A80001', '192.168.0.1'],
    ['0xc0a80001', '192.168.0.1'],
    ['0300.0250.0.1', '192.168.0.1'],
    ['0xc0.0xa8.0.1', '192.168.0.1'],
    ['0xC0.168.0x0.01', '192.168.0.1'],
    ['192.0xa80001', '192.168.0.1'],
    ['192.168.1', '192.168.0.1'],
    ['127.1', '127.0.0.1'],
    ['10.1.257', '10.1.1.1'],
    ['0', '0.0.0.0'],
    ['0x', '0.0.0.0'],
    ['0x.0x.0x.0x', '0.0.0.0'],
    ['4294967295', '255.255.255.255'],
    ['0xffffffff', '255.255.255.255'],
    ['037777777777', '255.255.255.255'],
    ['0x00000000000000000000007f.1', '127.0.0.1'],
    ['000000127.0.0.1', '87.0.0.1'],
    ['1.2.3.04', '1.2.3.4'],
    ['255.255.255.255', '255.255.255.255'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseHost(input)).toBe(expected);
  });

  it.each([
    ['4294967296', 'decimal over 32 bits'],
    ['0x100000000', 'hex over 32 bits'],
    ['040000000000', 'octal over 32 bits'],
    ['99999999999999999999999', 'far over 32 bits'],
    ['256.1.1.1', 'first byte over 255'],
    ['1.256.1.1', 'middle byte over 255'],
    ['1.1.1.256', 'last byte over 255'],
    ['1.1.65536', 'last 16 bits over 65535'],
    ['1.16777216', 'last 24 bits overflow'],
    ['1.2.3.4.5', 'five parts'],
    ['08.1.1.1', 'octal with 8'],
    ['1.2.3.09', 'octal with 9'],
    ['1.2.0xg.4', 'bad hex in a middle part'],
    ['1..2.3', 'empty part'],
    ['a.1.2.3', 'name part in an address'],
  ])('%j (%s) is invalid', (input) => {
    expect(normaliseHost(input)).toBeUndefined();
  });

  it('returns a canonical dotted quad as the same string', () => {
    const address = ['10', '20', '30', '40'].join('.');
    expect(normaliseHost(address)).toBe(address);
  });
});

describe('normaliseHost: IPv6', () => {
  it.each([
    ['::1', '::1'],
    ['[::1]', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['[::]', '::'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['fe80::', 'fe80::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['::ffff:192.168.0.1', '192.168.0.1'],
    ['[::FFFF:C0A8:1]', '192.168.0.1'],
    ['0:0:0:0:0:ffff:7f00:1', '127.0.0.1'],
    ['::1.2.3.4', '::102:304'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseHost(input)).toBe(expected);
  });

  it.each([
    ['[::1', 'unclosed bracket'],
    ['::1]', 'unopened bracket'],
    ['[[::1]]', 'double brackets'],
    ['[::1]:443', 'with a port'],
    [':::1', 'three colons'],
    ['1::2::3', 'two double colons'],
    ['1:2:3:4:5:6:7:8:9', 'nine groups'],
    ['12345::1', 'group over 16 bits'],
    ['fe80::1%eth0', 'zone id'],
    ['::ffff:1.2.3.256', 'bad embedded IPv4'],
    ['g::1', 'not hex'],
    [':', 'a colon'],
    ['[]', 'empty brackets'],
  ])('%j (%s) is invalid', (input) => {
    expect(normaliseHost(input)).toBeUndefined();
  });
});

// Labels with "--" in the third and fourth places are reserved for IDN A-labels
// (xn--...), which must also decode; a random one (xn--0) is rightly refused.
const labelArbitrary = fc.stringMatching(/^[a-z0-9_-]{1,12}$/).filter((label) => label.slice(2, 4) !== '--');
const nameArbitrary = fc
  .tuple(fc.array(labelArbitrary, { minLength: 1, maxLength: 5 }), fc.constantFrom('com', 'co.uk', 'org', 'fr', 'xn--p1ai'))
  .map(([labels, tld]) => [...labels, tld].join('.'));
const ipv4Arbitrary = fc.integer({ min: 0, max: 0xffffffff });

function dotted(address: number): string {
  return [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255].join('.');
}

describe('normaliseHost: properties', () => {
  it('is idempotent on any string', () => {
    const anyHost = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.stringMatching(/^[a-zA-Z0-9.:_\-[\]]{0,40}$/),
      nameArbitrary,
      ipv4Arbitrary.map(String),
      fc.ipV6(),
      fc.domain(),
    );
    fc.assert(
      fc.property(anyHost, (input) => {
        const once = normaliseHost(input);
        if (once !== undefined) expect(normaliseHost(once)).toBe(once);
      }),
      { numRuns: 5000 },
    );
  });

  it('writes any IPv4 address in decimal, octal, hex or mixed parts as the same dotted quad', () => {
    const spell = (value: number, radix: 8 | 10 | 16, upper: boolean): string => {
      if (radix === 10) return String(value);
      if (radix === 8) return `0${value.toString(8)}`;
      const hex = `0x${value.toString(16)}`;
      return upper ? hex.toUpperCase() : hex;
    };
    const radixArbitrary = fc.constantFrom<8 | 10 | 16>(8, 10, 16);
    fc.assert(
      fc.property(
        ipv4Arbitrary,
        fc.integer({ min: 1, max: 4 }),
        fc.array(radixArbitrary, { minLength: 4, maxLength: 4 }),
        fc.boolean(),
        (address, partCount, radixes, upper) => {
          const bytes = [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255];
          const leading = bytes.slice(0, partCount - 1);
          const rest = bytes.slice(partCount - 1).reduce((value, byte) => value * 256 + byte, 0);
          const parts = [...leading, rest].map((value, i) => spell(value, radixes[i], upper));
          expect(normaliseHost(parts.join('.'))).toBe(dotted(address));
          expect(normaliseHost(`${parts.join('.')}.`)).toBe(dotted(address));
          expect(normaliseHost(`::ffff:${dotted(address)}`)).toBe(dotted(address));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('reads numeric hosts exactly as the WHATWG URL parser does (what browsers send)', () => {
    const part = fc.oneof(fc.stringMatching(/^0x[0-9a-fA-F]{0,10}$/), fc.stringMatching(/^[0-9]{1,11}$/), fc.stringMatching(/^0[0-9]{1,12}$/));
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 5 }), (parts) => {
        const host = parts.join('.');
        let whatwg: string | undefined;
        try {
          whatwg = new URL(`http://${host}/`).hostname;
        } catch {
          whatwg = undefined;
        }
        expect(normaliseHost(host)).toBe(whatwg);
      }),
      { numRuns: 5000 },
    );
  });

  it('ignores case and a trailing dot', () => {
    fc.assert(
      fc.property(nameArbitrary, fc.array(fc.boolean(), { minLength: 80, maxLength: 80 }), fc.boolean(), (name, flips, trailingDot) => {
        const mixed = [...name].map((ch, i) => (flips[i] ? ch.toUpperCase() : ch)).join('') + (trailingDot ? '.' : '');
        expect(normaliseHost(mixed)).toBe(normaliseHost(name));
        expect(normaliseHost(name)).toBe(name);
      }),
      { numRuns: 3000 },
    );
  });

  it('gives every IPv6 spelling of an address the same canonical form', () => {
    fc.assert(
      fc.property(fc.ipV6(), (address) => {
        const canonical = normaliseHost(address);
        expect(canonical).toBeDefined();
        expect(normaliseHost(`[${address.toUpperCase()}]`)).toBe(canonical);
        const expanded = new URL(`http://[${address}]/`).hostname.slice(1, -1);
        // The WHATWG serialiser agrees except that it keeps IPv4-mapped addresses in IPv6 form.
        if (!canonical!.includes('.')) expect(canonical).toBe(expanded);
      }),
      { numRuns: 3000 },
    );
  });

  it('only ever returns lower-case [a-z0-9._-] names, dotted quads or IPv6 literals', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.domain(), fc.stringMatching(/^[A-Za-z0-9.]{1,20}$/)), (input) => {
        const host = normaliseHost(input);
        if (host === undefined) return;
        expect(host).toMatch(/^(?:[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*|[0-9a-f:.]+)$/);
        expect(host.length).toBeLessThanOrEqual(253);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('splitHostPort', () => {
  it.each([
    ['example.com:8080', 80, { host: 'example.com', port: 8080 }],
    ['example.com', 80, { host: 'example.com', port: 80 }],
    ['example.com', 443, { host: 'example.com', port: 443 }],
    ['example.com:', 443, { host: 'example.com', port: 443 }],
    ['Example.COM:443', 80, { host: 'Example.COM', port: 443 }],
    ['[::1]:443', 80, { host: '::1', port: 443 }],
    ['[::1]', 80, { host: '::1', port: 80 }],
    ['[::1]:', 443, { host: '::1', port: 443 }],
    ['[2001:db8::1]:8443', 80, { host: '2001:db8::1', port: 8443 }],
    ['1.2.3.4:1', 80, { host: '1.2.3.4', port: 1 }],
    ['host:65535', 80, { host: 'host', port: 65535 }],
    ['host:00080', 80, { host: 'host', port: 80 }],
  ])('%j (default %d)', (authority, defaultPort, expected) => {
    expect(splitHostPort(authority, defaultPort)).toEqual(expected);
  });

  it.each([
    ['example.com:0', 'port 0'],
    ['example.com:65536', 'port over 65535'],
    ['example.com:99999999999999999999', 'huge port'],
    ['example.com:http', 'named port'],
    ['example.com:-1', 'negative port'],
    ['example.com:+80', 'signed port'],
    ['example.com: 80', 'space in port'],
    ['example.com:80:81', 'two ports'],
    ['::1', 'unbracketed IPv6'],
    ['[::1', 'unclosed bracket'],
    ['[::1]443', 'junk after bracket'],
    ['[[::1]]:443', 'nested brackets'],
    ['::1]:443', 'unopened bracket'],
    ['ex[ample].com', 'brackets inside a name'],
    ['', 'empty'],
    [':80', 'empty host'],
    ['[]:80', 'empty brackets'],
  ])('%j is rejected', (authority) => {
    expect(splitHostPort(authority, 80)).toBeUndefined();
  });

  it('round-trips any host and port', () => {
    fc.assert(
      fc.property(fc.oneof(fc.domain(), fc.ipV4()), fc.ipV6(), fc.integer({ min: 1, max: 65535 }), (name, ipv6, port) => {
        expect(splitHostPort(`${name}:${port}`, 1)).toEqual({ host: name, port });
        expect(splitHostPort(`[${ipv6}]:${port}`, 1)).toEqual({ host: ipv6, port });
        expect(splitHostPort(`[${ipv6}]`, 1)).toEqual({ host: ipv6, port: 1 });
      }),
      { numRuns: 2000 },
    );
  });
});
