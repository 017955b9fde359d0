// The peer-proxy benchmark's load generators and checks, on real sockets:
// wrk's output parsed from captured runs, wrk's counts against a local
// origin's, CONNECT tunnels through a small forward proxy, and the
// verification that refuses to measure a proxy that does not filter.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ORIGIN_BODY } from '../../bench/common.js';
import { measureConnectTunnels, measureIdleClients, originCountBounds, parseWrkOutput, runWrk } from '../../bench/load.js';
import { BLOCKED_TEST_HOST } from '../../bench/peers/lists.js';
import { measureSideBySide, originSubject, type Subject } from '../../bench/peers/measure.js';
import type { BlockAnswer, RunningPeer } from '../../bench/peers/peer.js';
import { freePort } from '../../bench/common.js';
import { treeUsage } from '../../bench/peers/proc.js';
import { startSquidGuard, squidGuardBlockAnswer } from '../../bench/peers/squidguard.js';
import { PeerVerificationError, verifyPeer } from '../../bench/peers/verify.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');

function installed(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const hasWrk = installed('wrk');
const hasSquidGuard = installed('squid') && installed('squidGuard');
// The peers resolve names themselves; bench/peers/setup.sh points these at 127.0.0.1.
const hostsReady = (() => {
  try {
    const hosts = readFileSync('/etc/hosts', 'utf8');
    return [BLOCKED_TEST_HOST, 'origin.test'].every((name) => new RegExp(`^127\\.0\\.0\\.1\\s.*\\b${name.replace('.', '\\.')}\\b`, 'm').test(hosts));
  } catch {
    return false;
  }
})();

interface TestOrigin {
  port: number;
  served(): Promise<number>;
  lastRequest?: { url: string; host?: string; proxyConnection?: string };
  close(): Promise<void>;
}

const TEST_BLOCK_PAGE = 'blocked by the test proxy';
const testBlockAnswer: BlockAnswer = { status: 403, description: 'the test 403', matches: (r) => r.status === 403 && r.body === TEST_BLOCK_PAGE };

/** The bench origin's behaviour in this process: the 1 KiB page for everything, and a count. */
async function startTestOrigin(): Promise<TestOrigin> {
  let served = 0;
  const origin: Partial<TestOrigin> = {};
  const server = http.createServer((req, res) => {
    served++;
    origin.lastRequest = { url: req.url ?? '', host: req.headers.host, proxyConnection: req.headers['proxy-connection'] as string | undefined };
    req.resume();
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(ORIGIN_BODY) });
    res.end(ORIGIN_BODY);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(origin, {
    port: (server.address() as net.AddressInfo).port,
    served: async () => served,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
}

/**
 * A forward proxy to this machine for every name; with `blockHost`, one that
 * answers that name with a 403 of its own instead, for its first
 * `blockFirst` requests for it (all of them unless given).
 */
async function startPassThroughProxy(blockHost?: string, blockFirst = Number.POSITIVE_INFINITY): Promise<{ port: number; close(): Promise<void> }> {
  const agent = new http.Agent({ keepAlive: true });
  let blocked = 0;
  const server = http.createServer((req, res) => {
    const target = new URL(req.url ?? '/');
    if (target.hostname === blockHost && blocked++ < blockFirst) {
      req.resume();
      res.writeHead(403, { 'Content-Type': 'text/plain', 'Content-Length': TEST_BLOCK_PAGE.length });
      res.end(TEST_BLOCK_PAGE);
      return;
    }
    const upstream = http.request({ host: '127.0.0.1', port: target.port, path: target.pathname, headers: { host: target.host }, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket) => {
    const [, port] = (req.url ?? '').split(':');
    const upstream = net.connect({ host: '127.0.0.1', port: Number(port) }, () => {
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      agent.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('parseWrkOutput on captured wrk 4.1 output', () => {
  it('reads requests, duration, rate and the latency percentiles', () => {
    const result = parseWrkOutput(fixture('wrk-latency-plain.txt'));
    expect(result).toEqual({
      requests: 5687,
      durationSeconds: 2.02,
      requestsPerSecond: 2810.17,
      latencyP50Ms: 6.04,
      latencyP99Ms: 85.31,
      socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
      non2xx3xx: 0,
    });
  });

  it('reads non-2xx/3xx answers and the status count the Lua script adds', () => {
    const result = parseWrkOutput(fixture('wrk-latency-status-count.txt'));
    expect(result.requests).toBe(7568);
    expect(result.non2xx3xx).toBe(756);
    expect(result.statusCount).toEqual({ status: 404, count: 756 });
    expect(result.latencyP99Ms).toBe(15.44);
  });

  it('reads socket errors and microsecond latencies', () => {
    const result = parseWrkOutput(fixture('wrk-latency-socket-errors.txt'));
    expect(result.socketErrors).toEqual({ connect: 0, read: 32, write: 0, timeout: 0 });
    expect(result.latencyP50Ms).toBeCloseTo(0.592, 6);
    expect(result.requests).toBe(6545);
  });

  it('refuses output without a latency distribution rather than reporting zeros', () => {
    const withoutLatency = fixture('wrk-latency-plain.txt').replace(/^\s*Latency Distribution[\s\S]*?99%.*$/m, '');
    expect(() => parseWrkOutput(withoutLatency)).toThrow(/latency distribution/);
  });
});

describe.skipIf(!hasWrk)('wrk against a local origin (skipped: wrk is not installed; bench/peers/setup.sh installs it)', () => {
  let origin: TestOrigin;
  beforeAll(async () => {
    origin = await startTestOrigin();
  });
  afterAll(async () => origin?.close());

  it('sends absolute-URI requests, and its count matches the origin within the requests in flight at the end', async () => {
    const connections = 8;
    const before = await origin.served();
    const target = `http://origin.test:${origin.port}/`;
    const result = await runWrk({ connectPort: origin.port, target, host: `origin.test:${origin.port}`, connections, threads: 1, durationSeconds: 2, countStatus: 200 });
    const served = (await origin.served()) - before;
    expect(origin.lastRequest).toEqual({ url: target, host: `origin.test:${origin.port}`, proxyConnection: 'keep-alive' });
    expect(result.requests).toBeGreaterThan(100);
    expect(result.non2xx3xx).toBe(0);
    expect(result.socketErrors).toEqual({ connect: 0, read: 0, write: 0, timeout: 0 });
    expect(result.statusCount).toEqual({ status: 200, count: result.requests });
    // wrk stops counting when its time is up; at most one request per connection was then in flight.
    const bounds = originCountBounds(result, connections);
    expect(bounds).toEqual({ min: result.requests, max: result.requests + connections });
    expect(served).toBeGreaterThanOrEqual(bounds.min);
    expect(served).toBeLessThanOrEqual(bounds.max);
  });
});

describe.skipIf(!hasWrk)('proxies measured side by side in rounds (skipped: wrk is not installed; bench/peers/setup.sh installs it)', () => {
  let origin: TestOrigin;
  const proxies: Array<{ port: number; close(): Promise<void> }> = [];
  beforeAll(async () => {
    origin = await startTestOrigin();
  });
  afterAll(async () => {
    for (const proxy of proxies) await proxy.close();
    await origin?.close();
  });

  it("gives each subject one run of each case per round, in the order listed then reversed, and its median round as its figure", async () => {
    // The test proxy sends every name to this machine, so no /etc/hosts entry is needed.
    const filtering = await startPassThroughProxy(BLOCKED_TEST_HOST);
    proxies.push(filtering);
    const asPeer = (name: string, port: number, blockAnswer?: BlockAnswer): Subject => ({
      direct: false, startedIn: 0.1,
      peer: { name, version: 'test', port, pid: process.pid, settings: [], blockAnswer, usage: () => treeUsage(process.pid), stop: async () => undefined },
    });
    const subjects = [originSubject({ ...origin, pid: process.pid }), asPeer('filtering', filtering.port, testBlockAnswer)];
    const lines: string[] = [];
    const settings = { seconds: 1, rounds: 2, warmUpSeconds: 1, connections: 4, threads: 1 as const, lightSeconds: 1, tunnels: 20, idleClients: 20 };
    // A machine that is never quiet: every wait gives up after its time, and the tally must show each one.
    const busyMachine = () => {
      let ticks = 0;
      return () => ({ busy: (ticks += 100), total: ticks });
    };
    const { results, quiet } = await measureSideBySide(subjects, origin, settings, {
      quiet: { maxBusyCores: 0.25, windowMs: 5, timeoutMs: 10, readTicks: busyMachine(), cores: 2 },
      progress: (line) => lines.push(line),
    });

    const measuredInOrder = lines.filter((line) => /^ {2}\S.*: allowed/.test(line)).map((line) => line.trim().split(':')[0]);
    expect(measuredInOrder).toEqual(['origin direct (limit)', 'filtering', 'filtering', 'origin direct (limit)']);
    expect(results.map((r) => r.name)).toEqual(['origin direct (limit)', 'filtering']);
    for (const r of results) {
      expect(r.allowedRounds).toHaveLength(2);
      expect(r.lightRuns).toHaveLength(2);
      // Of two rounds the median is the faster one (the upper middle).
      expect(r.allowed.requestsPerSecond).toBe(Math.max(...r.allowedRounds.map((run) => run.requestsPerSecond)));
      expect(r.lightRuns.every((run) => run.requests > 0 && run.non2xx3xx === 0)).toBe(true);
    }
    const [direct, filter] = results;
    expect(direct.blocked).toBeUndefined();
    expect(direct.tunnels).toBeUndefined();
    expect(direct.idle).toBeUndefined();
    expect(filter.tunnels).toMatchObject({ failures: 0 });
    expect(filter.tunnels!.tunnelsPerSecond).toBeGreaterThan(0);
    expect(filter.idle).toMatchObject({ failures: 0, closedByProxy: 0 });
    expect(filter.blockedRounds).toHaveLength(2);
    expect(filter.blocked?.requestsPerSecond).toBe(Math.max(...filter.blockedRounds!.map((run) => run.requestsPerSecond)));
    expect(filter.blocked?.blockAnswer).toBe('the test 403');
    // A wait before every timed run: allowed and one-connection runs for both, a blocked run for the filtering one,
    // in each round; then its tunnels and idle clients. None found the machine quiet.
    expect(quiet).toMatchObject({ runs: 2 * (2 * 2 + 1) + 2, notQuiet: 2 * (2 * 2 + 1) + 2, highestBusyCores: 2 });
    expect(quiet.waitedMs).toBeGreaterThan(0);
  }, 60_000);

  it('fails loudly, naming the proxy and the run, when a filter that passed the check lets the blocked host through later', async () => {
    // Blocks the check's one request for the listed host, then lets every later one reach the origin.
    const leaky = await startPassThroughProxy(BLOCKED_TEST_HOST, 1);
    proxies.push(leaky);
    const subject: Subject = {
      direct: false, startedIn: 0.1,
      peer: { name: 'leaky', version: 'test', port: leaky.port, pid: process.pid, settings: [], blockAnswer: testBlockAnswer, usage: () => treeUsage(process.pid), stop: async () => undefined },
    };
    const settings = { seconds: 1, rounds: 1, warmUpSeconds: 1, connections: 2, threads: 1 as const, lightSeconds: 1, tunnels: 5, idleClients: 5 };
    await expect(measureSideBySide([subject], origin, settings, { quiet: { maxBusyCores: Number.POSITIVE_INFINITY, windowMs: 5, timeoutMs: 100 } }))
      .rejects.toThrow(new RegExp(`^leaky, blocked, round 1: \\d+ requests for ${BLOCKED_TEST_HOST.replaceAll('.', '\\.')} reached the origin \\(the filter was bypassed\\)$`));
  }, 60_000);
});

describe('CONNECT tunnels and idle clients through a pass-through proxy', () => {
  let origin: TestOrigin;
  let proxy: { port: number; close(): Promise<void> };
  beforeAll(async () => {
    origin = await startTestOrigin();
    proxy = await startPassThroughProxy();
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });

  it('sets up the bounded number of tunnels, each carrying one request to the origin', async () => {
    const before = await origin.served();
    const result = await measureConnectTunnels({ proxyPort: proxy.port, targetHost: 'origin.test', targetPort: origin.port, count: 200, concurrency: 10, expectBody: ORIGIN_BODY });
    expect(result).toMatchObject({ tunnels: 200, failures: 0 });
    expect(result.tunnelsPerSecond).toBeGreaterThan(0);
    expect((await origin.served()) - before).toBe(200);
  });

  it('counts a tunnel whose answer is not the expected page as a failure', async () => {
    const result = await measureConnectTunnels({ proxyPort: proxy.port, targetHost: 'origin.test', targetPort: origin.port, count: 5, concurrency: 5, expectBody: 'something else' });
    expect(result).toMatchObject({ tunnels: 0, failures: 5 });
  });

  it('holds idle keep-alive clients open and reads the memory of the process tree', async () => {
    const result = await measureIdleClients({ proxyPort: proxy.port, url: `http://origin.test:${origin.port}/`, clients: 100, usage: () => treeUsage(process.pid), settleMs: 100 });
    expect(result).toMatchObject({ clients: 100, failures: 0, closedByProxy: 0 });
    expect(result.before.rssBytes).toBeGreaterThan(0);
    expect(result.before.pssBytes).toBeGreaterThan(0);
    expect(Number.isFinite(result.rssBytesPerConnection)).toBe(true);
  });
});

describe('verifyPeer refuses a proxy that does not do what it is measured for', () => {
  let origin: TestOrigin;
  beforeAll(async () => {
    origin = await startTestOrigin();
  });
  afterAll(async () => origin?.close());

  it('passes a proxy that returns the origin page, and rejects one claiming to filter that lets a listed domain through', async () => {
    const proxy = await startPassThroughProxy();
    try {
      const peer: RunningPeer = { name: 'pass-through', version: 'test', port: proxy.port, pid: process.pid, settings: [], usage: () => treeUsage(process.pid), stop: async () => undefined };
      await expect(verifyPeer(peer, origin)).resolves.toBeUndefined();
      await expect(verifyPeer({ ...peer, blockAnswer: squidGuardBlockAnswer }, origin)).rejects.toThrow(/reached the origin: it is not filtering/);
    } finally {
      await proxy.close();
    }
  });

  it('rejects a proxy that answers with something other than the origin page', async () => {
    const wrongOrigin = http.createServer((_, res) => res.end('not the bench page'));
    await new Promise<void>((resolve) => wrongOrigin.listen(0, '127.0.0.1', resolve));
    const proxy = await startPassThroughProxy();
    try {
      const port = (wrongOrigin.address() as net.AddressInfo).port;
      const peer: RunningPeer = { name: 'pass-through', version: 'test', port: proxy.port, pid: process.pid, settings: [], usage: () => treeUsage(process.pid), stop: async () => undefined };
      await expect(verifyPeer(peer, { port, served: async () => 0 })).rejects.toThrow(PeerVerificationError);
    } finally {
      await proxy.close();
      wrongOrigin.closeAllConnections();
      await new Promise((resolve) => wrongOrigin.close(resolve));
    }
  });
});

describe.skipIf(!hasSquidGuard || !hostsReady)(
  'squid + squidGuard verification (skipped unless squid, squidGuard and the /etc/hosts entries of bench/peers/setup.sh are there)',
  () => {
    let origin: TestOrigin;
    let scratch: string;
    beforeAll(async () => {
      origin = await startTestOrigin();
      scratch = await mkdtemp(path.join(os.tmpdir(), 'portcullis-bench-test-'));
      await chmod(scratch, 0o755); // squid and its helpers run as the proxy user
    });
    afterAll(async () => {
      await origin?.close();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    async function verifiedWith(domains: string, name: string): Promise<void> {
      const listFile = path.join(scratch, `${name}-domains`);
      await writeFile(listFile, domains);
      const dir = await mkdtemp(path.join(scratch, `${name}-`));
      const peer = await startSquidGuard({
        dir,
        port: await freePort(),
        lists: scratch,
        workers: 1,
        helpers: 2,
        categories: [{ name: 'gambling', domains: listFile, blocked: true }],
      });
      try {
        await verifyPeer(peer, origin);
      } finally {
        await peer.stop();
      }
    }

    it('passes with the gambling list, and rejects an empty blocklist', async () => {
      await expect(verifiedWith(`${BLOCKED_TEST_HOST}\n`, 'listed')).resolves.toBeUndefined();
      await expect(verifiedWith('', 'empty')).rejects.toThrow(/reached the origin: it is not filtering/);
    }, 40_000);
  },
);
