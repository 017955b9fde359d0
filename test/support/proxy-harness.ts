// TEST ONLY. Starts the proxy and the origins it talks to, all on loopback,
// and gives tests plain clients for them.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { loadConfig, type Config } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import type { Resolve } from '../../proxy/destination-guard.js';
import { createProxyServer, type ProxyServer } from '../../proxy/server.js';
import type { AccessEvent, AccessRecorder, ProxyPolicy } from '../../proxy/types.js';
import { selfSignedCertificate, type TestCertificate } from './tls-cert.js';

/** Every name under .test resolves to 127.0.0.1; anything else does not exist. */
export const resolveTestNames: Resolve = async (host) => {
  if (host.endsWith('.test')) return ['127.0.0.1'];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
};

export class MemoryRecorder implements AccessRecorder {
  readonly events: AccessEvent[] = [];
  record(event: AccessEvent): void {
    this.events.push(event);
  }
  /** Waits (bounded) until `count` events have arrived; tunnels record when they close. */
  async waitFor(count: number, timeoutMs = 5_000): Promise<AccessEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} access events, got ${this.events.length}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.events;
  }
}

export function testConfig(overrides: Partial<Config> = {}): Config {
  const base = loadConfig({
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: '0',
    ADMIN_PORT: '0',
    ALLOWED_CLIENTS: '127.0.0.0/8,::1',
    ALLOWED_PRIVATE_DESTINATIONS: '127.0.0.0/8',
    LOG_LEVEL: 'silent',
  });
  return { ...base, ...overrides };
}

export interface RunningProxy {
  port: number;
  recorder: MemoryRecorder;
  proxy: ProxyServer;
  close(): Promise<void>;
}

export async function startProxy(
  policy: ProxyPolicy,
  config: Config,
  resolve: Resolve = resolveTestNames,
): Promise<RunningProxy> {
  const recorder = new MemoryRecorder();
  const proxy = createProxyServer({ config, policy, recorder, log: createLogger('silent'), resolve });
  const { port } = await proxy.listen();
  return { port, recorder, proxy, close: () => proxy.close() };
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  remotePort: number;
}

export interface TestOrigin {
  port: number;
  requests: SeenRequest[];
  close(): Promise<void>;
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    if ('closeAllConnections' in server) (server as http.Server).closeAllConnections();
  });
}

async function listenOnLoopback(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/**
 * An HTTP origin that records each request and answers with its body echoed
 * under "You sent: ", plus hop-by-hop headers the proxy must not pass on.
 */
export async function startHttpOrigin(): Promise<TestOrigin> {
  const requests: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, remotePort: req.socket.remotePort ?? 0 });
      res.writeHead(200, {
        'Content-Type': 'text/plain',
        'X-Origin': 'yes',
        'X-Origin-Hop': 'must not pass',
        Connection: 'keep-alive, X-Origin-Hop',
        'Keep-Alive': 'timeout=30',
      });
      res.end(`You sent: ${body}`);
    });
  });
  const port = await listenOnLoopback(server);
  return { port, requests, close: () => closeServer(server) };
}

export interface TestHttpsOrigin extends TestOrigin {
  ca: string;
  /** TLS handshakes completed, whatever the name. */
  handshakes: number;
}

let sharedCertificate: TestCertificate | undefined;
/** One key pair per test file: RSA generation is slow. */
export function testCertificate(): TestCertificate {
  sharedCertificate ??= selfSignedCertificate(['origin.test', 'allowed.test', 'blocked.test', 'monitored.test']);
  return sharedCertificate;
}

export async function startHttpsOrigin(): Promise<TestHttpsOrigin> {
  const { key, cert } = testCertificate();
  const requests: SeenRequest[] = [];
  const server = https.createServer({ key, cert }, (req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '', remotePort: req.socket.remotePort ?? 0 });
    res.end(`secure hello from ${req.headers.host}`);
  });
  const origin: TestHttpsOrigin = { port: 0, requests, ca: cert, handshakes: 0, close: () => closeServer(server) };
  server.on('secureConnection', () => origin.handshakes++);
  origin.port = await listenOnLoopback(server);
  return origin;
}

/** A TCP server that accepts connections and never answers. */
export async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP echo server, for tunnels that carry something other than TLS. */
export async function startEchoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ProxiedResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  reusedSocket: boolean;
}

/** A plain HTTP request through the proxy, as a browser configured for it sends one. */
export function requestViaProxy(
  proxyPort: number,
  url: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string; agent?: http.Agent } = {},
): Promise<ProxiedResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        method: options.method ?? 'GET',
        path: url,
        headers: { Host: new URL(url).host, ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), reusedSocket: req.reusedSocket }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * Sends `bytes` on a new connection and resolves with what comes back once
 * the proxy closes it, or as soon as `until` (given what has come so far)
 * says all of it is there. Rejects after `timeoutMs` with neither.
 */
export function rawExchange(
  port: number,
  bytes: string | Buffer,
  timeoutMs = 5_000,
  until?: (received: string) => boolean,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const received = (): string => Buffer.concat(chunks).toString();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; received ${JSON.stringify(received())}`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (until === undefined || !until(received())) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(received());
    });
    socket.on('error', () => undefined); // a reset still ends the exchange; 'close' follows
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received());
    });
    socket.write(bytes);
  });
}

/** Opens a CONNECT tunnel through the proxy; resolves with the status and, on 200, the socket. */
export function connectViaProxy(
  proxyPort: number,
  authority: string,
  headers: http.OutgoingHttpHeaders = {},
): Promise<{ status: number; socket: net.Socket; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: authority, headers, agent: false });
    req.on('connect', (res, socket, head: Buffer) => {
      if (res.statusCode === 200) {
        if (head.length > 0) socket.unshift(head);
        resolve({ status: 200, socket, body: '' });
        return;
      }
      const chunks: Buffer[] = [head];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('close', () => resolve({ status: res.statusCode ?? 0, socket, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Speaks TLS over a tunnel socket, makes one HTTPS GET and closes; rejects if no TLS session was made. */
export function httpsGetOverTunnel(socket: net.Socket, serverName: string, ca: string, path = '/'): Promise<string> {
  return new Promise((resolve, reject) => {
    let established = false;
    const secure = tls.connect({ socket, servername: serverName, ca }, () => {
      established = true;
      secure.write(`GET ${path} HTTP/1.1\r\nHost: ${serverName}\r\nConnection: close\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    secure.on('data', (c: Buffer) => chunks.push(c));
    secure.on('error', reject);
    secure.on('close', () => {
      socket.destroy();
      if (established) resolve(Buffer.concat(chunks).toString());
      else reject(new Error('the tunnel closed before a TLS session was established'));
    });
    secure.on('end', () => secure.destroy());
  });
}
