// An admin API over a fresh database with the default groups, and helpers to
// make accounts and sign in as them. With `throughCable`, the app reaches the
// database through a cable the test can cut (db.pool stays direct).
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildAdminApp } from '../../admin-api/app.js';
import type { LoginRateLimit } from '../../admin-api/auth/login-limit.js';
import { upsertCategoryMetadata } from '../../blocklists/categories.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { seedDefaultPolicy } from '../../core/policy/default-policy.js';
import { createPool } from '../../core/db.js';
import { addUser, type Role } from '../../core/users.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { postgresCable, type PostgresCable } from './postgres-cable.js';

export const PASSWORD = 'correct horse battery';

export interface SignedIn {
  cookie: string;
  csrfToken: string;
}

export interface AdminHarness {
  db: TestDatabase;
  app: FastifyInstance;
  /** Between the app and Postgres, when asked for. */
  cable?: PostgresCable;
  schoolId: number;
  createUser(username: string, roles: Role[], groupKey?: string): Promise<number>;
  signIn(username: string, password?: string): Promise<SignedIn>;
  /** app.inject as the signed-in user, with the CSRF header on changes. */
  as(who: SignedIn, request: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export async function startAdminHarness(
  options: { loginRateLimit?: LoginRateLimit; metrics?: () => Promise<string>; throughCable?: boolean; queryTimeoutMs?: number } = {},
): Promise<AdminHarness> {
  const db = await createTestDatabase();
  const cable = options.throughCable ? await postgresCable(db.url) : undefined;
  const appPool = cable ? createPool(cable.url) : db.pool;
  await upsertCategoryMetadata(db.pool);
  const school = await db.pool.query<{ id: number }>("INSERT INTO schools (name) VALUES ('Test Academy') RETURNING id");
  const schoolId = school.rows[0].id;
  await seedDefaultPolicy(db.pool, schoolId);
  const app = await buildAdminApp({
    config: loadConfig({}),
    pool: appPool,
    queryTimeoutMs: options.queryTimeoutMs,
    log: createLogger('silent'),
    policyStatus: () => ({ version: 1, loadedAt: new Date(0).toISOString(), domains: 0, urls: 0 }),
    metrics: options.metrics ?? (async () => 'portcullis_requests_total 0\n'),
    // Generous by default so that signing in many times in one file is not refused.
    loginRateLimit: options.loginRateLimit ?? { max: 1000, windowMs: 60_000 },
  });
  await app.ready();

  const harness: AdminHarness = {
    db,
    app,
    cable,
    schoolId,
    async createUser(username, roles, groupKey = 'staff') {
      const user = await addUser(db.pool, { schoolId, username, groupKey, roles, password: PASSWORD });
      return user.id;
    },
    async signIn(username, password = PASSWORD) {
      const res = await app.inject({ method: 'POST', url: '/api/login', payload: { username, password } });
      if (res.statusCode !== 200) throw new Error(`sign-in as ${username} failed: ${res.statusCode} ${res.body}`);
      const cookie = res.cookies.find((c) => c.name === 'portcullis_session');
      if (!cookie) throw new Error('no session cookie');
      return { cookie: `portcullis_session=${cookie.value}`, csrfToken: (res.json() as { csrfToken: string }).csrfToken };
    },
    as(who, request) {
      return app.inject({
        ...request,
        headers: { ...request.headers, cookie: who.cookie, 'x-csrf-token': who.csrfToken },
      });
    },
    async close() {
      await app.close();
      if (cable) {
        await cable.close();
        await appPool.end();
      }
      await db.drop();
    },
  };
  return harness;
}
