// TEST ONLY. The whole program in this process (startPortcullis, wired as
// `portcullis start` is) on a fresh database with a small list of its own,
// its traffic sent to a stand-in for the internet; and an admin API session
// signed in over HTTP, as a browser holds one.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startPortcullis, type RunningPortcullis } from '../../cli/start.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { importSmallLists, startInternetStandIn, type InternetStandIn } from './internet-stand-in.js';

export interface WholeProgram {
  db: TestDatabase;
  internet: InternetStandIn;
  running: RunningPortcullis;
  adminBase: string;
  stop(): Promise<void>;
}

export async function startWholeProgram(options: { adminPassword: string; lists: Record<string, string[]>; env?: Record<string, string> }): Promise<WholeProgram> {
  const db = await createTestDatabase();
  // A list of our own, so that startPortcullis does not import the bundled one.
  await importSmallLists(db.pool, options.lists);
  const internet = await startInternetStandIn();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-whole-'));
  await chmod(dataDir, 0o711);
  const running = await startPortcullis(
    loadConfig({
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: '0',
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: '0',
      ADMIN_PASSWORD: options.adminPassword,
      UPSTREAM_PROXY: internet.parentUrl,
      LOG_LEVEL: 'silent',
      ...options.env,
    }),
    createLogger('silent'),
  );
  return {
    db,
    internet,
    running,
    adminBase: `http://127.0.0.1:${running.adminAddress.port}`,
    async stop() {
      await running.stop();
      await internet.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface AdminSession {
  /** A request with the session cookie and CSRF token; `body` is sent as JSON. */
  request(method: string, url: string, body?: unknown): Promise<Response>;
}

export async function signIn(adminBase: string, username: string, password: string): Promise<AdminSession> {
  const login = await fetch(`${adminBase}/api/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (login.status !== 200) throw new Error(`signing in as ${username}: ${login.status} ${await login.text()}`);
  const cookie = login.headers.getSetCookie().find((c) => c.startsWith('portcullis_session='));
  if (!cookie) throw new Error('no session cookie from /api/login');
  const session = { cookie: cookie.split(';')[0], csrfToken: ((await login.json()) as { csrfToken: string }).csrfToken };
  return {
    request: (method, url, body) =>
      fetch(`${adminBase}${url}`, {
        method,
        headers: {
          cookie: session.cookie,
          'x-csrf-token': session.csrfToken,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
  };
}
