// Load generators for the proxy benchmarks, the same for Portcullis and the
// peer proxies:
// - wrk with keep-alive through a proxy. wrk has no proxy option, so it
//   connects to the proxy and a small Lua script makes every request an
//   absolute-URI request (`GET http://origin.test:<port>/ HTTP/1.1`) with
//   the origin's Host header and Proxy-Connection: keep-alive, as a browser
//   configured with a proxy sends.
// - CONNECT tunnel set-up rate, in Node with plain sockets.
// - 1,000 idle keep-alive clients, for the proxy's memory per connection.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { percentile } from './common.js';
import type { TreeUsage } from './peers/proc.js';

export interface WrkOptions {
  /** Where wrk connects: the proxy (or the origin itself, for the direct limit). */
  connectPort: number;
  /** The request target: an absolute URL through a proxy, a path when talking to the origin directly. */
  target: string;
  /** Host header value. */
  host: string;
  connections: number;
  threads: 1 | 2;
  durationSeconds: number;
  /** Count the responses with this status exactly (a Lua response hook: costs wrk some CPU, so only when needed). */
  countStatus?: number;
}

export interface WrkResult {
  requests: number;
  durationSeconds: number;
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** Responses whose status was not 2xx or 3xx. */
  non2xx3xx: number;
  /** With countStatus: how many responses had that status. */
  statusCount?: { status: number; count: number };
}

const TIME_UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

function timeMs(text: string, what: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
  if (!match) throw new Error(`wrk output: cannot read the ${what} "${text}"`);
  return Number(match[1]) * TIME_UNITS_MS[match[2]];
}

/** Reads the text wrk prints with --latency (and, with countStatus, the line the Lua script's done() adds). */
export function parseWrkOutput(text: string): WrkResult {
  const line = (pattern: RegExp, what: string): RegExpExecArray => {
    const match = pattern.exec(text);
    if (!match) throw new Error(`wrk output has no ${what}:\n${text}`);
    return match;
  };
  const total = line(/^\s*(\d+) requests in ([\d.]+(?:us|ms|s|m|h)),/m, "'N requests in T' line");
  const p50 = line(/^\s*50%\s+([\d.]+(?:us|ms|s|m|h))\s*$/m, 'latency distribution (was --latency given?)');
  const p99 = line(/^\s*99%\s+([\d.]+(?:us|ms|s|m|h))\s*$/m, '99th percentile');
  const perSecond = line(/^Requests\/sec:\s+([\d.]+)/m, "'Requests/sec' line");
  const errors = /^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/m.exec(text);
  const non2xx = /^\s*Non-2xx or 3xx responses: (\d+)/m.exec(text);
  const counted = /^bench-status-count (\d+) (\d+)$/m.exec(text);
  return {
    requests: Number(total[1]),
    durationSeconds: timeMs(total[2], 'duration') / 1_000,
    requestsPerSecond: Number(perSecond[1]),
    latencyP50Ms: timeMs(p50[1], 'p50 latency'),
    latencyP99Ms: timeMs(p99[1], 'p99 latency'),
    socketErrors: {
      connect: Number(errors?.[1] ?? 0),
      read: Number(errors?.[2] ?? 0),
      write: Number(errors?.[3] ?? 0),
      timeout: Number(errors?.[4] ?? 0),
    },
    non2xx3xx: Number(non2xx?.[1] ?? 0),
    ...(counted ? { statusCount: { status: Number(counted[1]), count: Number(counted[2]) } } : {}),
  };
}

function wrkScript(options: WrkOptions): string {
  const lines = [
    '-- Written by bench/load.ts: absolute-URI requests through a proxy.',
    'wrk.method = "GET"',
    `wrk.path = ${JSON.stringify(options.target)}`,
    `wrk.headers["Host"] = ${JSON.stringify(options.host)}`,
    // What browsers send to a proxy; e2guardian closes the connection after each answer without it.
    'wrk.headers["Proxy-Connection"] = "keep-alive"',
  ];
  if (options.countStatus !== undefined) {
    lines.push(
      // Globals, so that done() can read each thread's count with thread:get.
      'counted = 0',
      'local threads = {}',
      'function setup(thread) table.insert(threads, thread) end',
      `function response(status, headers, body) if status == ${options.countStatus} then counted = counted + 1 end end`,
      'function done(summary, latency, requests)',
      '  local total = 0',
      '  for _, thread in ipairs(threads) do total = total + thread:get("counted") end',
      `  io.write(string.format("bench-status-count ${options.countStatus} %d\\n", total))`,
      'end',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Runs wrk once (keep-alive, --latency) and returns what it printed, parsed, and the text itself. */
export async function runWrk(options: WrkOptions): Promise<WrkResult & { output: string }> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'portcullis-wrk-'));
  try {
    const script = path.join(scratch, 'request.lua');
    await writeFile(script, wrkScript(options));
    const args = [
      '--latency',
      '-t', String(options.threads),
      '-c', String(options.connections),
      '-d', `${options.durationSeconds}s`,
      '--timeout', '10s',
      '-s', script,
      `http://127.0.0.1:${options.connectPort}/`,
    ];
    const output = await new Promise<string>((resolve, reject) => {
      execFile('wrk', args, { timeout: (options.durationSeconds + 30) * 1_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`wrk ${args.join(' ')} failed: ${err.message}\n${stderr}${stdout}`));
        else resolve(stdout);
      });
    });
    return { ...parseWrkOutput(output), output };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * How many requests the origin may have served for a wrk run that reported
 * `requests`: wrk counts only the responses it read before its time was up,
 * and each connection has at most one request in flight (no pipelining), so
 * the origin served between `requests` and `requests + connections` (plus
 * any request whose response wrk gave up on: timeouts, read errors).
 */
export function originCountBounds(result: WrkResult, connections: number): { min: number; max: number } {
  return { min: result.requests, max: result.requests + connections + result.socketErrors.timeout + result.socketErrors.read };
}

// ---------------------------------------------------------------- CONNECT

export interface TunnelOptions {
  proxyPort: number;
  /** host:port asked for in the CONNECT line; a plain HTTP server, so that one request can be sent through the tunnel. */
  targetHost: string;
  targetPort: number;
  /** Tunnels in all (bounded), and how many are being set up at once. */
  count: number;
  concurrency: number;
  /** The body every request through a tunnel must get. */
  expectBody: string;
}

export interface TunnelResult {
  tunnels: number;
  failures: number;
  firstFailure?: string;
  seconds: number;
  tunnelsPerSecond: number;
  /** From connecting to the proxy to its 200. */
  setupP50Ms: number;
  setupP99Ms: number;
}

const HEADER_END = '\r\n\r\n';

/** One tunnel: CONNECT, the proxy's 200, one GET through it, the whole answer, close. Resolves with the set-up time in ms. */
function oneTunnel(options: TunnelOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let setupMs = 0;
    let buffer = Buffer.alloc(0);
    let phase: 'connect' | 'tunnel' = 'connect';
    const socket = net.connect({ host: '127.0.0.1', port: options.proxyPort });
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(why));
    };
    socket.setTimeout(10_000, () => fail('no progress for 10 s'));
    socket.on('error', (err) => fail(err.message));
    socket.on('connect', () => {
      const authority = `${options.targetHost}:${options.targetPort}`;
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const headerEnd = buffer.indexOf(HEADER_END);
      if (headerEnd < 0) return;
      const head = buffer.subarray(0, headerEnd).toString('latin1');
      if (phase === 'connect') {
        if (!/^HTTP\/1\.[01] 200/.test(head)) return fail(`CONNECT answered "${head.split('\r\n')[0]}"`);
        setupMs = performance.now() - started;
        phase = 'tunnel';
        buffer = buffer.subarray(headerEnd + HEADER_END.length);
        socket.write(`GET / HTTP/1.1\r\nHost: ${options.targetHost}:${options.targetPort}\r\nConnection: close\r\n\r\n`);
        return;
      }
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (!length) return fail(`the answer through the tunnel has no Content-Length: "${head.split('\r\n')[0]}"`);
      const body = buffer.subarray(headerEnd + HEADER_END.length);
      if (body.length < Number(length[1])) return;
      socket.destroy();
      if (!/^HTTP\/1\.[01] 200/.test(head) || body.toString() !== options.expectBody) return reject(new Error(`the request through the tunnel got "${head.split('\r\n')[0]}" and not the expected body`));
      resolve(setupMs);
    });
  });
}

export async function measureConnectTunnels(options: TunnelOptions): Promise<TunnelResult> {
  const setupTimes: number[] = [];
  let next = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  const worker = async () => {
    while (next < options.count) {
      next++;
      try {
        setupTimes.push(await oneTunnel(options));
      } catch (err) {
        failures++;
        firstFailure ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, options.count) }, worker));
  const seconds = (performance.now() - started) / 1_000;
  return {
    tunnels: setupTimes.length,
    failures,
    firstFailure,
    seconds,
    tunnelsPerSecond: setupTimes.length / seconds,
    setupP50Ms: percentile(setupTimes, 50),
    setupP99Ms: percentile(setupTimes, 99),
  };
}

// ---------------------------------------------------------------- idle clients

export interface IdleClientOptions {
  proxyPort: number;
  /** Absolute URL each client asks for once, and its Host header. */
  url: string;
  clients: number;
  /** The proxy's resource use (its whole process tree). */
  usage(): TreeUsage;
  /** How long to leave the clients idle before reading the memory. */
  settleMs?: number;
}

export interface IdleClientResult {
  clients: number;
  /** Clients whose connection the proxy had closed by the time memory was read (tinyproxy closes after each response). */
  closedByProxy: number;
  failures: number;
  firstFailure?: string;
  before: TreeUsage;
  after: TreeUsage;
  /** (RSS after − RSS before) / clients still connected. */
  rssBytesPerConnection: number;
  pssBytesPerConnection: number;
}

/** Connects, sends one keep-alive request, reads the whole answer, and leaves the socket open. */
function oneIdleClient(proxyPort: number, url: string, onClose: () => void): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    let answered = false;
    const socket = net.connect({ host: '127.0.0.1', port: proxyPort });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.on('error', (err) => (answered ? undefined : reject(err)));
    socket.on('close', () => (answered ? onClose() : reject(new Error('closed before the answer'))));
    socket.on('connect', () => socket.write(`GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nProxy-Connection: keep-alive\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      buffer = Buffer.concat([buffer, chunk]);
      const headerEnd = buffer.indexOf(HEADER_END);
      if (headerEnd < 0) return;
      const head = buffer.subarray(0, headerEnd).toString('latin1');
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (!/^HTTP\/1\.[01] 200/.test(head) || !length) return socket.destroy(new Error(`got "${head.split('\r\n')[0]}"`));
      if (buffer.length - headerEnd - HEADER_END.length < Number(length[1])) return;
      answered = true;
      socket.setTimeout(0);
      resolve(socket);
    });
  });
}

export async function measureIdleClients(options: IdleClientOptions): Promise<IdleClientResult> {
  const before = options.usage();
  const sockets: net.Socket[] = [];
  let closedByProxy = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  let next = 0;
  // Opened 50 at a time: the case is about holding connections, not opening them all at once.
  const opener = async () => {
    while (next < options.clients) {
      next++;
      try {
        sockets.push(await oneIdleClient(options.proxyPort, options.url, () => closedByProxy++));
      } catch (err) {
        failures++;
        firstFailure ??= (err as Error).message;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: 50 }, opener));
    await new Promise((resolve) => setTimeout(resolve, options.settleMs ?? 1_000));
    const after = options.usage();
    const open = sockets.length - closedByProxy;
    return {
      clients: options.clients,
      closedByProxy,
      failures,
      firstFailure,
      before,
      after,
      rssBytesPerConnection: open > 0 ? (after.rssBytes - before.rssBytes) / open : Number.NaN,
      pssBytesPerConnection: open > 0 ? (after.pssBytes - before.pssBytes) / open : Number.NaN,
    };
  } finally {
    for (const socket of sockets) socket.destroy();
  }
}
