// Reports from staff over real sockets: a block page on a running proxy
// leads, through sign-in, to an accidental-access report tied to its
// access-log row (marked self-reported); an approved unblock request makes
// the host reachable through the proxy until its expiry; the DSL and IT
// admins work their queues; people see only their own; every action audited.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestViaProxy, startHttpOrigin, type TestOrigin } from '../support/proxy-harness.js';
import { untilPolicy } from '../support/policy-reload.js';
import { startSafeguardingStack, type SafeguardingStack } from '../support/safeguarding-stack.js';
import { PASSWORD } from '../support/admin-app.js';

let s: SafeguardingStack;
let origin: TestOrigin;

interface Session {
  cookie: string;
  csrfToken: string;
}

beforeAll(async () => {
  s = await startSafeguardingStack();
  origin = await startHttpOrigin();
  await s.h.createUser('teacher', ['staff']);
  await s.h.createUser('colleague', ['staff']);
  await s.h.createUser('lead', ['staff', 'dsl']);
  await s.h.createUser('tech', ['staff', 'it_admin']);
  await s.listHosts('gambling', ['casino.test', 'poker.test', 'cards.test']);
});

afterAll(async () => {
  await s?.close();
  await origin?.close();
});

async function signIn(username: string): Promise<Session> {
  const res = await fetch(`${s.adminBaseUrl}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  expect(res.status).toBe(200);
  const cookie = /portcullis_session=[^;]+/.exec(res.headers.get('set-cookie') ?? '')?.[0];
  if (!cookie) throw new Error('no session cookie');
  return { cookie, csrfToken: ((await res.json()) as { csrfToken: string }).csrfToken };
}

async function api(who: Session, method: string, path: string, body?: unknown) {
  const res = await fetch(`${s.adminBaseUrl}${path}`, {
    method,
    headers: { cookie: who.cookie, 'x-csrf-token': who.csrfToken, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** Browses to `host` through the proxy as `username`; returns the response. */
function browse(host: string, username: string, path = '/lesson') {
  return requestViaProxy(s.proxyPort, `http://${host}:${origin.port}${path}`, { headers: { 'Proxy-Authorization': s.proxyAuth(username) } });
}

/** The block page's link with this text, and the reference it carries. */
function linkOf(html: string, text: string): { href: string; ref: string } {
  const match = new RegExp(`<a href="([^"]+)">${text}</a>`).exec(html);
  if (!match) throw new Error(`no "${text}" link on the page`);
  const href = match[1].replaceAll('&amp;', '&');
  return { href, ref: new URL(href).searchParams.get('ref') ?? '' };
}

/** Waits (bounded) until the writer has stored the block with this reference. */
async function loggedBlock(ref: string): Promise<{ id: string; self_reported_at: Date | null }> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await s.h.db.pool.query('SELECT id::text, self_reported_at FROM access_log WHERE block_ref = $1', [ref]);
    if (rows[0]) return rows[0];
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`block ${ref} never reached the access log`);
}

async function auditActions(): Promise<string[]> {
  const { rows } = await s.h.db.pool.query<{ action: string; actor_username: string }>('SELECT action, actor_username FROM audit_log ORDER BY id');
  return rows.map((r) => `${r.actor_username}:${r.action}`);
}

describe('accidental access', () => {
  it('goes from the block page, through sign-in, to a report tied to the access-log row', async () => {
    const blocked = await browse('casino.test', 'teacher', '/roulette?x=1');
    expect(blocked.status).toBe(403);
    expect(origin.requests).toHaveLength(0);
    const { href, ref } = linkOf(blocked.body, 'I reached this by accident');
    expect(href).toBe(`${s.adminBaseUrl}/report/accident?ref=${ref}`);
    const row = await loggedBlock(ref);
    expect(row.self_reported_at).toBeNull();

    // Arriving from the block page (no cookie): a sign-in form, not an error.
    const anonymous = await fetch(href);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await anonymous.text()).toContain('data-api="/api/login"');

    const teacher = await signIn('teacher');
    const page = await fetch(href, { headers: { cookie: teacher.cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`http://casino.test:${origin.port}/roulette?x=1`);
    expect(html).toContain('gambling');
    expect(html).toContain(`<code>${ref}</code>`);
    // The form carries this session's CSRF token and posts to the API, as the page's script does.
    expect(html).toContain(`data-csrf="${teacher.csrfToken}"`);

    const withoutCsrf = await fetch(`${s.adminBaseUrl}/api/reports/accidental-access`, {
      method: 'POST',
      headers: { cookie: teacher.cookie, 'content-type': 'application/json' },
      body: JSON.stringify({ ref }),
    });
    expect(withoutCsrf.status).toBe(403);

    const filed = await api(teacher, 'POST', '/api/reports/accidental-access', { ref, note: 'mistyped the address' });
    expect(filed.status).toBe(201);
    expect(filed.json).toMatchObject({
      kind: 'accidental_access',
      reporter: 'teacher',
      blockRef: ref,
      url: `http://casino.test:${origin.port}/roulette?x=1`,
      category: 'gambling',
      status: 'open',
      selfReported: true,
    });
    expect(filed.json.accessLogIds).toContain(row.id);
    expect((await loggedBlock(ref)).self_reported_at).not.toBeNull();

    // Once only.
    expect((await api(teacher, 'POST', '/api/reports/accidental-access', { ref })).status).toBe(409);

    // The DSL's queue, the outcome, and the reporter seeing it.
    const lead = await signIn('lead');
    const queue = await api(lead, 'GET', '/api/incident-reports?status=open');
    expect(queue.json.items.map((r: { id: number }) => r.id)).toContain(filed.json.id);
    const outcome = await api(lead, 'POST', `/api/incident-reports/${filed.json.id}/outcome`, { outcome: 'genuine_mistake', note: 'typo, talked it through' });
    expect(outcome.status).toBe(200);
    expect(outcome.json).toMatchObject({ status: 'genuine_mistake', decidedBy: 'lead' });
    expect((await api(lead, 'POST', `/api/incident-reports/${filed.json.id}/outcome`, { outcome: 'needs_follow_up', note: 'again' })).status).toBe(409);
    const mine = await api(teacher, 'GET', '/api/my/reports');
    expect(mine.json.items[0]).toMatchObject({ id: filed.json.id, status: 'genuine_mistake', outcomeNote: 'typo, talked it through' });

    const actions = await auditActions();
    expect(actions).toContain('teacher:incident_report.create');
    expect(actions).toContain('lead:incident_report.outcome');
  });

  it("refuses someone else's block, unknown references and bad input with clear 4xx", async () => {
    const blocked = await browse('poker.test', 'teacher');
    const { ref, href } = linkOf(blocked.body, 'I reached this by accident');
    await loggedBlock(ref);
    const colleague = await signIn('colleague');
    const theirs = await api(colleague, 'POST', '/api/reports/accidental-access', { ref });
    expect(theirs.status).toBe(404);
    const page = await fetch(href, { headers: { cookie: colleague.cookie } });
    expect(page.status).toBe(404);
    expect(await page.text()).not.toContain('poker.test');
    expect((await api(colleague, 'POST', '/api/reports/accidental-access', { ref: 'ZZZZZZZZZZ' })).status).toBe(404);
    const bad = await api(colleague, 'POST', '/api/reports/accidental-access', { ref: 'nope', extra: 1 });
    expect(bad.status).toBe(400);
    expect(bad.json['invalid-params'].map((p: { name: string }) => p.name).sort()).toEqual(['body/extra', 'body/ref']);
    expect((await fetch(`${s.adminBaseUrl}/report/accident?ref=%3Cscript%3E`)).status).toBe(400);
    // Staff without the dsl role cannot see the queue.
    expect((await api(colleague, 'GET', '/api/incident-reports')).status).toBe(403);
  });

  it('takes "I received inappropriate content" reports from the API', async () => {
    const colleague = await signIn('colleague');
    const filed = await api(colleague, 'POST', '/api/reports/inappropriate-content', { channel: 'email', description: 'a threatening email from an unknown sender' });
    expect(filed.status).toBe(201);
    expect(filed.json).toMatchObject({ kind: 'inappropriate_content', channel: 'email', status: 'open', accessLogIds: [] });
    expect((await api(colleague, 'POST', '/api/reports/inappropriate-content', { channel: 'fax', description: 'x' })).status).toBe(400);
    expect((await api(colleague, 'POST', '/api/reports/inappropriate-content', { channel: 'link', description: '   ' })).status).toBe(400);
  });
});

describe('unblock requests', () => {
  it('approved: the host is reachable through the running proxy until the expiry, then blocked again', async () => {
    const blocked = await browse('cards.test', 'teacher');
    expect(blocked.status).toBe(403);
    const { href, ref } = linkOf(blocked.body, 'I need this for teaching');
    await loggedBlock(ref);
    const teacher = await signIn('teacher');
    const page = await fetch(href, { headers: { cookie: teacher.cookie } });
    expect(await page.text()).toContain('data-api="/api/unblock-requests"');

    const asked = await api(teacher, 'POST', '/api/unblock-requests', { ref, reason: 'probability lesson on card games' });
    expect(asked.status).toBe(201);
    expect(asked.json).toMatchObject({ status: 'pending', targetKind: 'domain', target: 'cards.test', requester: 'teacher' });
    expect((await api(teacher, 'POST', '/api/unblock-requests', { ref, reason: 'again' })).status).toBe(409);
    // Only IT admins decide.
    expect((await api(teacher, 'POST', `/api/unblock-requests/${asked.json.id}/approve`, { expiresAt: new Date(Date.now() + 60_000).toISOString() })).status).toBe(403);

    const tech = await signIn('tech');
    const queue = await api(tech, 'GET', '/api/unblock-requests?status=pending');
    expect(queue.json.items.map((r: { id: number }) => r.id)).toContain(asked.json.id);
    expect((await api(tech, 'POST', `/api/unblock-requests/${asked.json.id}/approve`, {})).status).toBe(400);
    expect((await api(tech, 'POST', `/api/unblock-requests/${asked.json.id}/approve`, { expiresAt: '2001-01-01T00:00:00Z' })).status).toBe(400);

    const expiresAt = new Date(Date.now() + 2_500);
    const approved = await api(tech, 'POST', `/api/unblock-requests/${asked.json.id}/approve`, { expiresAt: expiresAt.toISOString() });
    expect(approved.status).toBe(200);
    expect(approved.json).toMatchObject({ status: 'approved', decidedBy: 'tech', overrideExpiresAt: expiresAt.toISOString() });
    const { rows } = await s.h.db.pool.query('SELECT action, value, reason, decided_by, expires_at FROM overrides WHERE id = $1', [approved.json.overrideId]);
    expect(rows[0]).toMatchObject({ action: 'allow', value: 'cards.test', decided_by: 'tech' });
    expect(rows[0].reason).toContain('probability lesson on card games');
    expect(rows[0].expires_at.toISOString()).toBe(expiresAt.toISOString());
    const overrideId = approved.json.overrideId as number;
    await untilPolicy(
      s.store,
      (snapshot) => [...snapshot.groups.values()].some((g) => snapshot.overrides.find(g.id, 'cards.test', undefined, Date.now())?.id === overrideId),
      `override #${overrideId} for cards.test`,
    );

    const allowed = await browse('cards.test', 'teacher');
    expect(allowed.status).toBe(200);
    expect(allowed.body).toContain('You sent');
    // The requester sees the decision.
    const mine = await api(teacher, 'GET', '/api/my/unblock-requests');
    expect(mine.json.items[0]).toMatchObject({ id: asked.json.id, status: 'approved', decidedBy: 'tech' });
    expect((await api(tech, 'POST', `/api/unblock-requests/${asked.json.id}/refuse`, { reason: 'changed my mind' })).status).toBe(409);

    await new Promise((r) => setTimeout(r, expiresAt.getTime() - Date.now() + 100));
    expect((await browse('cards.test', 'teacher')).status).toBe(403);

    const actions = await auditActions();
    expect(actions).toContain('teacher:unblock_request.create');
    expect(actions).toContain('tech:override.create');
    expect(actions).toContain('tech:unblock_request.approve');
  });

  it('refused: the requester sees the reason', async () => {
    const blocked = await browse('poker.test', 'colleague');
    const { ref } = linkOf(blocked.body, 'I need this for teaching');
    await loggedBlock(ref);
    const colleague = await signIn('colleague');
    const asked = await api(colleague, 'POST', '/api/unblock-requests', { ref, reason: 'research', scope: 'url' });
    expect(asked.json).toMatchObject({ targetKind: 'url', target: 'poker.test/lesson' });
    const tech = await signIn('tech');
    expect((await api(tech, 'POST', `/api/unblock-requests/${asked.json.id}/refuse`, {})).status).toBe(400);
    const refused = await api(tech, 'POST', `/api/unblock-requests/${asked.json.id}/refuse`, { reason: 'not suitable for school' });
    expect(refused.json).toMatchObject({ status: 'refused', decisionNote: 'not suitable for school', overrideId: null });
    const mine = await api(colleague, 'GET', '/api/my/unblock-requests');
    expect(mine.json.items[0]).toMatchObject({ status: 'refused', decisionNote: 'not suitable for school' });
    expect(await auditActions()).toContain('tech:unblock_request.refuse');
    expect((await browse('poker.test', 'colleague')).status).toBe(403);
  });
});
