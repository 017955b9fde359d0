// CONNECT tunnels: end-to-end TLS, the server-name check, ports, errors.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/global-postgres.js';
import { hostMapPolicy } from '../support/host-map-policy.js';
import {
  connectViaProxy,
  httpsGetOverTunnel,
  rawExchange,
  startEchoServer,
  startHttpsOrigin,
  startProxy,
  testConfig,
  type RunningProxy,
  type TestHttpsOrigin,
} from '../support/proxy-harness.js';
import { captureClientHello } from '../support/client-hello-capture.js';

describe('CONNECT tunnels', () => {
  let origin: TestHttpsOrigin;
  let echo: { port: number; close(): Promise<void> };
  let proxy: RunningProxy;

  beforeAll(async () => {
    origin = await startHttpsOrigin();
    echo = await startEchoServer();
    proxy = await startProxy(
      hostMapPolicy({ 'blocked.test': 'block', 'monitored.test': 'monitor' }),
      testConfig({ connectPorts: new Set([origin.port, echo.port]), headerTimeoutMs: 500 }),
    );
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
    await echo.close();
  });

  const newEvents = async (before: number, count = 1) => (await proxy.recorder.waitFor(before + count)).slice(before);

  it('carries TLS end to end and records the tunnel when it closes', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${origin.port}`);
    expect(tunnel.status).toBe(200);
    const reply = await httpsGetOverTunnel(tunnel.socket, 'origin.test', origin.ca, '/secret');
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply).toContain('secure hello from origin.test');
    const [event] = await newEvents(before);
    expect(event).toMatchObject({ method: 'CONNECT', scheme: 'https', host: 'origin.test', port: origin.port, path: null, status: 200, blockRef: null });
    // Both directions carried at least a handshake and an HTTP message.
    expect(event.bytesIn).toBeGreaterThan(200);
    expect(event.bytesOut).toBeGreaterThan(500);
  });

  it('outlives the header timeout once established', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${origin.port}`);
    await new Promise((r) => setTimeout(r, 1_200)); // headerTimeoutMs is 500
    const reply = await httpsGetOverTunnel(tunnel.socket, 'origin.test', origin.ca);
    expect(reply).toContain('secure hello');
    const [event] = await newEvents(before);
    expect(event.durationMs).toBeGreaterThanOrEqual(1_200);
  });

  it('refuses a CONNECT to a blocked host with 403', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `blocked.test:${origin.port}`);
    expect(tunnel.status).toBe(403);
    expect(tunnel.body).toContain('blocked');
    const [event] = await newEvents(before);
    expect(event.status).toBe(403);
    expect(event.blockRef).toMatch(/^[0-9A-Z]{10}$/);
    expect(tunnel.body).toContain(event.blockRef);
  });

  it('cuts a refused client that keeps its side open, after the header timeout', async () => {
    // allowHalfOpen: this client does not close when the proxy does, as some do not.
    const socket = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    socket.on('error', () => undefined); // the reset that proves the proxy let go
    let received = '';
    const ended = new Promise<number>((resolve) => socket.once('end', () => resolve(Date.now())));
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write(`CONNECT blocked.test:${origin.port} HTTP/1.1\r\nHost: blocked.test:${origin.port}\r\n\r\n`);
    const endedAt = await ended;
    expect(received).toMatch(/^HTTP\/1\.1 403 /);
    // A write to a socket the proxy has let go of is answered with a reset, which the write after it meets.
    const writeTwice = async (): Promise<void> => {
      socket.write('one');
      await new Promise((r) => setTimeout(r, 100));
      socket.write('two');
      await new Promise((r) => setTimeout(r, 100));
    };
    await writeTwice();
    expect(socket.destroyed).toBe(false); // still held just after the refusal
    await new Promise((r) => setTimeout(r, 900 - (Date.now() - endedAt))); // the header timeout is 500 ms
    await writeTwice();
    const gaveUp = new Promise<number>((resolve) => setTimeout(() => resolve(Number.POSITIVE_INFINITY), 3_000));
    const closedAt = await Promise.race([closed, gaveUp]);
    expect(closedAt - endedAt, 'the proxy still held the refused connection 3 s after ending it').toBeLessThan(3_000);
  });

  it('closes a tunnel whose TLS server name is blocked though the CONNECT host is allowed', async () => {
    const before = proxy.recorder.events.length;
    const handshakesBefore = origin.handshakes;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${origin.port}`);
    expect(tunnel.status).toBe(200);
    await expect(httpsGetOverTunnel(tunnel.socket, 'blocked.test', origin.ca)).rejects.toThrow();
    const [event] = await newEvents(before);
    expect(event).toMatchObject({ status: 403, host: 'blocked.test', bytesIn: 0, bytesOut: 0 });
    expect(event.decision.action).toBe('block');
    expect(event.blockRef).toMatch(/^[0-9A-Z]{10}$/);
    expect(origin.handshakes).toBe(handshakesBefore);
  });

  it('checks the server name even when the ClientHello arrives with the CONNECT request', async () => {
    const before = proxy.recorder.events.length;
    const hello = await captureClientHello({ servername: 'BLOCKED.test.' });
    const reply = await rawExchange(
      proxy.port,
      Buffer.concat([Buffer.from(`CONNECT origin.test:${origin.port} HTTP/1.1\r\nHost: origin.test:${origin.port}\r\n\r\n`), hello]),
    );
    expect(reply).toBe('HTTP/1.1 200 Connection established\r\n\r\n');
    const [event] = await newEvents(before);
    expect(event).toMatchObject({ status: 403, host: 'blocked.test' });
  });

  it('records the stricter decision when the server name is monitored', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${origin.port}`);
    const reply = await httpsGetOverTunnel(tunnel.socket, 'monitored.test', origin.ca);
    expect(reply).toContain('secure hello from monitored.test');
    const [event] = await newEvents(before);
    expect(event).toMatchObject({ status: 200, host: 'monitored.test' });
    expect(event.decision.action).toBe('monitor');
  });

  it('passes a tunnel that carries something other than TLS, per the CONNECT decision', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${echo.port}`);
    expect(tunnel.status).toBe(200);
    const echoed = await new Promise<string>((resolve) => {
      tunnel.socket.once('data', (c: Buffer) => resolve(c.toString()));
      tunnel.socket.write('PING not tls\r\n');
    });
    expect(echoed).toBe('PING not tls\r\n');
    tunnel.socket.end();
    const [event] = await newEvents(before);
    expect(event).toMatchObject({ status: 200, bytesIn: 14, bytesOut: 14 });
  });

  it('closes a tunnel whose ClientHello cannot be read', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${echo.port}`);
    const closed = new Promise<string>((resolve) => {
      let received = '';
      tunnel.socket.on('data', (c: Buffer) => (received += c.toString()));
      tunnel.socket.on('close', () => resolve(received));
    });
    // A handshake record whose first message is not a ClientHello.
    tunnel.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00]));
    expect(await closed).toBe('');
    const [event] = await newEvents(before);
    expect(event.status).toBe(400);
  });

  it('closes a tunnel whose ClientHello stalls half-way', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${echo.port}`);
    const hello = await captureClientHello({ servername: 'origin.test' });
    tunnel.socket.write(hello.subarray(0, 20));
    await new Promise<void>((resolve) => tunnel.socket.on('close', () => resolve()));
    const [event] = await newEvents(before);
    expect(event.status).toBe(400);
  });

  it('refuses ports outside CONNECT_PORTS, such as 25', async () => {
    const before = proxy.recorder.events.length;
    const tunnel = await connectViaProxy(proxy.port, 'origin.test:25');
    expect(tunnel.status).toBe(403);
    expect(tunnel.body).toContain('not 25');
    const [event] = await newEvents(before);
    expect(event).toMatchObject({ status: 403, port: 25 });
  });

  it('answers 502 when the destination refuses the connection', async () => {
    const closedPort = await freePort();
    const refusing = await startProxy(hostMapPolicy({}), testConfig({ connectPorts: new Set([closedPort]) }));
    try {
      const tunnel = await connectViaProxy(refusing.port, `origin.test:${closedPort}`);
      expect(tunnel.status).toBe(502);
      expect(tunnel.body).toContain('refused the connection');
      const [event] = await refusing.recorder.waitFor(1);
      expect(event.status).toBe(502);
    } finally {
      await refusing.close();
    }
  });

  it.each([
    ['no port', 'CONNECT origin.test HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['port 0', 'CONNECT origin.test:0 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a port out of range', 'CONNECT origin.test:70000 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a broken IPv6 literal', 'CONNECT [::1:443 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['an invalid host', 'CONNECT bad_host!:443 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a URL instead of an authority', 'CONNECT http://origin.test:443/ HTTP/1.1\r\nHost: x\r\n\r\n'],
  ])('answers a CONNECT with %s with 400 and keeps serving', async (_name, request) => {
    const reply = await rawExchange(proxy.port, request);
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    const tunnel = await connectViaProxy(proxy.port, `origin.test:${origin.port}`);
    expect(tunnel.status).toBe(200);
    tunnel.socket.destroy();
  });
});

describe('CONNECT sign-in', () => {
  it('asks for credentials with 407 and lets a signed-in user through', async () => {
    const origin = await startHttpsOrigin();
    const proxy = await startProxy(
      hostMapPolicy({}, { credentials: { username: 'bob', password: 'pw' } }),
      testConfig({ connectPorts: new Set([origin.port]) }),
    );
    try {
      const refused = await connectViaProxy(proxy.port, `origin.test:${origin.port}`);
      expect(refused.status).toBe(407);
      expect(refused.body).toContain('Sign in');
      const raw = await rawExchange(proxy.port, `CONNECT origin.test:${origin.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(raw).toContain('Proxy-Authenticate: Basic realm="Portcullis"\r\n');
      const tunnel = await connectViaProxy(proxy.port, `origin.test:${origin.port}`, {
        'Proxy-Authorization': `Basic ${Buffer.from('bob:pw').toString('base64')}`,
      });
      expect(tunnel.status).toBe(200);
      expect(await httpsGetOverTunnel(tunnel.socket, 'origin.test', origin.ca)).toContain('secure hello');
      const events = await proxy.recorder.waitFor(1);
      expect(events).toHaveLength(1);
      expect(events[0].identity.username).toBe('bob');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('shutdown', () => {
  it('cuts open tunnels after a short grace and records them', async () => {
    const origin = await startHttpsOrigin();
    const proxy = await startProxy(hostMapPolicy({}), testConfig({ connectPorts: new Set([origin.port]) }));
    try {
      const tunnel = await connectViaProxy(proxy.port, `origin.test:${origin.port}`);
      expect(tunnel.status).toBe(200);
      const tunnelClosed = new Promise<void>((resolve) => tunnel.socket.on('close', () => resolve()));
      const started = Date.now();
      await proxy.close();
      await tunnelClosed;
      expect(Date.now() - started).toBeLessThan(4_000);
      const [event] = await proxy.recorder.waitFor(1);
      expect(event.status).toBe(200);
    } finally {
      await origin.close();
    }
  });
});
