// Signing in and out, sessions, CSRF, bearer tokens, the sign-in rate limit
// and deny-by-default access, over real HTTP where the socket matters.
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import cookie from '@fastify/cookie';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installAuthentication } from '../../admin-api/auth/authenticate.js';
import { DEFAULT_LOGIN_RATE_LIMIT } from '../../admin-api/auth/login-limit.js';
import { installAccessControl } from '../../admin-api/auth/roles.js';
import { installProblemHandlers } from '../../admin-api/problem.js';
import { PASSWORD, startAdminHarness, type AdminHarness } from '../support/admin-app.js';

let h: AdminHarness;
let base: string;

beforeAll(async () => {
  h = await startAdminHarness();
  await h.createUser('admin', ['staff', 'it_admin']);
  await h.createUser('teacher', ['staff']);
  await h.createUser('leaver', ['staff']);
  await h.db.pool.query("UPDATE users SET disabled = true WHERE username = 'leaver'");
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
});

afterAll(() => h.close());

function login(username: string, password: string) {
  return fetch(`${base}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
}

function sessionCookieOf(res: Response): string {
  const header = res.headers.getSetCookie().find((c) => c.startsWith('portcullis_session='));
  if (!header) throw new Error('no session cookie set');
  return header.split(';')[0];
}

describe('signing in', () => {
  it('signs in with the right password and sets a locked-down session cookie', async () => {
    const res = await login('Admin', PASSWORD);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { user: { username: string; roles: string[] }; csrfToken: string };
    expect(body.user).toMatchObject({ username: 'admin', roles: ['staff', 'it_admin'] });
    expect(body.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const setCookie = res.headers.getSetCookie().find((c) => c.startsWith('portcullis_session='))!;
    const attributes = setCookie.split(';').map((a) => a.trim().toLowerCase());
    expect(attributes).toContain('httponly');
    expect(attributes).toContain('samesite=strict');
    expect(attributes).toContain('path=/');
    // Plain HTTP here, so the cookie must not be marked Secure (the browser would drop it).
    expect(attributes).not.toContain('secure');

    const me = await fetch(`${base}/api/me`, { headers: { cookie: sessionCookieOf(res) } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ username: 'admin', via: 'session' });
  });

  it('stores only a digest of the session token', async () => {
    const res = await login('teacher', PASSWORD);
    const token = sessionCookieOf(res).split('=')[1];
    const digest = createHash('sha256').update(token).digest();
    const { rows } = await h.db.pool.query<{ id: Buffer }>('SELECT id FROM sessions');
    expect(rows.some((row) => row.id.equals(digest))).toBe(true);
    expect(rows.some((row) => row.id.toString('utf8').includes(token))).toBe(false);
  });

  it('gives the same answer for a wrong password, an unknown user and a disabled user', async () => {
    const answers = await Promise.all([login('admin', 'wrong password'), login('nobody', PASSWORD), login('leaver', PASSWORD)]);
    const bodies = [];
    for (const res of answers) {
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      bodies.push(await res.json());
    }
    expect(bodies[1]).toEqual(bodies[0]);
    expect(bodies[2]).toEqual(bodies[0]);
    expect(answers.flatMap((r) => r.headers.getSetCookie())).toEqual([]);
  });

  it('takes about as long for an unknown user as for a wrong password', async () => {
    const time = async (username: string) => {
      const started = performance.now();
      await login(username, 'wrong password');
      return performance.now() - started;
    };
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      known.push(await time('admin'));
      unknown.push(await time(`ghost${i}`));
    }
    // Both pay for one argon2 verification; without the dummy hash the unknown user answers many times faster.
    expect(median(unknown)).toBeGreaterThan(median(known) * 0.4);
  });

  it('ends the session on logout', async () => {
    const res = await login('teacher', PASSWORD);
    const cookie = sessionCookieOf(res);
    const { csrfToken } = (await res.json()) as { csrfToken: string };
    const out = await fetch(`${base}/api/logout`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrfToken } });
    expect(out.status).toBe(204);
    expect(out.headers.getSetCookie().join()).toMatch(/portcullis_session=;/);
    const me = await fetch(`${base}/api/me`, { headers: { cookie } });
    expect(me.status).toBe(401);
    expect(me.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('stops the sessions of a user the moment they are disabled', async () => {
    await h.createUser('temp', ['staff']);
    const session = await h.signIn('temp');
    expect((await h.as(session, { method: 'GET', url: '/api/me' })).statusCode).toBe(200);
    await h.db.pool.query("UPDATE users SET disabled = true WHERE username = 'temp'");
    expect((await h.as(session, { method: 'GET', url: '/api/me' })).statusCode).toBe(401);
  });

  it('refuses an unknown, expired or tampered session cookie', async () => {
    const session = await h.signIn('teacher');
    const tampered = { ...session, cookie: `${session.cookie.slice(0, -2)}xx` };
    expect((await h.as(tampered, { method: 'GET', url: '/api/me' })).statusCode).toBe(401);
    await h.db.pool.query(
      "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = (SELECT id FROM users WHERE username = 'teacher')",
    );
    expect((await h.as(session, { method: 'GET', url: '/api/me' })).statusCode).toBe(401);
  });
});

describe('CSRF', () => {
  it('refuses a cookie-authenticated change without the right X-CSRF-Token', async () => {
    const admin = await h.signIn('admin');
    const body = { key: 'csrf-test', name: 'CSRF test' };
    const without = await h.app.inject({ method: 'POST', url: '/api/groups', headers: { cookie: admin.cookie }, payload: body });
    expect(without.statusCode).toBe(403);
    expect(without.json()).toMatchObject({ status: 403, type: expect.stringMatching(/csrf/) });
    const wrong = await h.as({ ...admin, csrfToken: 'x'.repeat(43) }, { method: 'POST', url: '/api/groups', payload: body });
    expect(wrong.statusCode).toBe(403);
    const otherSession = await h.signIn('admin');
    const borrowed = await h.as({ ...admin, csrfToken: otherSession.csrfToken }, { method: 'POST', url: '/api/groups', payload: body });
    expect(borrowed.statusCode).toBe(403);
    expect((await h.db.pool.query("SELECT 1 FROM groups WHERE key = 'csrf-test'")).rowCount).toBe(0);

    const right = await h.as(admin, { method: 'POST', url: '/api/groups', payload: body });
    expect(right.statusCode).toBe(201);
  });

  it('hands out the same token again from GET /api/csrf', async () => {
    const admin = await h.signIn('admin');
    const res = await h.app.inject({ method: 'GET', url: '/api/csrf', headers: { cookie: admin.cookie } });
    expect(res.json()).toEqual({ csrfToken: admin.csrfToken });
  });
});

describe('bearer API tokens', () => {
  it('makes a token shown once, accepts it without CSRF, and refuses it once revoked', async () => {
    const admin = await h.signIn('admin');
    const made = await h.as(admin, { method: 'POST', url: '/api/tokens', payload: { name: 'prometheus', expiresInDays: 30 } });
    expect(made.statusCode).toBe(201);
    const { id, token } = made.json() as { id: number; token: string };
    expect(token).toMatch(/^pct_[A-Za-z0-9_-]{43}$/);

    const listed = await h.as(admin, { method: 'GET', url: '/api/tokens' });
    expect(listed.body).not.toContain(token);
    expect(listed.json().items).toContainEqual(expect.objectContaining({ id, name: 'prometheus', revokedAt: null }));
    const stored = await h.db.pool.query<{ token_hash: Buffer }>('SELECT token_hash FROM api_tokens WHERE id = $1', [id]);
    expect(stored.rows[0].token_hash.toString('utf8')).not.toContain(token);

    const bearer = { authorization: `Bearer ${token}` };
    expect((await h.app.inject({ method: 'GET', url: '/api/me', headers: bearer })).json()).toMatchObject({ username: 'admin', via: 'token' });
    // A change with a bearer token needs no CSRF header.
    const change = await h.app.inject({ method: 'POST', url: '/api/groups', headers: bearer, payload: { key: 'by-token', name: 'By token' } });
    expect(change.statusCode).toBe(201);
    // ... but a token cannot mint another token.
    const mint = await h.app.inject({ method: 'POST', url: '/api/tokens', headers: bearer, payload: { name: 'again' } });
    expect(mint.statusCode).toBe(403);
    const metrics = await h.app.inject({ method: 'GET', url: '/metrics', headers: bearer });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('portcullis_requests_total');

    expect((await h.as(admin, { method: 'DELETE', url: `/api/tokens/${id}` })).statusCode).toBe(204);
    const after = await h.app.inject({ method: 'GET', url: '/api/me', headers: bearer });
    expect(after.statusCode).toBe(401);
    expect(after.headers['www-authenticate']).toBe('Bearer');
    expect((await h.as(admin, { method: 'DELETE', url: `/api/tokens/${id}` })).statusCode).toBe(404);
  });

  it("refuses malformed and expired tokens and another user's token id", async () => {
    for (const authorization of ['Bearer', 'Bearer pct_nope', 'Basic YWRtaW46eA==', `Bearer ${'a'.repeat(500)}`]) {
      const res = await h.app.inject({ method: 'GET', url: '/api/me', headers: { authorization } });
      expect(res.statusCode, authorization).toBe(401);
    }
    const teacher = await h.signIn('teacher');
    const made = (await h.as(teacher, { method: 'POST', url: '/api/tokens', payload: { name: 'script' } })).json() as { id: number; token: string };
    const admin = await h.signIn('admin');
    expect((await h.as(admin, { method: 'DELETE', url: `/api/tokens/${made.id}` })).statusCode).toBe(404);
    await h.db.pool.query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [made.id]);
    const res = await h.app.inject({ method: 'GET', url: '/api/me', headers: { authorization: `Bearer ${made.token}` } });
    expect(res.statusCode).toBe(401);
  });
});

describe('public and protected system routes', () => {
  it('serves /healthz and /proxy.pac to anyone, /metrics to IT admins only', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const pac = await fetch(`${base}/proxy.pac`);
    expect(pac.status).toBe(200);
    expect(await pac.text()).toContain('FindProxyForURL');
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    const teacher = await h.signIn('teacher');
    expect((await h.as(teacher, { method: 'GET', url: '/metrics' })).statusCode).toBe(403);
    const admin = await h.signIn('admin');
    expect((await h.as(admin, { method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });
});

describe('sign-in rate limit', () => {
  let limited: AdminHarness;
  beforeAll(async () => {
    limited = await startAdminHarness({ loginRateLimit: DEFAULT_LOGIN_RATE_LIMIT });
    await limited.createUser('target', ['staff']);
  });
  afterAll(() => limited.close());

  const attempt = (username: string, remoteAddress: string) =>
    limited.app.inject({ method: 'POST', url: '/api/login', remoteAddress, payload: { username, password: 'guess' } });

  it('answers 429 after 10 attempts from one address, whatever the usernames', async () => {
    for (let i = 0; i < 10; i++) expect((await attempt(`user${i}`, '198.51.100.1')).statusCode).toBe(401);
    const res = await attempt('user10', '198.51.100.1');
    expect(res.statusCode).toBe(429);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.json()).toMatchObject({ status: 429, title: 'Too many requests' });
    // Another address is still heard.
    expect((await attempt('user10', '198.51.100.2')).statusCode).toBe(401);
  });

  it('answers 429 after 10 attempts at one username, whatever the addresses', async () => {
    for (let i = 0; i < 10; i++) expect((await attempt('target', `203.0.113.${i + 1}`)).statusCode).toBe(401);
    const res = await attempt('TARGET', '203.0.113.99');
    expect(res.statusCode).toBe(429);
    // Even the right password is refused until the window ends.
    const right = await limited.app.inject({
      method: 'POST',
      url: '/api/login',
      remoteAddress: '203.0.113.100',
      payload: { username: 'target', password: PASSWORD },
    });
    expect(right.statusCode).toBe(429);
  });
});

describe('deny by default', () => {
  it('refuses a route that declares no access, and tells 401 from 403', async () => {
    const app = Fastify();
    installProblemHandlers(app);
    await app.register(cookie);
    installAuthentication(app, h.db.pool);
    installAccessControl(app);
    app.get('/undeclared', async () => 'should never be seen');
    app.get('/open', { config: { access: 'public' } }, async () => 'open');
    app.get('/admins', { config: { access: ['it_admin'] } }, async () => 'admins');
    await app.ready();
    const teacher = await h.signIn('teacher');
    const admin = await h.signIn('admin');
    try {
      expect((await app.inject({ url: '/open' })).body).toBe('open');
      for (const who of [undefined, teacher, admin]) {
        const res = await app.inject({ url: '/undeclared', headers: who ? { cookie: who.cookie } : {} });
        expect(res.statusCode).toBe(403);
        expect(res.body).not.toContain('should never be seen');
      }
      expect((await app.inject({ url: '/admins' })).statusCode).toBe(401);
      expect((await app.inject({ url: '/admins', headers: { cookie: teacher.cookie } })).statusCode).toBe(403);
      expect((await app.inject({ url: '/admins', headers: { cookie: admin.cookie } })).body).toBe('admins');
    } finally {
      await app.close();
    }
  });
});
