// Safeguarding search terms over real sockets: a plain-HTTP search through a
// running proxy raises one search_term alert, linked to its access-log row
// and delivered to a local webhook receiver without the text that was
// typed; the DSL's term list is managed over the admin API (roles, input
// checks, audit) and a change reaches the running proxy within a second.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalTerm, SEARCH_TERM_THEMES, termProblem } from '../../safeguarding/search-terms.js';
import type { SignedIn } from '../support/admin-app.js';
import { waitFor } from '../support/internet-stand-in.js';
import { requestViaProxy, startHttpOrigin, type TestOrigin } from '../support/proxy-harness.js';
import { startSafeguardingStack, type SafeguardingStack } from '../support/safeguarding-stack.js';

interface Hook {
  alert: { id: number; kind: string; summary: string; accessLogIds: string[]; link: string };
}

let s: SafeguardingStack;
let origin: TestOrigin;
let receiver: http.Server;
const hooks: Array<{ raw: string; body: Hook }> = [];
let lead: SignedIn;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString();
      hooks.push({ raw, body: JSON.parse(raw) as Hook });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { port } = receiver.address() as AddressInfo;
  s = await startSafeguardingStack({ webhookUrl: new URL(`http://127.0.0.1:${port}/hook`) });
  origin = await startHttpOrigin();
  for (const pupil of ['pupil', 'pupil2', 'pupil3']) await s.h.createUser(pupil, ['staff'], 'pupils');
  await s.h.createUser('lead', ['staff', 'dsl']);
  await s.h.createUser('head', ['staff', 'headteacher']);
  await s.h.createUser('gov', ['staff', 'governor']);
  await s.h.createUser('tech', ['staff', 'it_admin']);
  lead = await s.h.signIn('lead');
});

afterAll(async () => {
  await s?.close();
  await origin?.close();
  await new Promise((resolve) => receiver?.close(resolve));
});

const search = (who: string, pathAndQuery: string) =>
  requestViaProxy(s.proxyPort, `http://search.test:${origin.port}${pathAndQuery}`, { headers: { 'Proxy-Authorization': s.proxyAuth(who) } });


interface AlertRow {
  id: number;
  username: string;
  host: string;
  summary: string;
  ids: string[];
  webhook_state: string;
}

async function searchAlerts(username?: string): Promise<AlertRow[]> {
  const { rows } = await s.h.db.pool.query<AlertRow>(
    `SELECT id, username, host, summary, access_log_ids::text[] AS ids, webhook_state FROM alerts
      WHERE kind = 'search_term' AND ($1::text IS NULL OR username = $1) ORDER BY id`,
    [username ?? null],
  );
  return rows;
}

const addTerm = (payload: unknown, who: SignedIn = lead) => s.h.as(who, { method: 'POST', url: '/api/search-terms', payload: payload as object });

describe('the default list', () => {
  it('a new school starts with a short list in every theme, each term stored as it is matched', async () => {
    const { rows } = await s.h.db.pool.query<{ term: string; theme: string; enabled: boolean; added_by_username: string }>(
      'SELECT term, theme, enabled, added_by_username FROM search_terms WHERE school_id = $1',
      [s.h.schoolId],
    );
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.length).toBeLessThan(40);
    expect(new Set(rows.map((r) => r.theme))).toEqual(new Set(SEARCH_TERM_THEMES));
    for (const row of rows) {
      expect(canonicalTerm(row.term), row.term).toBe(row.term);
      expect(termProblem(row.term), row.term).toBeUndefined();
      expect(row).toMatchObject({ enabled: true, added_by_username: 'portcullis' });
    }
    // Words that lessons search for are not on it.
    expect(rows.map((r) => r.term)).not.toEqual(expect.arrayContaining(['suicide']));
    expect(rows.map((r) => r.term).filter((t) => ['suicide', 'drugs', 'terrorism', 'knife', 'bullying', 'kill'].includes(t))).toEqual([]);
  });
});

describe('search alerts through the running proxy', () => {
  it('raises exactly one alert for repeated searches, linked to the first row, delivered without the typed text', async () => {
    expect((await search('pupil', '/search?q=How+to+KILL+myself+tonight+quietly')).status).toBe(200);
    expect((await search('pupil', '/search?q=how%20to%20kill%20myself%20tonight%20quietly&page=2')).status).toBe(200);
    const [alert] = await waitFor('a delivered search_term alert', async () => {
      const rows = await searchAlerts('pupil');
      return rows.length === 1 && rows[0].webhook_state === 'delivered' ? rows : undefined;
    });
    // The alert is raised as the event is recorded; its row reaches access_log with the writer's next batch.
    const logged = await waitFor('both searches in the access log', async () => {
      const { rows } = await s.h.db.pool.query<{ id: string; path: string }>(
        "SELECT id::text, path FROM access_log WHERE host = 'search.test' AND username = 'pupil' ORDER BY time",
      );
      return rows.length >= 2 ? rows : undefined;
    });
    expect(logged).toHaveLength(2);
    expect(logged[0].path).toBe('/search?q=How+to+KILL+myself+tonight+quietly');
    expect(alert.ids).toEqual([logged[0].id]);
    expect(alert.host).toBe('search.test');
    expect(alert.summary).toBe('pupil searched search.test for a safeguarding term: self-harm or suicide ("how to kill myself")');

    const delivered = hooks.filter((h) => h.body.alert.id === alert.id);
    expect(delivered).toHaveLength(1);
    expect(delivered[0].body.alert).toMatchObject({ kind: 'search_term', accessLogIds: [logged[0].id], link: `${s.adminBaseUrl}/api/alerts/${alert.id}` });
    expect(delivered[0].raw).not.toMatch(/tonight|quietly/i);

    // Once per trigger: the same person and term again raise nothing more.
    expect((await search('pupil', '/results?search_query=ways+to+kill+myself')).status).toBe(200);
    await waitFor('a second alert (another term)', async () => ((await searchAlerts('pupil')).length === 2 ? true : undefined));
    expect((await search('pupil', '/?s=how-to-kill-myself')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    expect(await searchAlerts('pupil')).toHaveLength(2);

    const listed = await s.h.as(lead, { method: 'GET', url: '/api/alerts' });
    expect(listed.statusCode, listed.body).toBe(200);
    expect((listed.json().items as Array<{ kind: string }>).map((a) => a.kind)).toEqual(['search_term', 'search_term']);
  });

  it('does not alert on ordinary searches, other parameters, or words inside words', async () => {
    for (const path of [
      '/search?q=suicide+in+romeo+and+juliet',
      '/search?q=study+skills+to+kill+time',
      '/watch?v=how+to+kill+myself',
      '/search?q=buy+weedkiller',
      '/search?q=how+to+make+a+bombe+glacee',
      '/how+to+kill+myself',
    ]) {
      expect((await search('pupil3', path)).status).toBe(200);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(await searchAlerts('pupil3')).toEqual([]);
  });
});

describe('managing the term list', () => {
  it('a term the DSL adds alerts on the running proxy within a second; disabling stops it, enabling restores it', async () => {
    const added = await addTerm({ term: 'Blue-Whale  Challenge', theme: 'self_harm_suicide' });
    expect(added.statusCode, added.body).toBe(201);
    const term = added.json() as { id: number; term: string; enabled: boolean; addedBy: string };
    expect(term).toMatchObject({ term: 'blue whale challenge', enabled: true, addedBy: 'lead' });

    const started = Date.now();
    const [alert] = await waitFor('the new term to alert', async () => {
      await search('pupil2', '/search?q=blue+whale+challenge+rules');
      const rows = await searchAlerts('pupil2');
      return rows.length > 0 ? rows : undefined;
    });
    const tookMs = Date.now() - started;
    expect(tookMs).toBeLessThan(1_000);
    expect(alert.summary).toContain('self-harm or suicide ("blue whale challenge")');

    // Disable it and add another term; once the proxy's list has the second, it has the disabling too.
    const disabled = await s.h.as(lead, { method: 'POST', url: `/api/search-terms/${term.id}/disable` });
    expect(disabled.json()).toMatchObject({ id: term.id, enabled: false });
    const second = (await addTerm({ term: 'momo challenge', theme: 'self_harm_suicide' })).json() as { id: number };
    const inService = (text: string) => s.searchTerms.current.match(text).length > 0;
    await waitFor('the second term in service', async () => (inService('momo challenge') ? true : undefined), 1_000);
    expect(inService('blue whale challenge')).toBe(false);
    expect((await search('pupil3', '/search?q=blue+whale+challenge+momo+challenge')).status).toBe(200);
    const [later] = await waitFor('the second term to alert for pupil3', async () => {
      const rows = await searchAlerts('pupil3');
      return rows.length > 0 ? rows : undefined;
    });
    expect(later.summary).toBe('pupil3 searched search.test for a safeguarding term: self-harm or suicide ("momo challenge")');

    // Enabled again, it alerts for someone it has not alerted for.
    expect((await s.h.as(lead, { method: 'POST', url: `/api/search-terms/${term.id}/enable` })).json()).toMatchObject({ enabled: true });
    await waitFor('the re-enabled term in service', async () => (inService('blue whale challenge') ? true : undefined), 1_000);
    expect((await search('pupil3', '/search?q=blue+whale+challenge')).status).toBe(200);
    await waitFor('the re-enabled term to alert for pupil3', async () => ((await searchAlerts('pupil3')).length === 2 ? true : undefined));
    expect((await searchAlerts('pupil3'))[1].summary).toContain('("blue whale challenge")');

    // Enabling what is enabled changes nothing and audits nothing; deleting removes it.
    expect((await s.h.as(lead, { method: 'POST', url: `/api/search-terms/${term.id}/enable` })).statusCode).toBe(200);
    expect((await s.h.as(lead, { method: 'DELETE', url: `/api/search-terms/${second.id}` })).statusCode).toBe(204);
    expect((await s.h.as(lead, { method: 'DELETE', url: `/api/search-terms/${second.id}` })).statusCode).toBe(404);
    const listed = await s.h.as(lead, { method: 'GET', url: '/api/search-terms?theme=self_harm_suicide&limit=200' });
    const terms = (listed.json().items as Array<{ term: string }>).map((t) => t.term);
    expect(terms).toContain('blue whale challenge');
    expect(terms).not.toContain('momo challenge');
  });

  it('lists in pages and filters by enabled', async () => {
    const first = await s.h.as(lead, { method: 'GET', url: '/api/search-terms?limit=5' });
    expect(first.statusCode).toBe(200);
    const page = first.json() as { items: Array<{ id: number }>; nextCursor: string };
    expect(page.items).toHaveLength(5);
    const next = await s.h.as(lead, { method: 'GET', url: `/api/search-terms?limit=5&cursor=${page.nextCursor}` });
    expect((next.json().items as Array<{ id: number }>)[0].id).toBeGreaterThan(page.items[4].id);
    const off = await s.h.as(lead, { method: 'GET', url: '/api/search-terms?enabled=false' });
    expect(off.json().items).toEqual([]);
  });

  it('lets only the DSL change the list; the headteacher and governors read it; no one else', async () => {
    const head = await s.h.signIn('head');
    const gov = await s.h.signIn('gov');
    const tech = await s.h.signIn('tech');
    const pupil = await s.h.signIn('pupil');
    for (const reader of [head, gov]) {
      expect((await s.h.as(reader, { method: 'GET', url: '/api/search-terms' })).statusCode).toBe(200);
      expect((await addTerm({ term: 'not allowed here', theme: 'drugs' }, reader)).statusCode).toBe(403);
      expect((await s.h.as(reader, { method: 'POST', url: '/api/search-terms/1/disable' })).statusCode).toBe(403);
      expect((await s.h.as(reader, { method: 'DELETE', url: '/api/search-terms/1' })).statusCode).toBe(403);
    }
    for (const outsider of [tech, pupil]) {
      expect((await s.h.as(outsider, { method: 'GET', url: '/api/search-terms' })).statusCode).toBe(403);
      expect((await addTerm({ term: 'not allowed here', theme: 'drugs' }, outsider)).statusCode).toBe(403);
    }
    expect((await s.h.app.inject({ method: 'GET', url: '/api/search-terms' })).statusCode).toBe(401);
    const { rows } = await s.h.db.pool.query("SELECT 1 FROM search_terms WHERE term = 'not allowed here'");
    expect(rows).toEqual([]);
  });

  it('answers bad input with a 4xx problem naming the field', async () => {
    const cases: Array<[unknown, number, string[]]> = [
      [{ theme: 'drugs' }, 400, ['body/term']],
      [{ term: 'buy ketamine' }, 400, ['body/theme']],
      [{ term: 'buy ketamine', theme: 'sadness' }, 400, ['body/theme']],
      [{ term: 'buy ketamine', theme: 'drugs', severity: 'high' }, 400, ['body/severity']],
      [{ term: 'buy\u0000ketamine', theme: 'drugs' }, 400, ['body/term']],
      [{ term: '   ', theme: 'drugs' }, 400, ['body/term']],
      [{ term: '!?', theme: 'drugs' }, 400, ['body/term']],
      [{ term: 'a b', theme: 'drugs' }, 400, ['body/term']],
      [{ term: 'x'.repeat(150), theme: 'drugs' }, 400, ['body/term']],
      [{ term: 'one two three four five six seven eight nine', theme: 'drugs' }, 400, ['body/term']],
      [{ term: 42, theme: 'drugs', enabled: 'yes' }, 400, ['body/enabled', 'body/term']],
    ];
    for (const [payload, status, fields] of cases) {
      const res = await addTerm(payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(status);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      const names = ((res.json()['invalid-params'] ?? []) as Array<{ name: string }>).map((p) => p.name).sort();
      expect(names, JSON.stringify(payload)).toEqual(fields);
    }
    // The same term however it is typed is a conflict, naming the existing one.
    const duplicate = await addTerm({ term: 'HOW TO KILL MYSELF!', theme: 'self_harm_suicide' });
    expect(duplicate.statusCode).toBe(409);
    expect(duplicate.json().detail).toMatch(/"how to kill myself" is already search term \d+/);
    for (const id of ['abc', '0', '-1', '1.5', '99999999999']) {
      expect((await s.h.as(lead, { method: 'POST', url: `/api/search-terms/${id}/disable` })).statusCode, id).toBe(400);
    }
    expect((await s.h.as(lead, { method: 'POST', url: '/api/search-terms/424242/disable' })).statusCode).toBe(404);
    expect((await s.h.as(lead, { method: 'GET', url: '/api/search-terms?theme=nope' })).statusCode).toBe(400);
    expect((await s.h.as(lead, { method: 'GET', url: '/api/search-terms?cursor=!!!' })).statusCode).toBe(400);
    const form = await s.h.as(lead, { method: 'POST', url: '/api/search-terms', payload: 'term=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.statusCode).toBe(415);
    for (const hostile of ['null', '[]', '"x"', '{"__proto__": {"enabled": false}, "term": "abc", "theme": "drugs"}', '['.repeat(5000) + ']'.repeat(5000)]) {
      const res = await s.h.as(lead, { method: 'POST', url: '/api/search-terms', payload: hostile, headers: { 'content-type': 'application/json' } });
      expect(res.statusCode, hostile.slice(0, 30)).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, hostile.slice(0, 30)).toBeLessThan(500);
    }
  });

  it('documents the routes with who may call them', async () => {
    const doc = (await s.h.app.inject({ method: 'GET', url: '/docs/json' })).json() as {
      paths: Record<string, Record<string, { tags: string[]; description: string }>>;
    };
    expect(doc.paths['/api/search-terms'].get).toMatchObject({ tags: ['safeguarding'], description: expect.stringContaining('Roles: dsl, headteacher, governor.') });
    expect(doc.paths['/api/search-terms'].post.description).toContain('Roles: dsl.');
    for (const path of ['/api/search-terms/{id}/disable', '/api/search-terms/{id}/enable']) expect(doc.paths[path].post.tags).toEqual(['safeguarding']);
    expect(doc.paths['/api/search-terms/{id}'].delete.description).toContain('Roles: dsl.');
  });

  it('audits every change, and only changes', async () => {
    const { rows } = await s.h.db.pool.query<{ action: string; actor: string; target: string; detail: { term: string } }>(
      "SELECT action, actor_username AS actor, target, detail FROM audit_log WHERE action LIKE 'search_term.%' ORDER BY id",
    );
    expect(rows.map((r) => [r.action, r.detail.term])).toEqual([
      ['search_term.add', 'blue whale challenge'],
      ['search_term.disable', 'blue whale challenge'],
      ['search_term.add', 'momo challenge'],
      ['search_term.enable', 'blue whale challenge'],
      ['search_term.delete', 'momo challenge'],
    ]);
    expect(rows.every((r) => r.actor === 'lead' && /^search_term:\d+$/.test(r.target))).toBe(true);
    const raised = await s.h.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_log WHERE action = 'alert.raise' AND detail->>'kind' = 'search_term'",
    );
    expect(raised.rows[0].n).toBe((await searchAlerts()).length);
  });
});
