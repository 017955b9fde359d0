// TEST ONLY. "The internet" for system tests: a parent proxy on loopback
// (what UPSTREAM_PROXY points at) that sends every plain HTTP request to one
// local HTTP origin and every CONNECT tunnel to one local HTTPS origin,
// whatever name was asked for. Nothing leaves the machine. Also a helper that
// loads a tiny UT1-format list so that a test need not import the bundled one.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { importBlocklists } from '../../blocklists/import.js';
import type { Pool } from '../../core/db.js';
import { selfSignedCertificate, type TestCertificate } from './tls-cert.js';

export interface StandInRequest {
  /** What the parent proxy was asked for: an absolute URL, or host:port for CONNECT. */
  target: string;
  method: string;
}

export interface InternetStandIn {
  /** The parent proxy's URL, for UPSTREAM_PROXY. */
  parentUrl: string;
  /** Every request and tunnel the parent proxy was asked for, in order. */
  seen: StandInRequest[];
  /** Requests the HTTP origin answered: method, Host header and path. */
  httpRequests: Array<{ method: string; host: string; path: string }>;
  /** TLS handshakes the HTTPS origin completed. */
  httpsHandshakes: number;
  /** The HTTPS origin's certificate, to trust in clients. */
  ca: string;
  close(): Promise<void>;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function closeAll(server: http.Server, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
    for (const s of sockets) s.destroy();
  });
}

/** Starts the origins and the parent proxy; `names` are the names the HTTPS origin's certificate covers. */
export async function startInternetStandIn(options: { certificate?: TestCertificate; names?: string[] } = {}): Promise<InternetStandIn> {
  const certificate = options.certificate ?? selfSignedCertificate(options.names ?? ['origin.test']);
  const standIn: InternetStandIn = {
    parentUrl: '',
    seen: [],
    httpRequests: [],
    httpsHandshakes: 0,
    ca: certificate.cert,
    close: async () => undefined,
  };

  const origin = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      standIn.httpRequests.push({ method: req.method ?? '', host: req.headers.host ?? '', path: req.url ?? '' });
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`origin saw ${req.method} ${req.headers.host}${req.url}`);
    });
  });
  const secure = https.createServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
    res.end(`secure origin saw ${req.headers.host}${req.url}`);
  });
  secure.on('secureConnection', () => standIn.httpsHandshakes++);
  const originPort = await listen(origin);
  const securePort = await listen(secure);

  const onwardAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const tunnels = new Set<net.Socket>();
  const parent = http.createServer((req, res) => {
    standIn.seen.push({ target: req.url ?? '', method: req.method ?? '' });
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('the stand-in parent proxy takes absolute URLs only');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const onward = http.request(
      { host: '127.0.0.1', port: originPort, method: req.method, path: target.pathname + target.search, headers, agent: onwardAgent },
      (originRes) => {
        res.writeHead(originRes.statusCode ?? 502, originRes.headers);
        originRes.pipe(res);
      },
    );
    onward.on('error', () => res.destroy());
    req.pipe(onward);
  });
  parent.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    standIn.seen.push({ target: req.url ?? '', method: 'CONNECT' });
    tunnels.add(socket);
    socket.on('close', () => tunnels.delete(socket));
    socket.on('error', () => undefined);
    const onward = net.connect({ host: '127.0.0.1', port: securePort }, () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      socket.pipe(onward).pipe(socket);
    });
    onward.on('error', () => socket.destroy());
    socket.on('close', () => onward.destroy());
  });
  const parentPort = await listen(parent);

  standIn.parentUrl = `http://127.0.0.1:${parentPort}`;
  standIn.close = async () => {
    onwardAgent.destroy();
    await closeAll(parent, tunnels);
    await closeAll(origin, new Set());
    await closeAll(secure, new Set());
  };
  return standIn;
}

/** Imports a small UT1-format list (category → domains) through the real importer. */
export async function importSmallLists(pool: Pool, lists: Record<string, string[]>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-lists-'));
  try {
    for (const [category, domains] of Object.entries(lists)) {
      await mkdir(path.join(dir, category));
      await writeFile(path.join(dir, category, 'domains'), `${domains.join('\n')}\n`);
    }
    await importBlocklists(pool, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Polls `check` every `everyMs` until it is true; throws after `timeoutMs` naming what was awaited. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Polls `check` until it returns a value, and returns it; fails past `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 8_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
