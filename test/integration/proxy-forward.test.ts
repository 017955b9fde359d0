// Plain HTTP through the proxy: forwarding, blocking, sign-in, errors, limits.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_REF_PATTERN } from '../../proxy/block-ref.js';
import type { ProxyPolicy } from '../../proxy/types.js';
import { freePort } from '../support/global-postgres.js';
import { hostMapPolicy, TEST_CATEGORY } from '../support/host-map-policy.js';
import {
  connectViaProxy,
  rawExchange,
  requestViaProxy,
  startHttpOrigin,
  startProxy,
  startSilentServer,
  testConfig,
  type RunningProxy,
  type TestOrigin,
} from '../support/proxy-harness.js';

describe('plain HTTP forwarding', () => {
  let origin: TestOrigin;
  let proxy: RunningProxy;
  let base: string;

  beforeAll(async () => {
    origin = await startHttpOrigin();
    proxy = await startProxy(
      hostMapPolicy({ 'blocked.test': 'block', 'monitored.test': 'monitor' }),
      testConfig({ maxHeaderBytes: 8 * 1024 }),
    );
    base = `http://origin.test:${origin.port}`;
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  it('forwards method, path, body and end-to-end headers, and drops hop-by-hop ones both ways', async () => {
    const before = proxy.recorder.events.length;
    const res = await requestViaProxy(proxy.port, `${base}/submit/a//b?x=1`, {
      method: 'POST',
      body: 'hello origin',
      headers: {
        'Content-Type': 'text/plain',
        'X-Custom': 'kept',
        'X-Hop': 'dropped',
        Connection: 'keep-alive, X-Hop',
        'Keep-Alive': 'timeout=5',
        'Proxy-Connection': 'keep-alive',
        'Proxy-Authorization': 'Basic c2VjcmV0OnNlY3JldA==',
        TE: 'trailers',
        Via: '1.1 earlier-proxy',
      },
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe('You sent: hello origin');
    const seen = origin.requests.at(-1)!;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/submit/a//b?x=1');
    expect(seen.body).toBe('hello origin');
    expect(seen.headers['x-custom']).toBe('kept');
    expect(seen.headers['content-type']).toBe('text/plain');
    for (const hop of ['x-hop', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te']) {
      expect(seen.headers[hop], hop).toBeUndefined();
    }
    expect(seen.headers.via).toBe('1.1 earlier-proxy, 1.1 portcullis');
    // Response side: the origin's Connection-named and Keep-Alive headers stop at the proxy.
    expect(res.headers['x-origin']).toBe('yes');
    expect(res.headers['x-origin-hop']).toBeUndefined();
    expect(res.headers['keep-alive']).toBeUndefined();
    expect(res.headers.via).toBe('1.1 portcullis');

    const events = await proxy.recorder.waitFor(before + 1);
    const event = events[before];
    expect(event).toMatchObject({
      method: 'POST', scheme: 'http', host: 'origin.test', port: origin.port, path: '/submit/a//b?x=1',
      status: 200, bytesIn: 'hello origin'.length, bytesOut: 'You sent: hello origin'.length, blockRef: null,
    });
    expect(event.decision.action).toBe('allow');
    expect(event.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('re-chunks a chunked request body', async () => {
    const res = await requestViaProxy(proxy.port, `${base}/chunked`, {
      method: 'PUT',
      body: 'in chunks',
      headers: { 'Transfer-Encoding': 'chunked' },
    });
    expect(res.body).toBe('You sent: in chunks');
    expect(origin.requests.at(-1)!.headers['transfer-encoding']).toBe('chunked');
  });

  it('takes the Host header from the request target, not from the client', async () => {
    await requestViaProxy(proxy.port, `${base}/host`, { headers: { Host: 'elsewhere.example' } });
    expect(origin.requests.at(-1)!.headers.host).toBe(`origin.test:${origin.port}`);
  });

  it('normalises the target host and resolves dot segments before deciding and forwarding', async () => {
    const res = await requestViaProxy(proxy.port, `http://ORIGIN.Test.:${origin.port}/a/../b/./c`);
    expect(res.status).toBe(200);
    expect(origin.requests.at(-1)!.url).toBe('/b/c');
    expect(origin.requests.at(-1)!.headers.host).toBe(`origin.test:${origin.port}`);
    const blocked = await requestViaProxy(proxy.port, `http://BLOCKED.test./x`);
    expect(blocked.status).toBe(403);
  });

  it('keeps connections alive to the client and to the origin', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await requestViaProxy(proxy.port, `${base}/one`, { agent });
      const second = await requestViaProxy(proxy.port, `${base}/two`, { agent });
      expect(first.status).toBe(200);
      expect(second.reusedSocket).toBe(true);
      const [a, b] = origin.requests.slice(-2);
      expect(a.url).toBe('/one');
      expect(b.url).toBe('/two');
      expect(b.remotePort).toBe(a.remotePort);
    } finally {
      agent.destroy();
    }
  });

  it('forwards monitored requests and records them as monitored', async () => {
    const before = proxy.recorder.events.length;
    const res = await requestViaProxy(proxy.port, `http://monitored.test:${origin.port}/m`);
    expect(res.status).toBe(200);
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before].decision.action).toBe('monitor');
    expect(events[before].status).toBe(200);
  });

  it('answers a blocked request with the block page and records the same reference', async () => {
    const before = proxy.recorder.events.length;
    const requestsBefore = origin.requests.length;
    const res = await requestViaProxy(proxy.port, `http://blocked.test:${origin.port}/page?q=<script>`);
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain(`http://blocked.test:${origin.port}/page?q=%3Cscript%3E`);
    expect(res.body).toContain('Games &amp; &lt;Gambling&gt;');
    expect(res.body).toContain('pupils: blocked.test is block &lt;test&gt;');
    expect(res.body).toContain('not signed in (group pupils)');
    expect(res.body).not.toContain('<test>');
    expect(res.body).toMatch(/\d{4}/); // the time, with its year
    const ref = /<code>([^<]+)<\/code>/.exec(res.body)?.[1];
    expect(ref).toMatch(BLOCK_REF_PATTERN);
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before]).toMatchObject({ status: 403, blockRef: ref, host: 'blocked.test', bytesOut: Buffer.byteLength(res.body) });
    expect(events[before].decision.category).toBe(TEST_CATEGORY);
    expect(origin.requests.length).toBe(requestsBefore);
  });

  it('explains itself to a browser that talks to it as a web server, and keeps serving', async () => {
    const reply = await rawExchange(proxy.port, 'GET / HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).toContain('This is a web proxy');
    expect(reply).toContain('proxy.pac');
    expect((await requestViaProxy(proxy.port, `${base}/after`)).status).toBe(200);
  });

  it.each([
    ['garbage', 'THIS IS NOT HTTP\r\n\r\n'],
    ['a bad host', 'GET http://exa%mple.test/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['a port out of range', 'GET http://origin.test:99999/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['credentials in the URL', 'GET http://user:pw@origin.test/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['an https URL', 'GET https://origin.test/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['an asterisk target', 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
    ['an empty host', 'GET http:/// HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
  ])('answers %s with 400 and keeps serving', async (_name, request) => {
    const reply = await rawExchange(proxy.port, request);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(reply).toContain('<h1>');
    expect((await requestViaProxy(proxy.port, `${base}/after`)).status).toBe(200);
  });

  it('refuses headers larger than the limit with 431 and keeps serving', async () => {
    const reply = await rawExchange(
      proxy.port,
      `GET ${base}/big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`,
    );
    expect(reply).toMatch(/^HTTP\/1\.1 431 /);
    const justUnder = await requestViaProxy(proxy.port, `${base}/fits`, { headers: { 'X-Big': 'a'.repeat(4_000) } });
    expect(justUnder.status).toBe(200);
  });

  it('answers 502 in plain words when the origin refuses the connection', async () => {
    const closedPort = await freePort();
    const before = proxy.recorder.events.length;
    const res = await requestViaProxy(proxy.port, `http://origin.test:${closedPort}/`);
    expect(res.status).toBe(502);
    expect(res.body).toContain('refused the connection');
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before]).toMatchObject({ status: 502, port: closedPort });
  });
});

describe('upstream timeouts', () => {
  it('answers 504 when the origin accepts but never answers', async () => {
    const silent = await startSilentServer();
    const proxy = await startProxy(hostMapPolicy({}), testConfig({ upstreamTimeoutMs: 300 }));
    try {
      const started = Date.now();
      const res = await requestViaProxy(proxy.port, `http://origin.test:${silent.port}/`);
      expect(res.status).toBe(504);
      expect(res.body).toContain('did not answer in time');
      expect(Date.now() - started).toBeLessThan(3_000);
      const [event] = await proxy.recorder.waitFor(1);
      expect(event.status).toBe(504);
    } finally {
      await proxy.close();
      await silent.close();
    }
  });
});

describe('abandoned requests', () => {
  it('records a request the client gives up on, once, as 499', async () => {
    const silent = await startSilentServer();
    const proxy = await startProxy(hostMapPolicy({}), testConfig());
    try {
      const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
      socket.write(`GET http://origin.test:${silent.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 100));
      socket.destroy();
      const [event] = await proxy.recorder.waitFor(1);
      expect(event.status).toBe(499);
      await new Promise((r) => setTimeout(r, 100));
      expect(proxy.recorder.events).toHaveLength(1);
    } finally {
      await proxy.close();
      await silent.close();
    }
  });
});

describe('sign-in', () => {
  let origin: TestOrigin;
  let proxy: RunningProxy;
  beforeAll(async () => {
    origin = await startHttpOrigin();
    proxy = await startProxy(hostMapPolicy({}, { credentials: { username: 'alice', password: 's3cret' } }), testConfig());
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  it('asks for credentials with 407 and Proxy-Authenticate', async () => {
    const res = await requestViaProxy(proxy.port, `http://origin.test:${origin.port}/`);
    expect(res.status).toBe(407);
    expect(res.headers['proxy-authenticate']).toBe('Basic realm="Portcullis"');
    expect(res.body).toContain('sign in');
    const wrong = await requestViaProxy(proxy.port, `http://origin.test:${origin.port}/`, {
      headers: { 'Proxy-Authorization': `Basic ${Buffer.from('alice:nope').toString('base64')}` },
    });
    expect(wrong.status).toBe(407);
    expect(wrong.body).toContain('not accepted');
    expect(origin.requests).toHaveLength(0);
  });

  it('forwards once signed in, without passing the credentials on', async () => {
    const res = await requestViaProxy(proxy.port, `http://origin.test:${origin.port}/in`, {
      headers: { 'Proxy-Authorization': `Basic ${Buffer.from('alice:s3cret').toString('base64')}` },
    });
    expect(res.status).toBe(200);
    expect(origin.requests.at(-1)!.headers['proxy-authorization']).toBeUndefined();
    const [event] = await proxy.recorder.waitFor(1);
    expect(event.identity.username).toBe('alice');
  });
});

describe('sign-in while the user directory is unreachable', () => {
  it('answers 503 for HTTP and CONNECT, and keeps serving', async () => {
    const origin = await startHttpOrigin();
    let directoryDown = true;
    const base = hostMapPolicy({});
    const policy: ProxyPolicy = {
      ...base,
      identify: (ip, auth) => (directoryDown ? Promise.reject(new Error('connect ECONNREFUSED')) : base.identify(ip, auth)),
    };
    const proxy = await startProxy(policy, testConfig());
    try {
      const res = await requestViaProxy(proxy.port, `http://origin.test:${origin.port}/`);
      expect(res.status).toBe(503);
      expect(res.body).toContain('cannot be checked just now');
      const tunnel = await connectViaProxy(proxy.port, 'origin.test:443');
      expect(tunnel.status).toBe(503);
      expect(origin.requests).toHaveLength(0);
      directoryDown = false;
      expect((await requestViaProxy(proxy.port, `http://origin.test:${origin.port}/`)).status).toBe(200);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('client allow-list and shutdown', () => {
  it('cuts off clients outside ALLOWED_CLIENTS without a word', async () => {
    const origin = await startHttpOrigin();
    const proxy = await startProxy(hostMapPolicy({}), testConfig({ allowedClients: [{ address: '10.0.0.0', prefix: 8, family: 'ipv4' }] }));
    try {
      const reply = await rawExchange(proxy.port, `GET http://origin.test:${origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(reply).toBe('');
      expect(origin.requests).toHaveLength(0);
      expect(proxy.recorder.events).toHaveLength(0);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  it('closes promptly with an idle keep-alive client connected', async () => {
    const origin = await startHttpOrigin();
    const proxy = await startProxy(hostMapPolicy({}), testConfig());
    const agent = new http.Agent({ keepAlive: true });
    try {
      await requestViaProxy(proxy.port, `http://origin.test:${origin.port}/`, { agent });
      const started = Date.now();
      await proxy.close();
      expect(Date.now() - started).toBeLessThan(1_000);
      const refused = await new Promise<string>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: proxy.port });
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? ''));
        socket.on('connect', () => resolve('connected'));
      });
      expect(refused).toBe('ECONNREFUSED');
    } finally {
      agent.destroy();
      await origin.close();
    }
  });
});
