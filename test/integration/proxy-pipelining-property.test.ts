// A property of the proxy's own HTTP/1.1 reading: however a client's
// pipelined requests are cut into TCP writes, and whatever framing their
// bodies use, the web server receives exactly those requests, in order, with
// exactly their bodies, and the client gets one answer per request.
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostMapPolicy } from '../support/host-map-policy.js';
import { startProxy, testConfig, type RunningProxy } from '../support/proxy-harness.js';

interface GeneratedRequest {
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  body: Buffer;
  framing: 'length' | 'chunked';
  /** Sizes the chunked coding cuts the body into. */
  chunkSizes: number[];
}

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

function encode(request: GeneratedRequest, authority: string): Buffer {
  const head = `${request.method} http://${authority}${request.path} HTTP/1.1\r\nHost: ${authority}\r\nX-Test: 1\r\n`;
  if (request.method === 'GET') return Buffer.from(`${head}\r\n`);
  if (request.framing === 'length') return Buffer.concat([Buffer.from(`${head}Content-Length: ${request.body.length}\r\n\r\n`), request.body]);
  const parts: Buffer[] = [Buffer.from(`${head}Transfer-Encoding: chunked\r\n\r\n`)];
  let at = 0;
  for (const size of request.chunkSizes) {
    if (at >= request.body.length) break;
    const piece = request.body.subarray(at, at + size);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
    at += piece.length;
  }
  if (at < request.body.length) {
    const rest = request.body.subarray(at);
    parts.push(Buffer.from(`${rest.length.toString(16)}\r\n`), rest, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

const generatedRequest: fc.Arbitrary<GeneratedRequest> = fc.record({
  method: fc.constantFrom('GET' as const, 'POST' as const, 'PUT' as const),
  path: fc.stringMatching(/^\/[a-z0-9]{0,12}$/),
  body: fc.uint8Array({ maxLength: 3_000 }).map((a) => Buffer.from(a)),
  framing: fc.constantFrom('length' as const, 'chunked' as const),
  chunkSizes: fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 6 }),
});

describe('pipelined requests cut anywhere', () => {
  let origin: http.Server;
  let authority: string;
  let proxy: RunningProxy;
  let seen: Array<{ method: string; url: string; sha: string }> = [];

  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', sha: sha(Buffer.concat(chunks)) });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    authority = `origin.test:${(origin.address() as AddressInfo).port}`;
    proxy = await startProxy(hostMapPolicy({}), testConfig());
  });
  afterAll(async () => {
    await proxy.close();
    origin.closeAllConnections();
    await new Promise((resolve) => origin.close(resolve));
  });

  it('reach the server exactly as sent, one answer each', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(generatedRequest, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 8 }), async (requests, cuts) => {
        seen = [];
        const bytes = Buffer.concat(requests.map((r) => encode(r, authority)));
        const points = [...new Set([0, ...cuts.map((c) => c % bytes.length), bytes.length])].sort((a, b) => a - b);
        const answers = await new Promise<number>((resolve, reject) => {
          const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
          let received = '';
          const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error(`${requests.length} requests, answers so far: ${JSON.stringify(received.slice(0, 300))}`));
          }, 5_000);
          socket.on('data', (c: Buffer) => {
            received += c.toString('latin1');
            const count = received.split('HTTP/1.1 200 ').length - 1;
            if (count === requests.length && received.endsWith('\r\n\r\nok')) {
              clearTimeout(timer);
              socket.end();
              resolve(count);
            }
          });
          socket.on('error', reject);
          // Each piece in a write of its own, a moment apart, so that they arrive as separate reads.
          void (async () => {
            for (let i = 0; i + 1 < points.length; i++) {
              socket.write(bytes.subarray(points[i], points[i + 1]));
              await new Promise((r) => setImmediate(r));
            }
          })();
        });
        expect(answers).toBe(requests.length);
        expect(seen).toEqual(
          requests.map((r) => ({ method: r.method, url: r.path, sha: sha(r.method === 'GET' ? Buffer.alloc(0) : r.body) })),
        );
      }),
      { numRuns: 60, timeout: 6_000 },
    );
  });
});
