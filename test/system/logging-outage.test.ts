// Issue 4, done when: "a test drives thousands of requests through the proxy
// while Postgres is stopped and restarted in the middle: every request
// appears in access_log exactly once, with the right user".
//
// The whole program runs in this process (startPortcullis) on an embedded
// Postgres of this file's own, so that the test can stop and restart it.
// Several signed-in users browse a local origin (through a stand-in parent
// proxy); each request has a path of its own, so every one can be found.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPortcullis, type RunningPortcullis } from '../../cli/start.js';
import { loadConfig } from '../../core/config.js';
import { createPool, type Pool } from '../../core/db.js';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../core/embedded-postgres.js';
import { createLogger } from '../../core/logger.js';
import { migrate } from '../../core/migrate.js';
import { addUser } from '../../core/users.js';
import { freePort } from '../support/global-postgres.js';
import { basicAuth, importSmallLists, startInternetStandIn, waitUntil, type InternetStandIn } from '../support/internet-stand-in.js';
import { requestViaProxy } from '../support/proxy-harness.js';

const USERS = ['amy.p', 'ben.q', 'cara.r', 'dev.s'];
const PASSWORD = 'pupil-password-1';
const PER_USER_PER_PHASE = 250; // 4 users × 250 × 3 phases = 3,000 requests
const IN_FLIGHT_PER_USER = 8;

describe('access logging through a Postgres outage', () => {
  let dir: string;
  let pgPort: number;
  let postgres: EmbeddedPostgresHandle | undefined;
  let internet: InternetStandIn;
  let running: RunningPortcullis | undefined;
  let agents: http.Agent[] = [];

  const startPostgres = async () => {
    postgres = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port: pgPort });
    return postgres;
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-logging-outage-'));
    await chmod(dir, 0o711); // as root, Postgres runs as `postgres` and must enter it
    pgPort = await freePort();
    const pgServer = await startPostgres();
    const setup = createPool(pgServer.connectionString);
    try {
      await migrate(setup);
      // A list of our own, so that startPortcullis does not import the bundled one.
      await importSmallLists(setup, { gambling: ['888casino.com'] });
    } finally {
      await setup.end();
    }
    internet = await startInternetStandIn();
    const config = loadConfig({
      DATABASE_URL: pgServer.connectionString,
      DATA_DIR: path.join(dir, 'data'),
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: '0',
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: '0',
      ADMIN_PASSWORD: 'outage-test-admin-pw',
      UPSTREAM_PROXY: internet.parentUrl,
      LOG_LEVEL: 'silent',
    });
    running = await startPortcullis(config, createLogger('silent'));
    const { rows } = await running.pool.query<{ id: number }>('SELECT id FROM schools');
    for (const username of USERS) {
      await addUser(running.pool, { schoolId: rows[0].id, username, groupKey: 'pupils', password: PASSWORD });
    }
  }, 90_000);

  afterAll(async () => {
    for (const agent of agents) agent.destroy();
    await running?.stop();
    await internet?.close();
    await postgres?.stop().catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('records every one of 3,000 requests exactly once, with its user, although Postgres stopped in the middle', async () => {
    const proxy = running!;
    const port = proxy.proxyAddress.port;
    agents = USERS.map(() => new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT_PER_USER }));
    const sent = new Map<string, string[]>(USERS.map((u) => [u, []]));
    const statuses = new Map<number, number>();

    async function browse(user: number, path: string): Promise<void> {
      const username = USERS[user];
      const res = await requestViaProxy(port, `http://www.bbc.co.uk${path}`, {
        agent: agents[user],
        headers: { 'Proxy-Authorization': basicAuth(username, PASSWORD) },
      });
      sent.get(username)!.push(path);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }

    /** Each user makes `count` requests, IN_FLIGHT_PER_USER at a time. */
    async function phase(name: string, count: number): Promise<void> {
      await Promise.all(
        USERS.map(async (username, user) => {
          let next = 0;
          await Promise.all(
            Array.from({ length: IN_FLIGHT_PER_USER }, async () => {
              while (next < count) {
                const n = next++;
                await browse(user, `/${name}/${username}/${n}`);
              }
            }),
          );
        }),
      );
    }

    // Each user's credentials are verified (argon2, against Postgres) once and
    // cached, as they would be long before an outage in a real school day.
    await phase('warm', 1);
    expect(statuses.get(200)).toBe(USERS.length);

    await phase('before', PER_USER_PER_PHASE);
    // Postgres stops while requests are arriving.
    await Promise.all([postgres!.stop(), phase('during-stop', PER_USER_PER_PHASE)]);
    await waitUntil(
      async () => {
        const status = await proxy.accessLog.status();
        return !status.postgresUp && status.spoolBytes > 0;
      },
      15_000,
      'the writer to spool events',
    );
    expect((await proxy.accessLog.status()).counters.spooled).toBeGreaterThan(0);
    // And comes back while requests are arriving.
    await Promise.all([startPostgres(), phase('during-restart', PER_USER_PER_PHASE)]);

    const total = USERS.length * (1 + 3 * PER_USER_PER_PHASE);
    expect(statuses).toEqual(new Map([[200, total]]));
    expect(internet.httpRequests.length).toBe(total);

    // The writer retries with back-off (up to seconds), then replays the spool.
    await waitUntil(
      async () => {
        const status = await proxy.accessLog.status();
        return status.postgresUp && status.spoolBytes === 0 && status.queueDepth === 0 && status.counters.written >= total;
      },
      30_000,
      'the spool to be replayed',
      50,
    );
    const { counters } = await proxy.accessLog.status();
    expect(counters.queued).toBe(total);
    expect(counters.spooled).toBeGreaterThan(0);
    expect(counters.replayed).toBeGreaterThan(0);
    expect(counters.replayed).toBe(counters.spooled);
    expect(counters).toMatchObject({ written: total, dropped: 0, rejected: 0, badSpoolLines: 0 });

    // Read back on a fresh connection to the restarted Postgres.
    const check: Pool = createPool(postgres!.connectionString);
    try {
      const { rows } = await check.query<{ username: string | null; path: string; id: string; group_key: string; action: string }>(
        `SELECT a.username, a.path, a.id::text AS id, g.key AS group_key, a.action
           FROM access_log a JOIN groups g ON g.id = a.group_id`,
      );
      expect(rows.length).toBe(total);
      expect(new Set(rows.map((r) => r.id)).size).toBe(total); // no event twice
      for (const username of USERS) {
        const mine = rows.filter((r) => r.username === username);
        // Exactly the requests this user made, each once.
        expect(mine.map((r) => r.path).sort()).toEqual([...sent.get(username)!].sort());
        expect(new Set(mine.map((r) => r.group_key))).toEqual(new Set(['pupils']));
      }
      expect(rows.filter((r) => !USERS.includes(r.username ?? ''))).toEqual([]);
      expect(new Set(rows.map((r) => r.action))).toEqual(new Set(['allowed']));
    } finally {
      await check.end();
    }
  }, 90_000);
});
