// The proxy's own HTTP/1.x reading: message heads, body framing and the
// chunked coding, held to RFC 9112 and to what request smuggling tries.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedCodingError, ChunkedDecoder, requestFraming, responseFraming } from '../../proxy/http1/framing.js';
import { fieldTokens, fieldValue, findHeadEnd, parseRequestHead, parseResponseHead, type RequestHead } from '../../proxy/http1/head.js';

function request(text: string): ReturnType<typeof parseRequestHead> {
  const buffer = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buffer, 0);
  expect(end, 'head end').toBeGreaterThan(0);
  return parseRequestHead(buffer, 0, end);
}

function requestHead(text: string): RequestHead {
  const parsed = request(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.head;
}

function response(text: string): ReturnType<typeof parseResponseHead> {
  const buffer = Buffer.from(text, 'latin1');
  return parseResponseHead(buffer, 0, findHeadEnd(buffer, 0));
}

describe('request heads', () => {
  it('reads the request line and the fields in order, names as sent', () => {
    const head = requestHead('GET http://a.test/x?y=1 HTTP/1.1\r\nHost: a.test\r\nX-Two: 1\r\nx-two:  2 \t\r\n\r\n');
    expect(head).toMatchObject({ method: 'GET', target: 'http://a.test/x?y=1', minorVersion: 1 });
    expect(head.names).toEqual(['Host', 'X-Two', 'x-two']);
    expect(head.lowerNames).toEqual(['host', 'x-two', 'x-two']);
    expect(head.values).toEqual(['a.test', '1', '2']);
    expect(fieldValue(head, 'x-two')).toBe('1');
    expect(fieldTokens(requestHead('GET / HTTP/1.0\r\nConnection: Keep-Alive, X-A\r\nconnection: close\r\n\r\n'), 'connection')).toEqual([
      'keep-alive',
      'x-a',
      'close',
    ]);
  });

  it('finds the end of a head only at a blank line', () => {
    expect(findHeadEnd(Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n'), 0)).toBe(-1);
    expect(findHeadEnd(Buffer.from('GET / HTTP/1.1\r\n\r\nbody'), 0)).toBe(18);
  });

  it('keeps obs-text in values as the bytes sent, and 0xA0 at either end', () => {
    const head = requestHead('GET / HTTP/1.1\r\nX-Name: \xa0caf\xe9\xa0\r\n\r\n');
    expect(Buffer.from(head.values[0], 'latin1')).toEqual(Buffer.from([0xa0, 0x63, 0x61, 0x66, 0xe9, 0xa0]));
  });

  it.each([
    ['a bare LF ending a line', 'GET / HTTP/1.1\nHost: a\r\n\r\n'],
    ['a bare CR inside a line', 'GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n'],
    ['space before the colon', 'GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n'],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n'],
    ['a header line without a colon', 'GET / HTTP/1.1\r\nHost\r\n\r\n'],
    ['a control character in a value', 'GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n'],
    ['a separator in a name', 'GET / HTTP/1.1\r\nX(A): 1\r\n\r\n'],
    ['HTTP/2.0 on the request line', 'GET / HTTP/2.0\r\n\r\n'],
    ['two spaces on the request line', 'GET  / HTTP/1.1\r\n\r\n'],
    ['no version', 'GET /\r\n\r\n'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\n\r\n'],
  ])('refuses %s', (_what, text) => {
    expect(request(text).ok).toBe(false);
  });
});

describe('request body framing', () => {
  const framing = (fields: string, version = '1.1'): ReturnType<typeof requestFraming> =>
    requestFraming(requestHead(`POST http://a.test/ HTTP/${version}\r\n${fields}\r\n`));

  it('reads a length, chunked, or no body', () => {
    expect(framing('Content-Length: 12\r\n')).toEqual({ ok: true, framing: { kind: 'length', length: 12 } });
    expect(framing('Content-Length: 0\r\n')).toEqual({ ok: true, framing: { kind: 'none' } });
    expect(framing('')).toEqual({ ok: true, framing: { kind: 'none' } });
    expect(framing('Transfer-Encoding: Chunked\r\n')).toEqual({ ok: true, framing: { kind: 'chunked' } });
    expect(framing('Content-Length: 7\r\nContent-Length: 7, 7\r\n')).toEqual({ ok: true, framing: { kind: 'length', length: 7 } });
  });

  it.each([
    ['Transfer-Encoding beside Content-Length', 'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n', 400],
    ['Content-Lengths that differ', 'Content-Length: 5\r\nContent-Length: 6\r\n', 400],
    ['a Content-Length that is not a number', 'Content-Length: 5a\r\n', 400],
    ['a signed Content-Length', 'Content-Length: +5\r\n', 400],
    ['a huge Content-Length', 'Content-Length: 1234567890123456\r\n', 400],
    ['a Content-Length padded with a no-break space', 'Content-Length: \xa05\r\n', 400],
    ['chunked that is not last', 'Transfer-Encoding: chunked, gzip\r\n', 501],
    ['chunked twice', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', 501],
    ['an unknown coding', 'Transfer-Encoding: xchunked\r\n', 501],
  ])('refuses %s', (_what, fields, status) => {
    expect(framing(fields)).toMatchObject({ ok: false, status });
  });

  it('refuses Transfer-Encoding on an HTTP/1.0 request', () => {
    expect(framing('Transfer-Encoding: chunked\r\n', '1.0')).toMatchObject({ ok: false, status: 400 });
  });
});

describe('response heads and framing', () => {
  const parsed = (text: string) => {
    const result = response(text);
    if (!result.ok) throw new Error(result.reason);
    return result.head;
  };

  it('reads the status line, with or without a reason', () => {
    expect(parsed('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n')).toMatchObject({ status: 200, reason: 'OK', minorVersion: 1 });
    expect(parsed('HTTP/1.0 404\r\n\r\n')).toMatchObject({ status: 404, reason: '', minorVersion: 0 });
    expect(response('HTTP/1.1 20 OK\r\n\r\n').ok).toBe(false);
    expect(response('HTTP/1.1 200 OK\nX: 1\r\n\r\n').ok).toBe(false);
  });

  it('frames by method, status, Transfer-Encoding and Content-Length', () => {
    const ok = parsed('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
    expect(responseFraming(ok, 'GET')).toEqual({ ok: true, framing: { kind: 'length', length: 10 } });
    expect(responseFraming(ok, 'HEAD')).toEqual({ ok: true, framing: { kind: 'none' } });
    expect(responseFraming(parsed('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n'), 'GET')).toEqual({ ok: true, framing: { kind: 'none' } });
    expect(responseFraming(parsed('HTTP/1.1 204 No Content\r\n\r\n'), 'GET')).toEqual({ ok: true, framing: { kind: 'none' } });
    expect(responseFraming(parsed('HTTP/1.1 200 OK\r\n\r\n'), 'GET')).toEqual({ ok: true, framing: { kind: 'close' } });
    // Transfer-Encoding wins over Content-Length.
    expect(responseFraming(parsed('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'), 'GET')).toEqual({
      ok: true,
      framing: { kind: 'chunked' },
    });
    expect(responseFraming(parsed('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'), 'GET')).toMatchObject({ ok: false });
    expect(responseFraming(parsed('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n'), 'GET')).toMatchObject({ ok: false });
  });
});

/** Chunked-codes `pieces`, with optional extensions and trailers. */
function encodeChunked(pieces: Buffer[], extension = '', trailers = ''): Buffer {
  const parts: Buffer[] = [];
  for (const piece of pieces) {
    if (piece.length === 0) continue;
    parts.push(Buffer.from(`${piece.length.toString(16)}${extension}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0${extension}\r\n${trailers}\r\n`));
  return Buffer.concat(parts);
}

/** Feeds `encoded` to a decoder in the given pieces; the body and where the message ended. */
function decodeInPieces(encoded: Buffer, cuts: number[]): { body: Buffer; endedAt: number } {
  const decoder = new ChunkedDecoder();
  const out: Buffer[] = [];
  const points = [...new Set([0, ...cuts.map((c) => c % (encoded.length + 1)), encoded.length])].sort((a, b) => a - b);
  for (let i = 0; i + 1 < points.length; i++) {
    const piece = encoded.subarray(points[i], points[i + 1]);
    const end = decoder.decode(piece, 0, (data) => out.push(Buffer.from(data)));
    if (end !== -1) return { body: Buffer.concat(out), endedAt: points[i] + end };
  }
  return { body: Buffer.concat(out), endedAt: -1 };
}

describe('the chunked coding', () => {
  it('decodes any body however the bytes are split, extensions and trailers read and dropped', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom('', ';a=1', ' ; name="v"'),
        fc.constantFrom('', 'X-Sum: 1\r\n', 'A: 1\r\nB: 2\r\n'),
        (arrays, cuts, extension, trailers) => {
          const pieces = arrays.map((a) => Buffer.from(a));
          const encoded = encodeChunked(pieces, extension, trailers);
          const next = Buffer.from('GET /next HTTP/1.1\r\n\r\n');
          const { body, endedAt } = decodeInPieces(Buffer.concat([encoded, next]), cuts);
          expect(body).toEqual(Buffer.concat(pieces));
          expect(endedAt).toBe(encoded.length);
        },
      ),
    );
  });

  it('reads upper- and lower-case hex sizes', () => {
    const { body } = decodeInPieces(Buffer.from('A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n'), []);
    expect(body.toString()).toBe('0123456789abcdefghijk');
  });

  it.each([
    ['a size that is not hex', 'g\r\nx\r\n0\r\n\r\n'],
    ['an empty size', '\r\nx\r\n0\r\n\r\n'],
    ['a size with a sign', '-1\r\nx\r\n0\r\n\r\n'],
    ['a size too large for memory', 'fffffffffffff\r\n'],
    ['a bare LF after the size', '1\nx\r\n0\r\n\r\n'],
    ['data longer than its size', '1\r\nxy\r\n0\r\n\r\n'],
    ['a bare LF after the data', '1\r\nx\n0\r\n\r\n'],
    ['a bare LF in an extension', '1;a\nb\r\nx\r\n0\r\n\r\n'],
    ['a control character in a trailer', '0\r\nX: \x01\r\n\r\n'],
    ['a bare LF ending the body', '0\r\n\n'],
  ])('refuses %s', (_what, text) => {
    expect(() => decodeInPieces(Buffer.from(text, 'latin1'), [])).toThrow(ChunkedCodingError);
  });

  it('waits for more when the body is not complete', () => {
    expect(decodeInPieces(Buffer.from('5\r\nabc'), []).endedAt).toBe(-1);
    expect(decodeInPieces(Buffer.from('0\r\nX: 1\r\n'), []).endedAt).toBe(-1);
  });
});
