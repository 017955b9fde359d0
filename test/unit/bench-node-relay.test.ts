// The peers bench's bare Node.js relay (bench/node-relay.ts), on real
// sockets: it must relay what the bench sends exactly as a proxy would
// (or its figure means nothing), keep its server connections alive, and
// refuse what it does not relay rather than measure as fast by doing less.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ORIGIN_BODY } from '../../bench/common.js';
import { createNodeRelay } from '../../bench/node-relay.js';

interface Origin {
  port: number;
  served: number;
  connections: number;
  lastHead: { url: string; headers: http.IncomingHttpHeaders } | undefined;
  server: http.Server;
}

let origin: Origin;
let relay: net.Server;
let relayPort: number;

const listen = (server: net.Server): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
const close = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

beforeAll(async () => {
  const server = http.createServer((req, res) => {
    origin.served++;
    origin.lastHead = { url: req.url ?? '', headers: req.headers };
    req.resume();
    if (req.url === '/chunked') {
      res.write('no length');
      res.end();
      return;
    }
    if (req.url === '/cut') {
      res.writeHead(200, { 'Content-Length': 100 });
      res.write('only part');
      setTimeout(() => res.destroy(), 20);
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(ORIGIN_BODY) });
    res.end(ORIGIN_BODY);
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', () => origin.connections++);
  origin = { port: 0, served: 0, connections: 0, lastHead: undefined, server };
  origin.port = await listen(server);
  relay = createNodeRelay();
  relayPort = await listen(relay);
});

afterAll(async () => {
  relay.close();
  origin.server.closeAllConnections();
  await close(origin.server);
});

/** Writes `data` on a new connection to the relay and collects what comes back until `done` says so or the relay closes. */
function exchange(data: string, done: (received: string) => boolean = () => false): Promise<{ received: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(relayPort, '127.0.0.1', () => socket.write(data));
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end to the exchange; received: ${received}`));
    }, 5_000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (done(received)) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ received, closed: false });
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received, closed: true });
    });
    socket.on('error', () => undefined);
  });
}

const get = (path: string, extra = ''): string =>
  `GET http://127.0.0.1:${origin.port}${path} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nProxy-Connection: keep-alive\r\n${extra}\r\n`;
const answers = (received: string): number => received.split(ORIGIN_BODY).length - 1;

describe('the bench Node relay', () => {
  it("passes a GET on in origin form, without this hop's headers, and hands back the origin's exact answer", async () => {
    const { received } = await exchange(get('/page?x=1', 'Connection: keep-alive\r\nX-Kept: yes\r\n'), (r) => answers(r) === 1);
    expect(received.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(received.endsWith(`\r\n\r\n${ORIGIN_BODY}`)).toBe(true);
    expect(origin.lastHead!.url).toBe('/page?x=1');
    expect(origin.lastHead!.headers['x-kept']).toBe('yes');
    expect(origin.lastHead!.headers['proxy-connection']).toBeUndefined();
  });

  it('keeps its connection to the server alive across requests, and answers pipelined requests in order', async () => {
    await exchange(get('/0'), (r) => answers(r) === 1); // opens (or reuses) the kept-alive connection
    const servedBefore = origin.served;
    const connectionsBefore = origin.connections;
    const { received } = await exchange(get('/1') + get('/2') + get('/3'), (r) => answers(r) === 3);
    expect(answers(received)).toBe(3);
    expect(origin.served - servedBefore).toBe(3);
    // The connection the request before left kept alive serves all three, from another client's connection.
    expect(origin.connections - connectionsBefore).toBe(0);
    expect(origin.lastHead!.url).toBe('/3');
  });

  it('opens a CONNECT tunnel that carries the bytes both ways', async () => {
    const { received } = await exchange(
      `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\nGET /tunnelled HTTP/1.1\r\nHost: x\r\n\r\n`,
      (r) => answers(r) === 1,
    );
    expect(received.startsWith('HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK')).toBe(true);
    expect(origin.lastHead!.url).toBe('/tunnelled');
  });

  it('refuses a request with a body, and any method but GET, without reaching the server', async () => {
    const servedBefore = origin.served;
    const post = await exchange(`POST http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi`);
    expect(post.received.startsWith('HTTP/1.1 501 ')).toBe(true);
    expect(post.closed).toBe(true);
    const head = await exchange(`HEAD http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(head.received.startsWith('HTTP/1.1 501 ')).toBe(true);
    // A GET is relayed, but not one with a body.
    const getWithBody = await exchange(`GET http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi`);
    expect(getWithBody.received.startsWith('HTTP/1.1 501 ')).toBe(true);
    expect(getWithBody.closed).toBe(true);
    expect(origin.served).toBe(servedBefore);
  });

  it('answers 502 for an answer it cannot frame, and cuts the client off when the server stops mid-answer', async () => {
    const chunked = await exchange(get('/chunked'));
    expect(chunked.received.startsWith('HTTP/1.1 502 ')).toBe(true);
    expect(chunked.closed).toBe(true);
    const cut = await exchange(get('/cut'));
    expect(cut.received).toContain('only part');
    expect(cut.closed).toBe(true);
  });

  it('refuses a target that is not an absolute http URI', async () => {
    const { received, closed } = await exchange('GET /relative HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(received.startsWith('HTTP/1.1 400 ')).toBe(true);
    expect(closed).toBe(true);
  });
});
