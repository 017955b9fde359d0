// Plain HTTP forwarding at the edges of HTTP framing: bodiless responses,
// repeated headers, responses of unknown length, large bodies to a slow
// reader, HTTP/1.0 clients and an origin that dies mid-body.
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostMapPolicy } from '../support/host-map-policy.js';
import { rawExchange, requestViaProxy, startProxy, testConfig, type RunningProxy } from '../support/proxy-harness.js';

const LARGE = Buffer.alloc(6 * 1024 * 1024, 'abcdefghijklmnopqrstuvwxyz');
const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Takes each chunk of `stream`, then pauses it a moment, so that whoever writes to it is held back. */
function readInFitsAndStarts(stream: Readable, take: (chunk: Buffer) => void): void {
  stream.on('data', (chunk: Buffer) => {
    take(chunk);
    stream.pause();
    setTimeout(() => stream.resume(), 1);
  });
}

describe('plain HTTP forwarding: framing edge cases', () => {
  let origin: http.Server;
  let originPort: number;
  let proxy: RunningProxy;
  let base: string;

  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      req.resume();
      switch (req.url) {
        case '/head':
          res.writeHead(200, { 'Content-Length': '1234', 'Content-Type': 'text/plain' });
          res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
          return;
        case '/no-content':
          res.writeHead(204, { 'X-Empty': 'yes' });
          res.end();
          return;
        case '/not-modified':
          res.writeHead(304, { ETag: '"v1"' });
          res.end();
          return;
        case '/cookies':
          res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
          res.end('ok');
          return;
        case '/chunked':
          res.write('part one, ');
          setTimeout(() => res.end('part two'), 20);
          return;
        case '/large':
          res.writeHead(200, { 'Content-Length': String(LARGE.length) });
          res.end(LARGE);
          return;
        case '/dies': {
          res.writeHead(200, { 'Content-Length': '100000' });
          res.write('x'.repeat(1000));
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        default:
          res.end('default');
      }
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    originPort = (origin.address() as AddressInfo).port;
    base = `http://origin.test:${originPort}`;
    proxy = await startProxy(hostMapPolicy({}), testConfig());
  });
  afterAll(async () => {
    await proxy.close();
    origin.closeAllConnections();
    await new Promise((resolve) => origin.close(resolve));
  });

  it('passes HEAD, 204 and 304 answers on without a body', async () => {
    const head = await requestViaProxy(proxy.port, `${base}/head`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('1234');
    expect(head.body).toBe('');
    const noContent = await requestViaProxy(proxy.port, `${base}/no-content`);
    expect(noContent.status).toBe(204);
    expect(noContent.headers['x-empty']).toBe('yes');
    const notModified = await requestViaProxy(proxy.port, `${base}/not-modified`, { headers: { 'If-None-Match': '"v1"' } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"v1"');
  });

  it('keeps repeated response headers apart', async () => {
    const res = await requestViaProxy(proxy.port, `${base}/cookies`);
    expect(res.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
  });

  it('relays a chunked response of unknown length whole', async () => {
    const res = await requestViaProxy(proxy.port, `${base}/chunked`);
    expect(res.body).toBe('part one, part two');
  });

  it('streams a large body to a client that reads slowly, byte for byte, and records its size', async () => {
    const before = proxy.recorder.events.length;
    const received = await new Promise<Buffer>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, path: `${base}/large`, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        // Reading in fits and starts makes the proxy's writes back up and pause the origin.
        readInFitsAndStarts(res, (chunk) => chunks.push(chunk));
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(received.length).toBe(LARGE.length);
    expect(sha(received)).toBe(sha(LARGE));
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before]).toMatchObject({ status: 200, bytesOut: LARGE.length });
  });

  it('answers an HTTP/1.0 client and closes its connection', async () => {
    const answer = await rawExchange(proxy.port, `GET ${base}/chunked HTTP/1.0\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).not.toMatch(/transfer-encoding: chunked/i);
    expect(answer.endsWith('part one, part two')).toBe(true);
  });

  it('cuts the client off when the origin dies mid-body, and records what was sent', async () => {
    const before = proxy.recorder.events.length;
    // Resolves only when the proxy closes the keep-alive connection: a short body must not look complete.
    const bytesReceived = await new Promise<number>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
      let bytes = 0;
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(bytes));
      socket.write(`GET ${base}/dies HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    });
    expect(bytesReceived).toBeGreaterThan(1000);
    expect(bytesReceived).toBeLessThan(100_000);
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before].status).toBe(200);
    expect(events[before].bytesOut).toBe(1000);
  });
});

describe('plain HTTP forwarding: bodies under pressure', () => {
  let origin: http.Server;
  let base: string;
  let proxy: RunningProxy;
  const uploads: Array<{ sha: string; bytes: number; aborted: boolean }> = [];

  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      if (req.url === '/upload') {
        // Reads slowly, so that the proxy has to hold the client back.
        const hash = createHash('sha256');
        let bytes = 0;
        let aborted = false;
        readInFitsAndStarts(req, (chunk) => {
          hash.update(chunk);
          bytes += chunk.length;
        });
        req.on('aborted', () => (aborted = true));
        req.on('close', () => {
          uploads.push({ sha: hash.digest('hex'), bytes, aborted: aborted || !req.complete });
          if (!res.headersSent && !res.destroyed) res.end(`got ${bytes}`);
        });
        return;
      }
      res.writeHead(200, { 'Content-Length': String(LARGE.length) });
      res.end(LARGE);
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    base = `http://origin.test:${(origin.address() as AddressInfo).port}`;
    // A short upstream timeout: a client that reads slowly must not make the server look silent.
    proxy = await startProxy(hostMapPolicy({}), testConfig({ upstreamTimeoutMs: 300 }));
  });
  afterAll(async () => {
    await proxy.close();
    origin.closeAllConnections();
    await new Promise((resolve) => origin.close(resolve));
  });

  it('passes a large upload to a server that reads slowly, byte for byte, and records its size', async () => {
    const before = proxy.recorder.events.length;
    const upload = LARGE.subarray(0, 3 * 1024 * 1024);
    const res = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'POST', path: `${base}/upload`, agent: false }, (r) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString()));
        r.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end(upload);
    });
    expect(res).toBe(`got ${upload.length}`);
    expect(uploads.at(-1)).toEqual({ sha: sha(upload), bytes: upload.length, aborted: false });
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before]).toMatchObject({ method: 'POST', status: 200, bytesIn: upload.length });
  });

  it('stops the upload to the server when the client gives up half-way, and records 499', async () => {
    const before = proxy.recorder.events.length;
    const uploadsBefore = uploads.length;
    const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
    socket.on('error', () => undefined);
    socket.write(`POST ${base}/upload HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 1000000\r\n\r\n`);
    socket.write(Buffer.alloc(200_000, 'x'));
    await new Promise((r) => setTimeout(r, 200));
    socket.destroy();
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before]).toMatchObject({ method: 'POST', status: 499 });
    expect(events[before].bytesIn).toBeLessThanOrEqual(200_000);
    const deadline = Date.now() + 5_000;
    while (uploads.length === uploadsBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(uploads.at(-1)).toMatchObject({ aborted: true });
    expect(uploads.at(-1)!.bytes).toBeLessThan(1_000_000);
  });

  it('does not time the server out while a slow client holds the response back', async () => {
    const received = await new Promise<Buffer>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxy.port, path: `${base}/large`, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        let paused = false;
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          if (paused) return;
          // One long stall, past the 300 ms upstream timeout, while the proxy's writes are backed up.
          paused = true;
          res.pause();
          setTimeout(() => res.resume(), 800);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(sha(received)).toBe(sha(LARGE));
  });
});
