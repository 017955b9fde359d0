// The proxy's own reading of what clients send (proxy/client-connection.ts):
// pipelined requests, request bodies in every framing, Expect: 100-continue,
// HTTP/1.0 keep-alive, the header timeout, and the requests that smuggling
// relies on, which must be refused before anything reaches a web server.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostMapPolicy } from '../support/host-map-policy.js';
import { rawExchange, startHttpOrigin, startProxy, testConfig, type RunningProxy, type TestOrigin } from '../support/proxy-harness.js';

const count = (text: string, part: string): number => text.split(part).length - 1;

describe('what the proxy reads from clients', () => {
  let origin: TestOrigin;
  let proxy: RunningProxy;
  let base: string;

  beforeAll(async () => {
    origin = await startHttpOrigin();
    proxy = await startProxy(hostMapPolicy({ 'blocked.test': 'block' }), testConfig({ headerTimeoutMs: 400 }));
    base = `http://origin.test:${origin.port}`;
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  it('answers pipelined requests one after another, in order, on one connection', async () => {
    const before = origin.requests.length;
    const requests =
      `GET ${base}/one HTTP/1.1\r\nHost: origin.test\r\n\r\n` +
      `GET http://blocked.test/two HTTP/1.1\r\nHost: blocked.test\r\n\r\n` +
      `POST ${base}/three HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\n\r\nhello` +
      `GET ${base}/four HTTP/1.1\r\nHost: origin.test\r\n\r\n`;
    const reply = await rawExchange(proxy.port, requests, 5_000, (r) => count(r, 'HTTP/1.1 ') === 4 && r.endsWith('0\r\n\r\n'));
    const statuses = [...reply.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 403, 200, 200]);
    expect(reply).toContain('You sent: hello');
    expect(origin.requests.slice(before).map((r) => r.url)).toEqual(['/one', '/three', '/four']);
  });

  it('forwards a chunked request body, extensions and all, as one body', async () => {
    const before = origin.requests.length;
    const reply = await rawExchange(
      proxy.port,
      `POST ${base}/chunked HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n`,
      5_000,
      (r) => r.includes('You sent: abcdefg'),
    );
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(origin.requests[before].body).toBe('abcdefg');
    expect(origin.requests[before].headers['transfer-encoding']).toBe('chunked');
  });

  it('answers Expect: 100-continue with 100 before reading the body', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString()));
    socket.write(`PUT ${base}/upload HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n`);
    const deadline = Date.now() + 5_000;
    while (!received.includes('100 Continue') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(received).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    socket.write('data');
    while (!received.includes('You sent: data') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    socket.destroy();
    expect(received).toMatch(/HTTP\/1\.1 200 OK/);
    expect(origin.requests.at(-1)!.headers.expect).toBeUndefined();
  });

  it('keeps an HTTP/1.0 connection alive only when the client asks, and ends a body of unknown length with the close', async () => {
    const reply = await rawExchange(
      proxy.port,
      `GET http://blocked.test/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET ${base}/b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`,
    );
    const [blocked, forwarded] = reply.split(/(?=HTTP\/1\.1 )/);
    expect(blocked).toMatch(/^HTTP\/1\.1 403 [\s\S]*Connection: keep-alive\r\n/);
    // The origin's answer has no length and an HTTP/1.0 client cannot read chunks: the close ends it.
    expect(forwarded).toMatch(/^HTTP\/1\.1 200 [\s\S]*Connection: close\r\n\r\nYou sent: $/);
    expect(forwarded).not.toContain('Transfer-Encoding');
  });

  it('answers a blocked request that has a body, then closes: the body is never read as a request', async () => {
    const before = origin.requests.length;
    const smuggled = `GET ${base}/smuggled HTTP/1.1\r\nHost: origin.test\r\n\r\n`;
    const reply = await rawExchange(
      proxy.port,
      `POST http://blocked.test/ HTTP/1.1\r\nHost: blocked.test\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
    );
    expect(reply).toMatch(/^HTTP\/1\.1 403 /);
    expect(reply).toContain('Connection: close');
    expect(count(reply, 'HTTP/1.1 ')).toBe(1);
    expect(origin.requests.length).toBe(before);
  });

  it.each([
    ['Transfer-Encoding beside Content-Length', 'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', 400],
    ['two different Content-Lengths', 'Content-Length: 4\r\nContent-Length: 40\r\n', 400],
    ['a space before the colon', 'Transfer-Encoding : chunked\r\n', 400],
    ['a coding other than chunked', 'Transfer-Encoding: gzip, chunked\r\n', 501],
    ['obsolete line folding', 'X-A: 1\r\n  folded\r\n', 400],
  ])('refuses a request with %s, and nothing reaches the server', async (_name, fields, status) => {
    const before = origin.requests.length;
    const reply = await rawExchange(proxy.port, `POST ${base}/x HTTP/1.1\r\nHost: origin.test\r\n${fields}\r\n0\r\n\r\nGET ${base}/y HTTP/1.1\r\n\r\n`);
    expect(reply).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(reply).toContain('Connection: close');
    expect(count(reply, 'HTTP/1.1 ')).toBe(1);
    expect(origin.requests.length).toBe(before);
  });

  it('refuses a head whose lines end in a bare LF without waiting for more', async () => {
    const reply = await rawExchange(proxy.port, `GET ${base}/ HTTP/1.1\nHost: origin.test\n\n`, 2_000);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    // The refusal is one of the proxy's own pages, sent as they all are.
    expect(reply).toContain('\r\nCache-Control: no-store\r\n');
    expect(reply).toContain('\r\nX-Content-Type-Options: nosniff\r\n');
  });

  it('cuts the connection on a chunked request body that is not valid', async () => {
    const before = proxy.recorder.events.length;
    const reply = await rawExchange(proxy.port, `POST ${base}/bad HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`);
    expect(reply).toBe('');
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before]).toMatchObject({ path: '/bad', status: 499 });
  });

  it('answers 408 to a request head that is not complete within the header timeout', async () => {
    const started = Date.now();
    const reply = await rawExchange(proxy.port, `GET ${base}/slow HTTP/1.1\r\nHost: origin`, 5_000);
    expect(reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it('leaves an idle kept-alive connection open past the header timeout', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString()));
    socket.write(`GET ${base}/first HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    await new Promise((r) => setTimeout(r, 1_200)); // three header timeouts
    socket.write(`GET ${base}/second HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    const deadline = Date.now() + 5_000;
    while (count(received, 'HTTP/1.1 200') < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    socket.destroy();
    expect(count(received, 'HTTP/1.1 200')).toBe(2);
  });
});

describe('idle client connections', () => {
  it('closes a kept-alive connection that stays idle past the idle timeout, and not before', async () => {
    const origin = await startHttpOrigin();
    const proxy = await startProxy(hostMapPolicy({}), testConfig({ headerTimeoutMs: 200, idleTimeoutMs: 800 }));
    try {
      const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
      let received = '';
      socket.on('data', (c: Buffer) => (received += c.toString()));
      const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
      socket.write(`GET http://origin.test:${origin.port}/ HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
      const deadline = Date.now() + 5_000;
      while (!received.includes('You sent: ') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const answered = Date.now();
      const closedAt = await closed;
      // The sweep runs every header timeout (200 ms): closed after 800 ms idle, within a sweep of it.
      expect(closedAt - answered).toBeGreaterThanOrEqual(750);
      expect(closedAt - answered).toBeLessThan(2_000);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});
