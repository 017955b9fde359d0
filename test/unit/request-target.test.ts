import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalisePath, parseHttpTarget } from '../../proxy/request-target.js';

/** What the WHATWG URL parser makes of a request's path and query: the reference the proxy must agree with. */
function parsedByUrl(rest: string): string {
  const url = new URL(`http://placeholder${rest.startsWith('/') ? rest : `/${rest}`}`);
  return `${url.pathname}${url.search}`;
}

// Characters the parser treats specially in paths and queries, and plain ones.
const PATH_CHARACTERS = [...'/?.%\\#\'"`<>{}[]|^ ~!$&()*+,;=:@-_aZ09', '%2e', '%2E', '..', '/..', '/.', 'é', '\t', '\u0000', '\u007f'];
const pathText = fc.array(fc.constantFrom(...PATH_CHARACTERS), { maxLength: 24 }).map((parts) => parts.join(''));

describe('normalisePath', () => {
  it('agrees with the WHATWG URL parser on any path and query', () => {
    fc.assert(
      fc.property(pathText, (text) => {
        const rest = text.replace(/#.*/s, ''); // a fragment never reaches this far (parseHttpTarget stops at #)
        expect(normalisePath(rest)).toBe(parsedByUrl(rest));
        expect(normalisePath(`/${rest}`)).toBe(parsedByUrl(`/${rest}`));
      }),
      { numRuns: 20_000 },
    );
  });

  it('resolves dot segments and backslashes, encoded or not', () => {
    expect(normalisePath('/a/../b')).toBe('/b');
    expect(normalisePath('/a/./b/.')).toBe('/a/b/');
    expect(normalisePath('/a/%2e%2e/b')).toBe('/b');
    expect(normalisePath('/a\\..\\b')).toBe('/b');
    expect(normalisePath('/a?')).toBe('/a');
    expect(normalisePath('/a b?c d')).toBe('/a%20b?c%20d');
  });

  it('leaves a path that is already normal as it is', () => {
    expect(normalisePath('/search?q=cats&page=2')).toBe('/search?q=cats&page=2');
    expect(normalisePath('/static/app.min.js')).toBe('/static/app.min.js');
    expect(normalisePath('/a/..b/.c?x=/../y')).toBe('/a/..b/.c?x=/../y');
  });
});

describe('parseHttpTarget', () => {
  it('splits an absolute URI into host, port and normalised path', () => {
    expect(parseHttpTarget('http://Example.ORG:8080/a/../b?q=1')).toEqual({ ok: true, target: { host: 'example.org', port: 8080, path: '/b?q=1' } });
    expect(parseHttpTarget('http://example.org')).toEqual({ ok: true, target: { host: 'example.org', port: 80, path: '/' } });
  });

  it('refuses what is not an http:// absolute URI, saying why', () => {
    expect(parseHttpTarget('/index.html')).toMatchObject({ ok: false, originForm: true });
    expect(parseHttpTarget('https://example.org/')).toMatchObject({ ok: false, message: expect.stringContaining('CONNECT') });
    expect(parseHttpTarget('http://user:pw@example.org/')).toMatchObject({ ok: false, message: expect.stringContaining('passwords') });
  });
});
