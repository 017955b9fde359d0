// The proxy's own HTTP client towards web servers (proxy/origin-client.ts),
// against a raw TCP origin that answers each path with exactly the bytes the
// test scripts: chunked bodies with extensions and trailers, conflicting
// framing, informational responses, bodies delimited by the close, malformed
// answers, and kept-alive connections the server closes between requests.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostMapPolicy } from '../support/host-map-policy.js';
import { requestViaProxy, startProxy, testConfig, type RunningProxy } from '../support/proxy-harness.js';

interface ScriptedOrigin {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Request heads received, in order. */
  heads: string[];
  close(): Promise<void>;
}

/** What the origin writes for a request path, and whether it then closes the connection. */
/** `nth`: which request this is on its connection, from 1. `drop`: close at once, answering nothing. */
type Script = (path: string, nth: number) => { bytes: string; close?: boolean; drop?: boolean };

function startScriptedOrigin(script: Script): Promise<ScriptedOrigin> {
  const sockets = new Set<net.Socket>();
  const origin: ScriptedOrigin = { port: 0, connections: 0, heads: [], close: async () => undefined };
  const server = net.createServer((socket) => {
    origin.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    let nth = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const length = /\r\ncontent-length: (\d+)/i.exec(head);
        if (length) buffered = buffered.slice(Number(length[1]));
        origin.heads.push(head);
        const answer = script(head.split(' ')[1], ++nth);
        if (answer.drop) return void socket.destroy();
        if (answer.close) socket.end(answer.bytes, 'latin1');
        else socket.write(answer.bytes, 'latin1');
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      origin.port = (server.address() as AddressInfo).port;
      origin.close = () => {
        for (const socket of sockets) socket.destroy();
        return new Promise((done) => server.close(() => done()));
      };
      resolve(origin);
    });
  });
}

describe('the proxy as an HTTP client of web servers', () => {
  let origin: ScriptedOrigin;
  let proxy: RunningProxy;
  let base: string;

  beforeAll(async () => {
    origin = await startScriptedOrigin((path, nth) => {
      switch (path) {
        case '/stale':
          // A kept-alive connection the server has given up on just as the proxy reuses it.
          return nth > 1 ? { bytes: '', drop: true } : { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh' };
        case '/silent-second':
          // Takes the second request on a kept-alive connection and never answers it.
          return nth > 1 ? { bytes: '' } : { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst' };
        case '/chunked-with-trailers':
          return { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Checksum: 1\r\n\r\n' };
        case '/chunked-and-length':
          return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunks\r\n0\r\n\r\n' };
        case '/continue-first':
          return { bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal' };
        case '/until-close':
          return { bytes: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this, until the close', close: true };
        case '/http10':
          return { bytes: 'HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!' };
        case '/bare-lf':
          return { bytes: 'HTTP/1.1 200 OK\nContent-Length: 2\n\nhi' };
        case '/bad-status':
          return { bytes: 'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nhi' };
        case '/bad-chunk':
          return { bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n' };
        case '/switching':
          return { bytes: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n' };
        case '/close-after':
          return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', close: true };
        case '/extra-bytes':
          return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE' };
        default:
          return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 7\r\nKeep-Alive: timeout=60\r\n\r\ndefault' };
      }
    });
    proxy = await startProxy(hostMapPolicy({}), testConfig());
    base = `http://origin.test:${origin.port}`;
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  it('decodes a chunked body, extensions and trailers dropped, and re-frames it for the client', async () => {
    const res = await requestViaProxy(proxy.port, `${base}/chunked-with-trailers`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello, world');
    expect(res.headers['x-checksum']).toBeUndefined();
    const events = await proxy.recorder.waitFor(1);
    expect(events.at(-1)).toMatchObject({ status: 200, bytesOut: 12 });
  });

  it('lets Transfer-Encoding win over Content-Length, and does not pass the length on', async () => {
    const res = await requestViaProxy(proxy.port, `${base}/chunked-and-length`);
    expect(res.body).toBe('chunks');
    expect(res.headers['content-length']).toBeUndefined();
  });

  it('skips informational responses and relays the final one', async () => {
    const res = await requestViaProxy(proxy.port, `${base}/continue-first`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('final');
  });

  it('relays a body delimited by the server closing, and an HTTP/1.0 answer', async () => {
    expect((await requestViaProxy(proxy.port, `${base}/until-close`)).body).toBe('all of this, until the close');
    expect((await requestViaProxy(proxy.port, `${base}/http10`)).body).toBe('old!');
  });

  it('cuts the client off when a chunked body turns out not to be valid', async () => {
    const before = proxy.recorder.events.length;
    await expect(requestViaProxy(proxy.port, `${base}/bad-chunk`)).rejects.toThrow();
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before]).toMatchObject({ path: '/bad-chunk', status: 200, bytesOut: 0 });
  });

  it.each(['/bare-lf', '/bad-status', '/switching'])('answers 502 in plain words when the server sends %s', async (path) => {
    const res = await requestViaProxy(proxy.port, `${base}${path}`);
    expect(res.status).toBe(502);
    expect(res.body).toContain('sent a response that is not valid HTTP');
  });

  it('reuses a kept-alive connection, and does not reuse one the server closed or sent garbage on', async () => {
    await requestViaProxy(proxy.port, `${base}/a`);
    const before = origin.connections;
    expect((await requestViaProxy(proxy.port, `${base}/b`)).body).toBe('default');
    expect(origin.connections).toBe(before); // the same connection

    // The server closes after answering; the proxy must not send the next request down a dead connection.
    expect((await requestViaProxy(proxy.port, `${base}/close-after`)).body).toBe('ok');
    expect((await requestViaProxy(proxy.port, `${base}/c`)).body).toBe('default');
    // Garbage after a response: that connection is not used again, and the next request is unharmed.
    expect((await requestViaProxy(proxy.port, `${base}/extra-bytes`)).body).toBe('ok');
    expect((await requestViaProxy(proxy.port, `${base}/d`)).body).toBe('default');
  });

  it('sends a request again on a new connection when the kept-alive one it reused is closed unanswered', async () => {
    await requestViaProxy(proxy.port, `${base}/warm`);
    const before = origin.connections;
    const res = await requestViaProxy(proxy.port, `${base}/stale`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('fresh');
    expect(origin.connections).toBe(before + 1);
    expect(origin.heads.slice(-2).map((h) => h.split('\r\n')[0])).toEqual(['GET /stale HTTP/1.1', 'GET /stale HTTP/1.1']);
  });

  it('does not send a POST again when the kept-alive connection it went on is closed unanswered', async () => {
    await requestViaProxy(proxy.port, `${base}/warm`);
    const before = origin.heads.length;
    const res = await requestViaProxy(proxy.port, `${base}/stale`, { method: 'POST' });
    expect(res.status).toBe(502);
    // The server may have acted on it: a proxy must not repeat a request that is not idempotent.
    expect(origin.heads.slice(before).map((h) => h.split('\r\n')[0])).toEqual(['POST /stale HTTP/1.1']);
  });

  it('does not send a request again when the server took it on a reused connection and then never answered', async () => {
    const patient = await startProxy(hostMapPolicy({}), testConfig({ upstreamTimeoutMs: 300 }));
    try {
      expect((await requestViaProxy(patient.port, `${base}/silent-second`)).body).toBe('first');
      const before = origin.heads.length;
      const res = await requestViaProxy(patient.port, `${base}/silent-second`);
      expect(res.status).toBe(504);
      expect(origin.heads.length - before).toBe(1);
    } finally {
      await patient.close();
    }
  });

  it('sends the request head as a proxy should: origin form, Host from the target, Via, no hop-by-hop fields', async () => {
    await requestViaProxy(proxy.port, `${base}/shape?q=1`, { headers: { 'X-Keep': 'yes', Connection: 'x-drop', 'X-Drop': 'no' } });
    const head = origin.heads.at(-1)!;
    const [requestLine, ...fields] = head.split('\r\n');
    expect(requestLine).toBe('GET /shape?q=1 HTTP/1.1');
    expect(fields).toContain(`Host: origin.test:${origin.port}`);
    expect(fields).toContain('X-Keep: yes');
    expect(fields).toContain('Via: 1.1 portcullis');
    expect(fields.some((f) => /^(x-drop|connection):/i.test(f))).toBe(false);
  });
});
