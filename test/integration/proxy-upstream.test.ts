// Chaining to a parent proxy (UPSTREAM_PROXY), for plain HTTP and CONNECT.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Resolve } from '../../proxy/destination-guard.js';
import { hostMapPolicy } from '../support/host-map-policy.js';
import {
  connectViaProxy,
  httpsGetOverTunnel,
  requestViaProxy,
  startHttpOrigin,
  startHttpsOrigin,
  startProxy,
  startSilentServer,
  testConfig,
  type RunningProxy,
  type TestHttpsOrigin,
  type TestOrigin,
} from '../support/proxy-harness.js';

interface ParentSaw {
  method: string;
  target: string;
  proxyAuthorization: string | undefined;
  via: string | undefined;
}

/** TEST ONLY: a minimal parent proxy that records what it got; names under .test are 127.0.0.1. */
async function startParentProxy(options: { refuseConnect?: number } = {}) {
  const seen: ParentSaw[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', target: req.url ?? '', proxyAuthorization: req.headers['proxy-authorization'], via: req.headers.via });
    const url = new URL(req.url ?? '');
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const onward = http.request({ host: '127.0.0.1', port: url.port, method: req.method, path: url.pathname + url.search, headers }, (originRes) => {
      res.writeHead(originRes.statusCode ?? 502, originRes.headers);
      originRes.pipe(res);
    });
    req.pipe(onward);
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    seen.push({ method: 'CONNECT', target: req.url ?? '', proxyAuthorization: req.headers['proxy-authorization'], via: undefined });
    if (options.refuseConnect) {
      socket.end(`HTTP/1.1 ${options.refuseConnect} No\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const port = Number((req.url ?? '').split(':').at(-1));
    const onward = net.connect({ host: '127.0.0.1', port }, () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      socket.pipe(onward).pipe(socket);
    });
    onward.on('error', () => socket.destroy());
    socket.on('error', () => onward.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    seen,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

const lookups: string[] = [];
const recordingResolve: Resolve = async (host) => {
  lookups.push(host);
  return ['127.0.0.1'];
};

describe('with a parent proxy', () => {
  let origin: TestOrigin;
  let secure: TestHttpsOrigin;
  let parent: Awaited<ReturnType<typeof startParentProxy>>;
  let proxy: RunningProxy;
  const credentials = `Basic ${Buffer.from('up:stream pw').toString('base64')}`;

  beforeAll(async () => {
    origin = await startHttpOrigin();
    secure = await startHttpsOrigin();
    parent = await startParentProxy();
    proxy = await startProxy(
      hostMapPolicy({ 'blocked.test': 'block' }),
      testConfig({
        upstreamProxy: new URL(`http://up:stream%20pw@127.0.0.1:${parent.port}`),
        connectPorts: new Set([secure.port]),
        allowedPrivateDestinations: [],
      }),
      recordingResolve,
    );
  });
  afterAll(async () => {
    await proxy.close();
    await parent.close();
    await origin.close();
    await secure.close();
  });

  it('sends plain HTTP to the parent in absolute form, with the parent credentials', async () => {
    const res = await requestViaProxy(proxy.port, `http://origin.test:${origin.port}/via//parent?q=1`, {
      method: 'POST',
      body: 'payload',
      headers: { 'Proxy-Authorization': 'Basic Y2xpZW50OnNlY3JldA==' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe('You sent: payload');
    expect(parent.seen.at(-1)).toEqual({
      method: 'POST',
      target: `http://origin.test:${origin.port}/via//parent?q=1`,
      proxyAuthorization: credentials,
      via: '1.1 portcullis',
    });
    expect(origin.requests.at(-1)!.headers.host).toBe(`origin.test:${origin.port}`);
    // The parent resolves names; the proxy does not look them up itself.
    expect(lookups).toHaveLength(0);
  });

  it('opens CONNECT tunnels through the parent with its own CONNECT', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${secure.port}`);
    expect(tunnel.status).toBe(200);
    expect(await httpsGetOverTunnel(tunnel.socket, 'origin.test', secure.ca)).toContain('secure hello from origin.test');
    expect(parent.seen.at(-1)).toEqual({ method: 'CONNECT', target: `origin.test:${secure.port}`, proxyAuthorization: credentials, via: undefined });
    const events = await proxy.recorder.waitFor(before + 1);
    expect(events[before]).toMatchObject({ status: 200, method: 'CONNECT' });
  });

  it('still blocks before anything reaches the parent', async () => {
    const seenBefore = parent.seen.length;
    expect((await requestViaProxy(proxy.port, `http://blocked.test:${origin.port}/`)).status).toBe(403);
    expect((await connectViaProxy(proxy.port, `blocked.test:${secure.port}`)).status).toBe(403);
    expect(parent.seen.length).toBe(seenBefore);
  });

  it('still refuses private IP literals and local names', async () => {
    const seenBefore = parent.seen.length;
    expect((await requestViaProxy(proxy.port, `http://10.0.0.1:${origin.port}/`)).status).toBe(403);
    expect((await requestViaProxy(proxy.port, `http://localhost:${origin.port}/`)).status).toBe(403);
    expect((await connectViaProxy(proxy.port, `[::1]:${secure.port}`)).status).toBe(403);
    expect(parent.seen.length).toBe(seenBefore);
  });
});

describe('parent proxy failures', () => {
  it('answers 502 when the parent refuses a CONNECT', async () => {
    const parent = await startParentProxy({ refuseConnect: 403 });
    const proxy = await startProxy(hostMapPolicy({}), testConfig({ upstreamProxy: new URL(`http://127.0.0.1:${parent.port}`), connectPorts: new Set([443]) }));
    try {
      const tunnel = await connectViaProxy(proxy.port, 'origin.test:443');
      expect(tunnel.status).toBe(502);
      expect(tunnel.body).toContain('upstream proxy would not connect to origin.test:443 (it answered 403)');
      const [event] = await proxy.recorder.waitFor(1);
      expect(event.status).toBe(502);
    } finally {
      await proxy.close();
      await parent.close();
    }
  });

  it('answers 504 when the parent never answers, for HTTP and CONNECT', async () => {
    const silent = await startSilentServer();
    const proxy = await startProxy(
      hostMapPolicy({}),
      testConfig({ upstreamProxy: new URL(`http://127.0.0.1:${silent.port}`), connectPorts: new Set([443]), upstreamTimeoutMs: 300 }),
    );
    try {
      const res = await requestViaProxy(proxy.port, 'http://origin.test/');
      expect(res.status).toBe(504);
      expect(res.body).toContain('upstream proxy');
      const tunnel = await connectViaProxy(proxy.port, 'origin.test:443');
      expect(tunnel.status).toBe(504);
      const events = await proxy.recorder.waitFor(2);
      expect(events.map((e) => e.status)).toEqual([504, 504]);
    } finally {
      await proxy.close();
      await silent.close();
    }
  });
});
