// Issue 3, done when: "a new user can follow the README on a fresh machine
// and browse through it with curl". The README's journey, against the BUILT
// program (dist/), run as a child process exactly as `npm start` runs it: an
// embedded Postgres under a fresh DATA_DIR, the bundled lists imported on
// first start, then browsing through it the way `curl -x` does, adding a
// user with the CLI while it runs, and stopping it with SIGTERM.
//
// UPSTREAM_PROXY points at a stand-in parent proxy that sends every request
// to local origins: it stands in for the internet, which is never contacted.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canConnect } from '../../bench/common.js';
import { ALLOCATOR_ENVIRONMENT } from '../../core/allocator-settings.js';
import { freePort } from '../support/global-postgres.js';
import { basicAuth, startInternetStandIn, waitUntil, type InternetStandIn } from '../support/internet-stand-in.js';
import { connectViaProxy, httpsGetOverTunnel, requestViaProxy } from '../support/proxy-harness.js';
import { signIn, type AdminSession } from '../support/whole-program.js';
import { selfSignedCertificate } from '../support/tls-cert.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'dist', 'bin', 'portcullis.js');

// Not in any UT1 list loaded by default (checked against the database below):
// the lists name news.bbc.co.uk and bbc.co.uk/games..., never www.bbc.co.uk or a parent.
const ALLOWED_HOST = 'www.bbc.co.uk';
const GAMBLING_HOST = 'www.888casino.com';
const JSMITH_PASSWORD = 'a-long-password';

function requireBuild(): void {
  if (!existsSync(bin)) {
    throw new Error(`${path.relative(root, bin)} is missing: run \`npm run build\` first (\`npm test\` builds it before testing)`);
  }
}

interface Child {
  process: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(args: string[], env: NodeJS.ProcessEnv, stdin?: string): Child {
  const child = spawn(process.execPath, [bin, ...args], { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  if (stdin !== undefined) child.stdin!.end(stdin);
  return { process: child, output: () => output, exited };
}

/** Resolves with the exit, or rejects (after killing the child) past `ms`. */
async function exitWithin(child: Child, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.process.kill('SIGKILL');
      reject(new Error(`portcullis ${child.process.spawnargs.slice(2).join(' ')} did not exit within ${ms} ms; output:\n${child.output()}`));
    }, ms);
  });
  try {
    return await Promise.race([child.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The node processes `pid` has started (cluster workers; Postgres is started by a helper binary, not node). */
function childPids(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  return children.filter((child) => readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('portcullis.js'));
}

/** The socket inodes of the TCP sockets listening on `port` (/proc/net/tcp and tcp6: local address "…:PORT", state 0A). */
function listeningSocketInodes(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((table) =>
    readFileSync(table, 'utf8')
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A')
      .map((fields) => fields[9]),
  );
}

/** Whether process `pid` holds one of the sockets `inodes` among its open files. */
function holdsSocket(pid: number, inodes: string[]): boolean {
  return readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return inodes.includes(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '');
    } catch {
      return false; // closed meanwhile
    }
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Only the variables the program needs, so that nothing from the caller's environment leaks in. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  if (process.env.TMPDIR) env.TMPDIR = process.env.TMPDIR;
  return { ...env, ...extra };
}

describe('portcullis start, a bad setting', () => {
  it('exits non-zero with a message naming the variable (PROXY_PORT=abc)', async () => {
    requireBuild();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-cli-bad-'));
    try {
      const child = run(['start'], baseEnv({ DATA_DIR: dataDir, PROXY_PORT: 'abc', LOG_LEVEL: 'info' }));
      const { code } = await exitWithin(child, 15_000);
      expect(code).not.toBe(0);
      expect(code).not.toBeNull();
      expect(child.output()).toContain('PROXY_PORT');
      expect(child.output()).toContain('"abc" is not a port number');
      // Refused before anything was started.
      expect(existsSync(path.join(dataDir, 'postgres'))).toBe(false);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('warns, naming the setting, when started without the allocator setting npm start gives it', async () => {
    requireBuild();
    const unreachable = `postgres://portcullis:x@127.0.0.1:${await freePort()}/portcullis`;
    const started = (extra: Record<string, string>) => run(['start'], baseEnv({ DATABASE_URL: unreachable, LOG_LEVEL: 'info', ...extra }));
    const without = started({});
    expect((await exitWithin(without, 15_000)).code).not.toBe(0); // no database to start against
    expect(without.output()).toContain('start Portcullis with MALLOC_MMAP_THRESHOLD_=131072 in its environment');
    const given = started({ ...ALLOCATOR_ENVIRONMENT });
    expect((await exitWithin(given, 15_000)).code).not.toBe(0);
    expect(given.output()).toContain('ECONNREFUSED');
    expect(given.output()).not.toContain('MALLOC_MMAP_THRESHOLD_');
  });
});

describe('the README journey against dist/bin/portcullis.js', () => {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let ports: { proxy: number; admin: number; pg: number };
  let internet: InternetStandIn;
  let portcullis: Child | undefined;
  let db: pg.Client | undefined;

  beforeAll(async () => {
    requireBuild();
    internet = await startInternetStandIn({ certificate: selfSignedCertificate([ALLOWED_HOST]) });
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-cli-'));
    await chmod(dataDir, 0o711); // as root, the embedded Postgres runs as `postgres` and must enter it
    ports = { proxy: await freePort(), admin: await freePort(), pg: await freePort() };
    env = baseEnv({
      ...ALLOCATOR_ENVIRONMENT, // as npm start runs it
      DATA_DIR: path.join(dataDir, 'var'),
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(ports.proxy),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(ports.admin),
      EMBEDDED_PG_PORT: String(ports.pg),
      ADMIN_PASSWORD: 'cli-test-admin-password',
      UPSTREAM_PROXY: internet.parentUrl,
      LOG_LEVEL: 'info',
      // Two proxy processes whatever this machine's core count, as on the 2-core machines it is run on.
      PROXY_WORKERS: '2',
    });
    portcullis = run(['start'], env);
    const started = portcullis;
    let exitedEarly = false;
    void started.exited.then(() => (exitedEarly = true));
    // The first start creates the cluster and imports the bundled lists.
    await waitUntil(() => exitedEarly || started.output().includes('Portcullis is running'), 110_000, 'the "Portcullis is running" line', 100).catch(
      (err: Error) => {
        throw new Error(`${err.message}; output so far:\n${started.output()}`);
      },
    );
    if (exitedEarly) throw new Error(`portcullis start exited early; output:\n${started.output()}`);

    const { user, password } = JSON.parse(readFileSync(path.join(dataDir, 'var', 'postgres-credentials.json'), 'utf8')) as {
      user: string;
      password: string;
    };
    db = new pg.Client({ host: '127.0.0.1', port: ports.pg, user, password, database: 'portcullis' });
    await db.connect();
  }, 120_000);

  afterAll(async () => {
    await db?.end().catch(() => undefined);
    // Normally the last test has stopped it; this is for a failure part-way.
    if (portcullis && portcullis.process.exitCode === null && portcullis.process.signalCode === null) {
      portcullis.process.kill('SIGTERM');
      await exitWithin(portcullis, 15_000).catch(() => undefined);
    }
    // If it had to be killed, its Postgres may be left running: stop that one by its pid.
    const pidFile = dataDir ? path.join(dataDir, 'var', 'postgres', 'postmaster.pid') : '';
    if (pidFile && existsSync(pidFile) && ports && (await canConnect(ports.pg))) {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGINT');
        } catch {
          /* already gone */
        }
        await waitUntil(async () => !(await canConnect(ports.pg)), 10_000, 'the orphaned Postgres to stop', 100).catch(() => undefined);
      }
    }
    await internet?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function logRow(where: string, value: string) {
    let row: Record<string, unknown> | undefined;
    await waitUntil(
      async () => {
        const { rows } = await db!.query(
          `SELECT a.username, g.key AS group_key, a.action, a.category, a.host, a.status, a.block_ref
             FROM access_log a JOIN groups g ON g.id = a.group_id WHERE ${where} = $1`,
          [value],
        );
        row = rows[0] as Record<string, unknown> | undefined;
        return row !== undefined;
      },
      10_000,
      `an access_log row with ${where} = ${value}`,
      50,
    );
    return row!;
  }

  it('loaded the bundled UT1 lists on first start, with the allowed test host in none of them', async () => {
    const listed = await db!.query<{ value: string }>(
      `SELECT value FROM list_entries WHERE kind = 'domain' AND value = ANY($1)`,
      [['www.bbc.co.uk', 'bbc.co.uk', 'co.uk', 'uk']],
    );
    expect(listed.rows).toEqual([]);
    const gambling = await db!.query(
      `SELECT 1 FROM list_entries e JOIN categories c ON c.id = e.category_id WHERE c.key = 'gambling' AND e.value = '888casino.com'`,
    );
    expect(gambling.rowCount).toBe(1);
    const entries = await db!.query<{ n: number }>('SELECT count(*)::int AS n FROM list_entries');
    expect(entries.rows[0].n).toBeGreaterThan(500_000);
  });

  it('runs its embedded Postgres without the allocator setting it gives its own processes', () => {
    // The setting is for Node's buffers; Postgres runs on glibc's defaults, which it is built and tested with (core/allocator-settings.ts).
    const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const setting = Object.entries(ALLOCATOR_ENVIRONMENT).map(([name, value]) => `${name}=${value}`);
    const postmaster = Number(readFileSync(path.join(dataDir, 'var', 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const main = portcullis!.process.pid!;
    const workers = childPids(main);
    expect(workers).toHaveLength(2); // PROXY_WORKERS
    expect(readFileSync(`/proc/${main}/task/${main}/children`, 'utf8').trim().split(/\s+/).map(Number)).toContain(postmaster);
    // /proc/PID/environ is what a process was started with: the workers, forked after Postgres started, show it was put back.
    for (const pid of [main, ...workers]) expect(environ(pid)).toEqual(expect.arrayContaining(setting));
    expect(environ(postmaster).filter((variable) => variable.startsWith('MALLOC_'))).toEqual([]);
  });

  it('answers GET /healthz on the admin port: database and policy ok', async () => {
    const res = await fetch(`http://127.0.0.1:${ports.admin}/healthz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; database: string; policy: { domains: number } };
    expect(body).toMatchObject({ status: 'ok', database: 'ok' });
    expect(body.policy.domains).toBeGreaterThan(100_000); // the bundled lists, compiled
  });

  it('forwards an allowed plain HTTP request to the origin', async () => {
    const res = await requestViaProxy(ports.proxy, `http://${ALLOWED_HOST}/news?x=1`);
    expect(res.status).toBe(200);
    expect(res.body).toBe(`origin saw GET ${ALLOWED_HOST}/news?x=1`);
    expect(internet.httpRequests.at(-1)).toEqual({ method: 'GET', host: ALLOWED_HOST, path: '/news?x=1' });
    const row = await logRow('a.path', '/news?x=1');
    expect(row).toMatchObject({ username: null, action: 'allowed', host: ALLOWED_HOST, status: 200 });
  });

  it('answers the 403 block page naming Gambling, with a reference, for the casino however it is spelt', async () => {
    const seenBefore = internet.seen.length;
    const spellings = [
      `http://${GAMBLING_HOST}/`,
      'http://WWW.888CASINO.COM/',
      'http://www.888casino.com./',
      'http://Poker.888Casino.com:80/tables',
      'http://888casino.com/',
    ];
    const refs: string[] = [];
    for (const url of spellings) {
      const res = await requestViaProxy(ports.proxy, url);
      expect(res.status, url).toBe(403);
      expect(res.headers['content-type'], url).toMatch(/^text\/html/);
      expect(res.body, url).toContain('This page is blocked');
      expect(res.body, url).toContain('<dt>Category</dt><dd>Gambling</dd>');
      const ref = /<dt>Reference<\/dt><dd><code>([^<]+)<\/code>/.exec(res.body)?.[1];
      expect(ref, url).toBeTruthy();
      refs.push(ref!);
    }
    expect(new Set(refs).size).toBe(spellings.length);
    // Nothing reached "the internet".
    expect(internet.seen.length).toBe(seenBefore);
    // The reference on the page is the one in the log.
    const row = await logRow('a.block_ref', refs[1]);
    expect(row).toMatchObject({ action: 'blocked', category: 'gambling', host: GAMBLING_HOST, status: 403 });
  });

  it('tunnels an HTTPS CONNECT to an allowed host through to the HTTPS origin', async () => {
    const handshakesBefore = internet.httpsHandshakes;
    const tunnel = await connectViaProxy(ports.proxy, `${ALLOWED_HOST}:443`);
    expect(tunnel.status).toBe(200);
    const response = await httpsGetOverTunnel(tunnel.socket, ALLOWED_HOST, internet.ca, '/secure');
    expect(response).toMatch(/^HTTP\/1\.1 200/);
    expect(response).toContain(`secure origin saw ${ALLOWED_HOST}/secure`);
    expect(internet.httpsHandshakes).toBe(handshakesBefore + 1);
    expect(internet.seen.at(-1)).toEqual({ method: 'CONNECT', target: `${ALLOWED_HOST}:443` });
  });

  it('refuses a CONNECT to a gambling host with 403', async () => {
    const seenBefore = internet.seen.length;
    const tunnel = await connectViaProxy(ports.proxy, `${GAMBLING_HOST}:443`);
    expect(tunnel.status).toBe(403);
    expect(internet.seen.length).toBe(seenBefore);
  });

  it('adds a user with `portcullis users add` while start is running; that user is identified by proxy login', async () => {
    const add = run(['users', 'add', 'jsmith', '--group', 'staff'], env, `${JSMITH_PASSWORD}\n`);
    const { code } = await exitWithin(add, 30_000);
    expect(code, add.output()).toBe(0);
    expect(add.output()).toContain('added user "jsmith"');

    // curl -x http://jsmith:a-long-password@127.0.0.1:PORT http://www.bbc.co.uk/...
    const res = await requestViaProxy(ports.proxy, `http://${ALLOWED_HOST}/signed-in`, {
      headers: { 'Proxy-Authorization': basicAuth('jsmith', JSMITH_PASSWORD) },
    });
    expect(res.status).toBe(200);
    const row = await logRow('a.path', '/signed-in');
    expect(row).toMatchObject({ username: 'jsmith', group_key: 'staff', action: 'allowed' });

    // A wrong password is not jsmith.
    const wrong = await requestViaProxy(ports.proxy, `http://${ALLOWED_HOST}/wrong-password`, {
      headers: { 'Proxy-Authorization': basicAuth('jsmith', 'not-the-password') },
    });
    expect(wrong.status).not.toBe(200);
  });

  const signInAsAdmin = (): Promise<AdminSession> => signIn(`http://127.0.0.1:${ports.admin}`, 'admin', 'cli-test-admin-password');

  it('serves the proxy from two worker processes, each accepting connections itself and reporting its counters on /metrics', async () => {
    const workers = childPids(portcullis!.process.pid!);
    expect(workers).toHaveLength(2);
    // SCHED_NONE: each worker holds the listening socket, rather than being handed connections by the primary.
    const listening = listeningSocketInodes(ports.proxy);
    expect(listening.length).toBeGreaterThan(0);
    expect(workers.map((pid) => holdsSocket(pid, listening))).toEqual([true, true]);
    const metrics = await (await (await signInAsAdmin()).request('GET', '/metrics')).text();
    const written = [...metrics.matchAll(/^portcullis_access_events_written_total\{worker="(\d)"\} (\d+)$/gm)];
    expect(written.map((m) => m[1]).sort()).toEqual(['0', '1']);
    const { rows } = await db!.query<{ n: string }>('SELECT count(*) AS n FROM access_log');
    // Every row so far was written by one worker or the other.
    expect(written.reduce((sum, m) => sum + Number(m[2]), 0)).toBe(Number(rows[0].n));
  });

  const askWhy = async (body: object): Promise<Response> => (await signInAsAdmin()).request('POST', '/api/why', body);

  /** The log lines (JSON) whose message is `msg`. */
  function logLines(msg: string): Array<{ worker?: number }> {
    return portcullis!
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{') && line.includes(msg))
      .map((line) => JSON.parse(line) as { msg: string; worker?: number })
      .filter((line) => line.msg === msg);
  }

  it("answers \"why is this blocked?\" from a worker's running policy; only the workers compile the lists", async () => {
    const res = await askWhy({ url: `http://${GAMBLING_HOST}/poker`, group: 'staff' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ host: GAMBLING_HOST, group: 'staff', action: 'block', category: { key: 'gambling' }, policy: 'running' });
    // The primary keeps no copy of the lists: each "lists compiled" line is a worker's.
    expect(logLines('category lists compiled').map((line) => line.worker).sort()).toEqual([0, 1]);
  });

  it('replaces a worker killed outright; meanwhile the other serves, answers "why", and /healthz stays ok', async () => {
    const primary = portcullis!.process.pid!;
    const [victim] = childPids(primary);
    process.kill(victim, 'SIGKILL');
    await waitUntil(() => logLines('proxy worker died; starting a replacement').length === 1, 10_000, 'the primary to see the worker die', 20);

    const res = await requestViaProxy(ports.proxy, `http://${ALLOWED_HOST}/while-one-worker-is-down`);
    expect(res.status).toBe(200);
    const why = await askWhy({ url: GAMBLING_HOST, group: 'staff' });
    expect(why.status).toBe(200);
    expect(await why.json()).toMatchObject({ action: 'block', policy: 'running' });
    const health = await fetch(`http://127.0.0.1:${ports.admin}/healthz`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { policy: { domains: number } }).policy.domains).toBeGreaterThan(100_000);

    // The replacement compiles the lists and joins: two workers again, the dead one gone.
    await waitUntil(() => logLines('proxy worker ready').length === 3, 60_000, 'the replacement worker to be ready', 100);
    const workers = childPids(primary);
    expect(workers).toHaveLength(2);
    expect(workers).not.toContain(victim);
  }, 70_000);

  it('on SIGTERM exits 0 within a few seconds and leaves no Postgres running, however often it is signalled', async () => {
    await db!.end();
    db = undefined;
    const child = portcullis!;
    const workers = childPids(child.process.pid!);
    const sentAt = Date.now();
    child.process.kill('SIGTERM');
    // As a service manager signalling every process of the service does: a repeat must not cut the shutdown short.
    await new Promise((r) => setTimeout(r, 100));
    child.process.kill('SIGTERM');
    const { code, signal } = await exitWithin(child, 15_000);
    const tookMs = Date.now() - sentAt;
    expect({ code, signal }, child.output()).toEqual({ code: 0, signal: null });
    expect(tookMs).toBeLessThan(10_000);
    expect(child.output()).toContain('"msg":"already shutting down"');
    expect(child.output()).toContain('"msg":"stopped"');
    expect(await canConnect(ports.pg)).toBe(false);
    expect(await canConnect(ports.proxy)).toBe(false);
    expect(await canConnect(ports.admin)).toBe(false);
    expect(existsSync(path.join(dataDir, 'var', 'postgres', 'postmaster.pid'))).toBe(false);
    expect(workers.filter(isAlive)).toEqual([]);
  });
});
