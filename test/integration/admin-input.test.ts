// Malformed and hostile input gets a clear 4xx problem+json, never a 500;
// and the OpenAPI document describes the routes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../../admin-api/app.js';
import { startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';

let h: AdminHarness;
let admin: SignedIn;
let bearer: { authorization: string };

const SQL_FRAGMENT = "x'; DROP TABLE users; --";

beforeAll(async () => {
  h = await startAdminHarness();
  await h.createUser('admin', ['staff', 'it_admin']);
  admin = await h.signIn('admin');
  const token = (await h.as(admin, { method: 'POST', url: '/api/tokens', payload: { name: 'fuzz' } })).json().token as string;
  bearer = { authorization: `Bearer ${token}` };
});

afterAll(() => h.close());

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json() as { type: string; title: string; status: number; detail: string };
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  return body as typeof body & { 'invalid-params'?: Array<{ name: string; reason: string }> };
}

const paramNames = (body: { 'invalid-params'?: Array<{ name: string }> }) => (body['invalid-params'] ?? []).map((p) => p.name).sort();

describe('request bodies', () => {
  const post = (payload: unknown, headers: Record<string, string> = {}) =>
    h.as(admin, { method: 'POST', url: '/api/users', payload: payload as string, headers });

  it('names each field of the wrong type', async () => {
    const body = expectProblem(await post({ username: 123, groupKey: ['staff'], roles: 'it_admin', password: true }), 400);
    expect(paramNames(body)).toEqual(['body/groupKey', 'body/password', 'body/roles', 'body/username']);
    expect(body.type).toMatch(/invalid-params$/);
  });

  it('names missing and unknown fields', async () => {
    expect(paramNames(expectProblem(await post({}), 400))).toEqual(['body/groupKey', 'body/username']);
    const extra = expectProblem(await post({ username: 'ok', groupKey: 'staff', isAdmin: true }), 400);
    expect(extra['invalid-params']).toEqual([{ name: 'body/isAdmin', reason: 'is not a known field' }]);
  });

  it('answers 413 for a body over the limit', async () => {
    const huge = JSON.stringify({ username: 'big', groupKey: 'staff', displayName: 'x'.repeat(BODY_LIMIT_BYTES) });
    expectProblem(await post(huge, { 'content-type': 'application/json' }), 413);
  });

  it('answers 400 for malformed or empty JSON and prototype poisoning', async () => {
    const json = { 'content-type': 'application/json' };
    expect(expectProblem(await post('{"username": "a",', json), 400).type).toMatch(/malformed-json$/);
    expectProblem(await post('', json), 400);
    expectProblem(await post('{"__proto__": {"roles": ["it_admin"]}, "username": "p", "groupKey": "staff"}', json), 400);
  });

  it('answers 415 for a body that is not JSON', async () => {
    expectProblem(await post('username=a&groupKey=staff', { 'content-type': 'application/x-www-form-urlencoded' }), 415);
  });

  it('refuses control characters in free text', async () => {
    const body = expectProblem(await post({ username: 'nul', groupKey: 'staff', displayName: 'a\u0000b' }), 400);
    expect(paramNames(body)).toEqual(['body/displayName']);
  });
});

describe('SQL fragments are only ever data', () => {
  it('refuses one as a username, does not sign anyone in with it, and finds nothing when searching for it', async () => {
    const created = expectProblem(await h.as(admin, { method: 'POST', url: '/api/users', payload: { username: SQL_FRAGMENT, groupKey: 'staff' } }), 400);
    expect(created.detail).toMatch(/not a valid username/);
    const login = await h.app.inject({ method: 'POST', url: '/api/login', payload: { username: SQL_FRAGMENT, password: "' OR '1'='1" } });
    expectProblem(login, 401);
    const search = await h.as(admin, { method: 'GET', url: '/api/users', query: { search: SQL_FRAGMENT } });
    expect(search.statusCode).toBe(200);
    expect(search.json().items).toEqual([]);
    expect((await h.db.pool.query('SELECT count(*)::int AS n FROM users')).rows[0].n).toBeGreaterThan(0);
  });

  it('stores one verbatim where free text is allowed', async () => {
    const res = await h.as(admin, { method: 'POST', url: '/api/groups', payload: { key: 'sqlish', name: SQL_FRAGMENT } });
    expect(res.statusCode).toBe(201);
    expect(res.json().name).toBe(SQL_FRAGMENT);
  });
});

describe('query strings and path parameters', () => {
  it('names the bad query parameter', async () => {
    const queries: Array<Record<string, string>> = [{ limit: 'abc' }, { limit: '0' }, { limit: '100000' }, { limit: '1.5' }, { cursor: '!!!' }, { search: '' }];
    for (const query of queries) {
      const body = expectProblem(await h.as(admin, { method: 'GET', url: '/api/users', query }), 400);
      expect(paramNames(body)).toEqual([`query/${Object.keys(query)[0]}`]);
    }
  });

  it('refuses a cursor this list never gave out', async () => {
    for (const cursor of [Buffer.from('{"a":1}').toString('base64url'), Buffer.from('[1]').toString('base64url'), 'AAAA']) {
      const body = expectProblem(await h.as(admin, { method: 'GET', url: '/api/users', query: { cursor } }), 400);
      expect(paramNames(body)).toEqual(['query/cursor']);
    }
    // A user-list cursor (a username) is not an audit cursor (an id).
    expectProblem(await h.as(admin, { method: 'GET', url: '/api/audit', query: { cursor: Buffer.from('["admin"]').toString('base64url') } }), 400);
  });

  it('names a bad id', async () => {
    for (const id of ['abc', '-1', '0', '1.5', 'true', '0x10', '1e3', '99999999999', encodeURIComponent(SQL_FRAGMENT)]) {
      const body = expectProblem(await h.as(admin, { method: 'GET', url: `/api/users/${id}` }), 400);
      expect(paramNames(body), id).toEqual(['params/id']);
    }
    expectProblem(await h.as(admin, { method: 'GET', url: '/api/users/424242' }), 404);
  });

  it('answers 404 problem+json for unknown routes, signed in or not', async () => {
    expectProblem(await h.app.inject({ method: 'GET', url: '/api/nothing-here' }), 404);
    expectProblem(await h.as(admin, { method: 'DELETE', url: '/api/users' }), 404);
  });
});

describe('never a 500', () => {
  const hostileBodies = [
    undefined,
    'null',
    '[]',
    '"a string"',
    '-1e999',
    '{"username": {"$ne": null}, "groupKey": "staff"}',
    '{"constructor": {"prototype": {"isAdmin": true}}}',
    `{"name": "${'\\ud800'}", "key": "lone-surrogate"}`,
    `{"name": ${JSON.stringify(SQL_FRAGMENT)}, "password": ${JSON.stringify(SQL_FRAGMENT)}}`,
    '['.repeat(5000) + ']'.repeat(5000),
  ];
  const hostileIds = ['0', 'abc', '99999', encodeURIComponent(SQL_FRAGMENT), '%00', '1e3'];

  it('holds for every documented route, method, hostile body and id', async () => {
    const doc = (await h.app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, unknown>> };
    let requests = 0;
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const method of Object.keys(operations).map((m) => m.toUpperCase())) {
        if (path === '/api/logout' || method === 'HEAD') continue;
        const urls = path.includes('{id}') ? hostileIds.map((id) => path.replace('{id}', id)) : [path];
        for (const url of urls) {
          for (const payload of method === 'GET' ? [undefined] : hostileBodies) {
            const res = await h.app.inject({
              method: method as 'GET',
              url,
              headers: { ...bearer, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
              payload,
            });
            requests += 1;
            expect(res.statusCode, `${method} ${url} ${payload?.slice(0, 40)}`).toBeLessThan(500);
          }
        }
      }
    }
    expect(requests).toBeGreaterThan(100);
  });
});

describe('OpenAPI', () => {
  it('serves a 3.1 document at /docs/json listing every route, who may call it and how errors look', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as {
      openapi: string;
      info: { title: string; version: string };
      components: { securitySchemes: Record<string, unknown> };
      paths: Record<string, Record<string, { summary?: string; description?: string; security?: unknown[]; responses: Record<string, unknown>; parameters?: Array<{ name: string; in: string }>; requestBody?: unknown }>>;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['bearer', 'session']);
    const expected: Array<[string, string]> = [
      ['/api/login', 'post'],
      ['/api/logout', 'post'],
      ['/api/me', 'get'],
      ['/api/csrf', 'get'],
      ['/api/tokens', 'get'],
      ['/api/tokens', 'post'],
      ['/api/tokens/{id}', 'delete'],
      ['/api/users', 'get'],
      ['/api/users', 'post'],
      ['/api/users/{id}', 'get'],
      ['/api/users/{id}', 'patch'],
      ['/api/users/{id}/disable', 'post'],
      ['/api/users/{id}/enable', 'post'],
      ['/api/users/{id}/password', 'put'],
      ['/api/groups', 'get'],
      ['/api/groups', 'post'],
      ['/api/groups/{id}', 'patch'],
      ['/api/audit', 'get'],
      ['/api/audit/verify', 'get'],
      ['/healthz', 'get'],
      ['/metrics', 'get'],
      ['/proxy.pac', 'get'],
    ];
    for (const [path, method] of expected) {
      const op = doc.paths[path]?.[method];
      expect(op, `${method} ${path}`).toBeDefined();
      expect(op.summary, `${method} ${path}`).toBeTruthy();
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['4XX']));
      if (path.includes('{id}')) expect(op.parameters).toContainEqual(expect.objectContaining({ name: 'id', in: 'path' }));
    }
    expect(doc.paths['/api/users'].get.description).toContain('Roles: it_admin.');
    expect(doc.paths['/api/users'].get.security).toEqual([{ session: [] }, { bearer: [] }]);
    expect(doc.paths['/api/login'].post.security).toEqual([]);
    expect(doc.paths['/api/users'].post.requestBody).toBeDefined();
    expect(Object.keys(doc.paths).some((p) => p.startsWith('/docs'))).toBe(false);
  });

  it('serves the browsable docs at /docs to anyone', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
  });
});
