// The ClientHello reader, on real ClientHellos from node's TLS client and on
// hand-built ones for the cases a real client does not produce.
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClientHello, peekClientHello, type ClientHelloPeek } from '../../proxy/client-hello.js';
import { captureClientHello } from '../support/client-hello-capture.js';

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

function serverNameExtension(...names: Array<[number, Buffer | string]>): Buffer {
  const entries = Buffer.concat(
    names.map(([type, name]) => {
      const bytes = Buffer.from(name);
      return Buffer.concat([Buffer.from([type]), u16(bytes.length), bytes]);
    }),
  );
  return extension(0, Buffer.concat([u16(entries.length), entries]));
}

/** A ClientHello handshake message (type, 24-bit length, body) with the given extensions. */
function clientHelloMessage(extensions: Buffer[] | undefined): Buffer {
  const parts = [
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7), // random
    Buffer.from([32]), Buffer.alloc(32, 9), // session id
    u16(4), Buffer.from([0x13, 0x01, 0x13, 0x02]), // cipher suites
    Buffer.from([1, 0]), // compression: null
  ];
  if (extensions) {
    const all = Buffer.concat(extensions);
    parts.push(u16(all.length), all);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
}

/** Wraps a handshake message in TLS records of at most `recordSize` bytes. */
function inRecords(message: Buffer, recordSize = 16_384): Buffer {
  const records: Buffer[] = [];
  for (let i = 0; i < message.length; i += recordSize) {
    const fragment = message.subarray(i, i + recordSize);
    records.push(Buffer.from([0x16, 0x03, 0x01]), u16(fragment.length), fragment);
  }
  return Buffer.concat(records);
}

const LONG_NAME = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.example`;
const captured: Array<{ label: string; expected: string | undefined; hello: Buffer }> = [];

beforeAll(async () => {
  const cases: Array<[string, tls.ConnectionOptions, string | undefined]> = [
    ['a plain name', { servername: 'www.example.test' }, 'www.example.test'],
    ['a long name', { servername: LONG_NAME }, LONG_NAME],
    ['an IDN in punycode', { servername: 'xn--bcher-kva.example' }, 'xn--bcher-kva.example'],
    ['TLS 1.2 only', { servername: 'old.example.test', maxVersion: 'TLSv1.2' }, 'old.example.test'],
    ['no server name', {}, undefined], // node sends no SNI when connecting to an IP address
  ];
  for (const [label, options, expected] of cases) captured.push({ label, expected, hello: await captureClientHello(options) });
});

describe('parseClientHello on real ClientHellos', () => {
  it('finds the server name, or its absence', () => {
    for (const { label, expected, hello } of captured) {
      expect(parseClientHello(hello), label).toEqual({ kind: 'client-hello', serverName: expected });
    }
  });

  it('asks for more at every byte boundary before the end, with a need beyond what it has', () => {
    for (const { label, hello } of captured) {
      for (let cut = 0; cut < hello.length; cut++) {
        const result = parseClientHello(hello.subarray(0, cut));
        expect(result.kind, `${label} cut at ${cut}`).toBe('incomplete');
        if (result.kind === 'incomplete') expect(result.needBytes).toBeGreaterThan(cut);
      }
    }
  });

  it('reads a ClientHello spread over many records, at every byte boundary', () => {
    for (const { label, expected, hello } of captured.slice(0, 2)) {
      const message = hello.subarray(5);
      for (const size of [1, 3, 100]) {
        const split = inRecords(message, size);
        expect(parseClientHello(split), `${label} in ${size}-byte records`).toEqual({ kind: 'client-hello', serverName: expected });
        if (size === 3) {
          for (let cut = 0; cut < split.length; cut++) {
            expect(parseClientHello(split.subarray(0, cut)).kind, `cut at ${cut}`).toBe('incomplete');
          }
        }
      }
    }
  });

  it('ignores bytes the client sends after the ClientHello', () => {
    const { hello, expected } = captured[0];
    expect(parseClientHello(Buffer.concat([hello, Buffer.from([0x17, 0x03, 0x03, 0x00, 0x01, 0xff])]))).toEqual({
      kind: 'client-hello',
      serverName: expected,
    });
  });
});

describe('parseClientHello on built ClientHellos', () => {
  const grease = [extension(0x0a0a, Buffer.alloc(0)), extension(0xfafa, Buffer.from([0]))];
  const parse = (message: Buffer) => parseClientHello(inRecords(message));

  it('finds the server name among GREASE and unknown extensions, wherever it is', () => {
    const sni = serverNameExtension([0, 'grease.example.test']);
    expect(parse(clientHelloMessage([...grease, sni, extension(0x4469, Buffer.from('x'))]))).toEqual({
      kind: 'client-hello',
      serverName: 'grease.example.test',
    });
    expect(parse(clientHelloMessage([extension(0xff01, Buffer.from([0])), ...grease, sni]))).toEqual({
      kind: 'client-hello',
      serverName: 'grease.example.test',
    });
  });

  it('accepts ClientHellos with no extensions, or an empty list', () => {
    expect(parse(clientHelloMessage(undefined))).toEqual({ kind: 'client-hello', serverName: undefined });
    expect(parse(clientHelloMessage([]))).toEqual({ kind: 'client-hello', serverName: undefined });
  });

  it('skips name types other than host_name', () => {
    expect(parse(clientHelloMessage([serverNameExtension([7, 'other'], [0, 'real.test'])]))).toEqual({
      kind: 'client-hello',
      serverName: 'real.test',
    });
  });

  it.each([
    ['a duplicate server_name extension', clientHelloMessage([serverNameExtension([0, 'a.test']), serverNameExtension([0, 'b.test'])])],
    ['two host names', clientHelloMessage([serverNameExtension([0, 'a.test'], [0, 'b.test'])])],
    ['an empty host name', clientHelloMessage([serverNameExtension([0, ''])])],
    ['a host name with a space', clientHelloMessage([serverNameExtension([0, 'a b.test'])])],
    ['a host name with non-ASCII bytes', clientHelloMessage([serverNameExtension([0, Buffer.from([0x61, 0xe9, 0x2e, 0x74])])])],
    ['a server_name with no host name', clientHelloMessage([serverNameExtension([7, 'other'])])],
    ['an empty server_name extension', clientHelloMessage([extension(0, Buffer.alloc(0))])],
    ['a server_name list length that lies', clientHelloMessage([extension(0, Buffer.from([0, 9, 0, 0, 1, 0x61]))])],
    ['an extension longer than the list', (() => {
      const m = clientHelloMessage([extension(0x10, Buffer.from('h2'))]);
      m.writeUInt16BE(200, m.length - 4); // the extension's own length
      return m;
    })()],
  ])('rejects %s', (_name, message) => {
    expect(parse(message).kind).toBe('invalid');
  });

  it('rejects a ClientHello whose extension list length disagrees with its size', () => {
    const message = Buffer.concat([clientHelloMessage([serverNameExtension([0, 'a.test'])]), Buffer.from([0])]);
    message.writeUIntBE(message.length - 4, 1, 3); // message length includes the stray byte
    expect(parse(message).kind).toBe('invalid');
  });

  it('rejects a truncated ClientHello body', () => {
    const body = Buffer.from([0x03, 0x03, ...Buffer.alloc(10)]);
    const message = Buffer.concat([Buffer.from([1, 0, 0, body.length]), body]);
    expect(parse(message)).toEqual({ kind: 'invalid', reason: 'the ClientHello is truncated' });
  });

  it('rejects record-layer violations', () => {
    const message = clientHelloMessage([serverNameExtension([0, 'a.test'])]);
    const records = inRecords(message, 10);
    const interrupted = Buffer.from(records);
    interrupted[15] = 0x15; // the second record claims to be an alert
    expect(parseClientHello(interrupted).kind).toBe('invalid');
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).kind).toBe('invalid'); // empty record
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01])).kind).toBe('invalid'); // 16385 bytes
    expect(parseClientHello(inRecords(Buffer.from([2, 0, 0, 0]))).kind).toBe('invalid'); // ServerHello
  });

  it('tells non-TLS bytes apart', () => {
    for (const text of ['GET / HTTP/1.1\r\n', 'SSH-2.0-OpenSSH\r\n', '\x16\x00junk']) {
      expect(parseClientHello(Buffer.from(text, 'latin1')), text).toEqual({ kind: 'not-tls' });
    }
    expect(parseClientHello(Buffer.alloc(0))).toEqual({ kind: 'incomplete', needBytes: 1 });
  });

  it('never throws on arbitrary bytes, with or without a TLS-looking start', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, tlsStart) => {
        const data = tlsStart ? Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), Buffer.from(bytes)]) : Buffer.from(bytes);
        const result = parseClientHello(data);
        expect(['incomplete', 'not-tls', 'invalid', 'client-hello']).toContain(result.kind);
      }),
    );
  });

  it('round-trips any host name in any record split', () => {
    fc.assert(
      fc.property(fc.domain(), fc.integer({ min: 1, max: 300 }), (name, recordSize) => {
        const hello = inRecords(clientHelloMessage([...grease, serverNameExtension([0, name])]), recordSize);
        expect(parseClientHello(hello)).toEqual({ kind: 'client-hello', serverName: name });
      }),
    );
  });
});

describe('peekClientHello on a real socket', () => {
  let server: net.Server;
  let port: number;
  const accepted: net.Socket[] = [];
  beforeAll(async () => {
    server = net.createServer((socket) => accepted.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(() => {
    for (const s of accepted) s.destroy();
    server.close();
  });

  /** A connected pair: what the client writes, the server side peeks. */
  async function pair(): Promise<{ client: net.Socket; serverSide: net.Socket }> {
    const count = accepted.length;
    const client = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    while (accepted.length === count) await new Promise((r) => setTimeout(r, 1));
    return { client, serverSide: accepted[accepted.length - 1] };
  }

  const options = { maxBytes: 32 * 1024, timeoutMs: 2_000 };

  it('reads a ClientHello that arrives one byte at a time and leaves the rest unread', async () => {
    const { hello, expected } = captured[0];
    const { client, serverSide } = await pair();
    const peeking = peekClientHello(serverSide, Buffer.alloc(0), options);
    for (const byte of hello) {
      client.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    const { result, bytes } = await peeking;
    expect(result).toEqual({ kind: 'client-hello', serverName: expected });
    expect(bytes.equals(hello)).toBe(true);
    client.write('after');
    const next = await new Promise<Buffer>((resolve) => serverSide.once('data', resolve).resume()); // left paused by the peek
    expect(next.toString()).toBe('after');
    client.destroy();
  });

  it('reads a ClientHello split in two at several places, with part of it already read', async () => {
    const { hello, expected } = captured[1];
    for (const cut of [1, 5, 6, 43, hello.length - 1]) {
      const { client, serverSide } = await pair();
      const peeking = peekClientHello(serverSide, hello.subarray(0, cut), options);
      await new Promise((r) => setTimeout(r, 5));
      client.write(hello.subarray(cut));
      const { result, bytes } = await peeking;
      expect(result, `cut at ${cut}`).toEqual({ kind: 'client-hello', serverName: expected });
      expect(bytes.equals(hello)).toBe(true);
      client.destroy();
    }
  });

  it('decides from bytes already read without waiting for the socket', async () => {
    const { serverSide, client } = await pair();
    const { result } = await peekClientHello(serverSide, captured[0].hello, { maxBytes: 32 * 1024, timeoutMs: 60_000 });
    expect(result.kind).toBe('client-hello');
    client.destroy();
  });

  it.each<[string, (client: net.Socket) => void, ClientHelloPeek['kind']]>([
    ['silence', () => undefined, 'timeout'],
    ['a stalled ClientHello', (client) => client.write(Buffer.from([0x16, 0x03, 0x01, 0x02])), 'timeout'],
    ['a close', (client) => client.end(), 'closed'],
    ['a ClientHello beyond the byte limit', (client) => client.write(inRecords(Buffer.concat([Buffer.from([1, 0, 0xff, 0xff]), Buffer.alloc(2000)]))), 'too-large'],
    ['plain text', (client) => client.write('GET / HTTP/1.1\r\n'), 'not-tls'],
  ])('gives up on %s', async (_name, act, kind) => {
    const { client, serverSide } = await pair();
    const peeking = peekClientHello(serverSide, Buffer.alloc(0), { maxBytes: 1024, timeoutMs: 200 });
    act(client);
    expect((await peeking).result.kind).toBe(kind);
    client.destroy();
  });
});
