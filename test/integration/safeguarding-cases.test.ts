// Harmful-content cases over HTTP on a real database: a case runs through
// every state on both branches (illegal → referred; not illegal → reported to
// the platform → escalated to Report Harmful Content after 48 hours →
// resolved or closed) with its events, actors and deadlines; time passes by
// moving the case's timestamps back in the database. Screenshots are checked
// by their signature and size; exports are self-contained and escaped; only
// the DSL changes cases and the headteacher may read; everything is audited.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdminHarness, type AdminHarness, type SignedIn } from '../support/admin-app.js';

let h: AdminHarness;
let dsl: SignedIn;
let head: SignedIn;
let staff: SignedIn;
let tech: SignedIn;

// A real 1×1 PNG, and the start of a JPEG (its signature is all that is checked).
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
const JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0rest of a jpeg')]);

beforeAll(async () => {
  h = await startAdminHarness();
  await h.createUser('lead', ['staff', 'dsl']);
  await h.createUser('deputy', ['staff', 'dsl']);
  await h.createUser('head', ['staff', 'headteacher']);
  await h.createUser('teacher', ['staff']);
  await h.createUser('tech', ['staff', 'it_admin']);
  dsl = await h.signIn('lead');
  head = await h.signIn('head');
  staff = await h.signIn('teacher');
  tech = await h.signIn('tech');
});

afterAll(async () => {
  await h?.close();
});

function newCase(overrides: Record<string, unknown> = {}) {
  return {
    harmType: 'bullying_harassment',
    platform: 'Snapgram',
    urls: ['https://snapgram.example/p/123'],
    affected: { role: 'pupil', ageBand: '13_to_17' },
    description: 'Posts naming a pupil in year 9',
    ...overrides,
  };
}

async function open(who: SignedIn = dsl, overrides: Record<string, unknown> = {}): Promise<number> {
  const res = await h.as(who, { method: 'POST', url: '/api/cases', payload: newCase(overrides) });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().case.id as number;
}

function post(who: SignedIn, url: string, payload: unknown = {}) {
  return h.as(who, { method: 'POST', url, payload: payload as Record<string, unknown> });
}

async function events(id: number): Promise<Array<{ kind: string; state: string; actor: string; note: string | null; data: Record<string, any> }>> {
  const res = await h.as(dsl, { method: 'GET', url: `/api/cases/${id}` });
  expect(res.statusCode).toBe(200);
  return res.json().events;
}

/** Moves everything the case's clock depends on `hours` into the past. */
async function ageCase(id: number, hours: number): Promise<void> {
  await h.db.pool.query(
    `UPDATE cases SET opened_at = opened_at - $2 * interval '1 hour', deadline_at = deadline_at - $2 * interval '1 hour',
                      platform_reported_at = platform_reported_at - $2 * interval '1 hour'
      WHERE id = $1`,
    [id, hours],
  );
}

async function overdueIds(): Promise<number[]> {
  const res = await h.as(dsl, { method: 'GET', url: '/api/cases?overdue=true&limit=200' });
  expect(res.statusCode).toBe(200);
  return (res.json().items as Array<{ id: number }>).map((c) => c.id);
}

function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; json(): any }, status: number) {
  expect(res.statusCode).toBe(status);
  expect(String(res.headers['content-type'])).toContain('application/problem+json');
  expect(res.json().status).toBe(status);
}

describe('the illegal branch', () => {
  it('runs new → triage → referred, records the reference, and stops there', async () => {
    const id = await open(dsl, { harmType: 'pornographic_content', affected: { role: 'pupil', ageBand: 'under_13' } });
    let res = await post(dsl, `/api/cases/${id}/triage`, { note: 'looking now' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().state).toBe('triage');

    const deputy = await h.signIn('deputy');
    res = await post(deputy, `/api/cases/${id}/refer`, { agency: 'iwf', reference: 'IWF-2024-0042', note: 'indecent image of a child' });
    expect(res.statusCode, res.body).toBe(200);
    const referred = res.json();
    expect(referred.state).toBe('referred');
    expect(referred.illegal).toBe(true);
    expect(referred.referral).toMatchObject({ agency: 'iwf', reference: 'IWF-2024-0042' });
    expect(referred.deadline).toBeNull();
    expect(referred.endedAt).not.toBeNull();

    const evs = await events(id);
    expect(evs.map((e) => `${e.actor}:${e.kind}:${e.state}`)).toEqual(['lead:open:new', 'lead:triage:triage', 'deputy:refer:referred']);
    expect(evs[2].data).toMatchObject({ illegal: true, agency: 'iwf', reference: 'IWF-2024-0042' });
    expect(evs[2].note).toBe('indecent image of a child');

    // Stopped: no platform report, escalation, resolution or more evidence; each 409 names the state.
    for (const [path, body] of [
      ['platform-report', {}],
      ['escalate', { reference: 'x' }],
      ['resolve', { note: 'x' }],
      ['close', { note: 'x' }],
      ['triage', {}],
      ['evidence', { kind: 'description', text: 'more' }],
    ] as const) {
      const refused = await post(dsl, `/api/cases/${id}/${path}`, body);
      expectProblem(refused, 409);
      expect(refused.json().detail).toContain('referred');
    }
    expect(await events(id)).toHaveLength(3);
  });
});

describe('the platform branch', () => {
  it('runs new → triage → reported_to_platform → (48 h) escalated_to_rhc → resolved, with deadlines', async () => {
    const id = await open();
    const opened = (await h.as(dsl, { method: 'GET', url: `/api/cases/${id}` })).json().case;
    expect(opened.state).toBe('new');
    expect(opened.deadline.kind).toBe('triage');
    expect(Date.parse(opened.deadline.at) - Date.parse(opened.openedAt)).toBe(24 * 3_600_000);

    // Out of order: a referral or a platform report needs triage first; the 409 names the current state.
    let res = await post(dsl, `/api/cases/${id}/refer`, { agency: 'police', reference: 'P1' });
    expectProblem(res, 409);
    expect(res.json().detail).toContain('state new');

    expect((await post(dsl, `/api/cases/${id}/triage`)).statusCode).toBe(200);
    res = await post(dsl, `/api/cases/${id}/triage`);
    expectProblem(res, 409);
    expect(res.json().detail).toContain('state triage');

    res = await post(dsl, `/api/cases/${id}/platform-report`, { reference: 'SG-998877', note: 'reported via in-app form' });
    expect(res.statusCode, res.body).toBe(200);
    const reported = res.json();
    expect(reported.state).toBe('reported_to_platform');
    expect(reported.illegal).toBe(false);
    expect(reported.platformReport.reference).toBe('SG-998877');
    expect(reported.deadline.kind).toBe('platform_response');
    expect(Date.parse(reported.deadline.at) - Date.parse(reported.platformReport.reportedAt)).toBe(48 * 3_600_000);
    expect(reported.escalationPossibleAt).toBe(reported.deadline.at);

    // Too soon: refused, saying when it becomes possible.
    res = await post(dsl, `/api/cases/${id}/escalate`, { reference: 'RHC-1' });
    expectProblem(res, 409);
    expect(res.json().detail).toContain(reported.escalationPossibleAt);
    expect(await overdueIds()).not.toContain(id);

    // 47 hours on: still too soon.
    await ageCase(id, 47);
    expectProblem(await post(dsl, `/api/cases/${id}/escalate`, { reference: 'RHC-1' }), 409);
    expect(await overdueIds()).not.toContain(id);

    // Two more hours: the platform is past its deadline; the case is overdue and may be escalated.
    await ageCase(id, 2);
    const overdue = (await h.as(head, { method: 'GET', url: '/api/cases?overdue=true' })).json().items.find((c: { id: number }) => c.id === id);
    expect(overdue.deadline).toMatchObject({ kind: 'platform_response', overdue: true });
    expect(Date.parse(overdue.deadline.at)).toBeLessThan(Date.now());

    res = await post(dsl, `/api/cases/${id}/escalate`, { reference: 'RHC-2024-7', note: 'no response from the platform' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().state).toBe('escalated_to_rhc');
    expect(res.json().rhcEscalation.reference).toBe('RHC-2024-7');
    expect(res.json().deadline).toBeNull();
    expect(await overdueIds()).not.toContain(id);

    res = await post(dsl, `/api/cases/${id}/resolve`, { note: 'RHC had the posts removed' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ state: 'resolved', outcome: 'RHC had the posts removed' });

    const evs = await events(id);
    expect(evs.map((e) => `${e.kind}:${e.state}`)).toEqual([
      'open:new',
      'triage:triage',
      'platform_report:reported_to_platform',
      'escalate:escalated_to_rhc',
      'resolve:resolved',
    ]);
    expect(new Set(evs.map((e) => e.actor))).toEqual(new Set(['lead']));
    expect(evs[2].data).toMatchObject({ reference: 'SG-998877', illegal: false });
    expect(evs[4].data).toMatchObject({ resolvedBy: 'report_harmful_content' });
    // The events' times are in order.
    const { rows } = await h.db.pool.query<{ at: Date }>('SELECT at FROM case_events WHERE case_id = $1 ORDER BY id', [id]);
    expect(rows.map((r) => r.at.getTime())).toEqual([...rows.map((r) => r.at.getTime())].sort((a, b) => a - b));

    expectProblem(await post(dsl, `/api/cases/${id}/close`, { note: 'x' }), 409);
  });

  it('closes an escalated case, resolves when the platform acts, and counts 48 h from the date the platform was told', async () => {
    // Reported two days ago (before it reached the DSL): escalation possible at once.
    const a = await open();
    await post(dsl, `/api/cases/${a}/triage`);
    const twoDaysAgo = new Date(Date.now() - 50 * 3_600_000).toISOString();
    let res = await post(dsl, `/api/cases/${a}/platform-report`, { reportedAt: twoDaysAgo });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().deadline.overdue).toBe(true);
    expect((await post(dsl, `/api/cases/${a}/escalate`, { reference: 'RHC-9' })).statusCode).toBe(200);
    res = await post(dsl, `/api/cases/${a}/close`, { note: 'outside what RHC can act on' });
    expect(res.statusCode).toBe(200);
    expect(res.json().state).toBe('closed');
    expectProblem(await post(dsl, `/api/cases/${a}/resolve`, { note: 'x' }), 409);

    // A report dated in the future is bad input, not a state error.
    const b = await open();
    await post(dsl, `/api/cases/${b}/triage`);
    res = await post(dsl, `/api/cases/${b}/platform-report`, { reportedAt: new Date(Date.now() + 86_400_000).toISOString() });
    expectProblem(res, 400);
    expect(res.json()['invalid-params'][0].name).toBe('body/reportedAt');

    // The platform acted in time.
    res = await post(dsl, `/api/cases/${b}/platform-report`, { reference: 'T-1' });
    expect(res.statusCode).toBe(200);
    res = await post(dsl, `/api/cases/${b}/resolve`, { note: 'platform removed the account' });
    expect(res.statusCode).toBe(200);
    expect((await events(b)).map((e) => e.kind)).toEqual(['open', 'triage', 'platform_report', 'resolve']);
    expect((await events(b))[3].data).toMatchObject({ resolvedBy: 'platform' });
  });
});

describe('overdue cases', () => {
  it('lists cases whose triage is more than 24 h late, with the deadline that passed, and no others', async () => {
    const late = await open();
    const fresh = await open();
    const lateInTriage = await open();
    await post(dsl, `/api/cases/${lateInTriage}/triage`);
    await ageCase(late, 25);
    await ageCase(lateInTriage, 25);
    await ageCase(fresh, 23);

    const ids = await overdueIds();
    expect(ids).toContain(late);
    expect(ids).toContain(lateInTriage);
    expect(ids).not.toContain(fresh);
    const item = (await h.as(dsl, { method: 'GET', url: '/api/cases?overdue=true' })).json().items.find((c: { id: number }) => c.id === late);
    expect(item.deadline).toMatchObject({ kind: 'triage', overdue: true });

    const notOverdue = (await h.as(dsl, { method: 'GET', url: '/api/cases?overdue=false&limit=200' })).json().items.map((c: { id: number }) => c.id);
    expect(notOverdue).toContain(fresh);
    expect(notOverdue).not.toContain(late);

    // Triage decided: no longer waiting on the DSL.
    await post(dsl, `/api/cases/${lateInTriage}/refer`, { agency: 'ceop', reference: 'CEOP-1' });
    expect(await overdueIds()).not.toContain(lateInTriage);
  });

  it('pages with a cursor and refuses a made-up one', async () => {
    const first = await h.as(dsl, { method: 'GET', url: '/api/cases?limit=2' });
    expect(first.statusCode).toBe(200);
    const page1 = first.json();
    expect(page1.items).toHaveLength(2);
    expect(page1.nextCursor).not.toBeNull();
    const page2 = (await h.as(dsl, { method: 'GET', url: `/api/cases?limit=2&cursor=${page1.nextCursor}` })).json();
    expect(page2.items[0].id).toBeLessThan(page1.items[1].id);
    expectProblem(await h.as(dsl, { method: 'GET', url: '/api/cases?cursor=bm9wZQ' }), 400);
    expectProblem(await h.as(dsl, { method: 'GET', url: '/api/cases?overdue=maybe' }), 400);
    expectProblem(await h.as(dsl, { method: 'GET', url: '/api/cases?state=lost' }), 400);
  });
});

describe('evidence', () => {
  it('keeps a PNG and a JPEG with their SHA-256 and serves them back only as attachments of their own type', async () => {
    const id = await open(dsl, { evidence: [{ kind: 'url', text: 'https://snapgram.example/p/124' }, { kind: 'description', text: 'two more posts' }] });
    let res = await h.as(dsl, { method: 'POST', url: `/api/cases/${id}/screenshots`, headers: { 'content-type': 'image/png' }, payload: PNG });
    expect(res.statusCode, res.body).toBe(201);
    const png = res.json();
    expect(png).toMatchObject({ kind: 'screenshot', mediaType: 'image/png', size: PNG.length, sha256: createHash('sha256').update(PNG).digest('hex') });
    res = await h.as(dsl, { method: 'POST', url: `/api/cases/${id}/screenshots`, headers: { 'content-type': 'image/jpeg' }, payload: JPEG });
    expect(res.statusCode, res.body).toBe(201);
    const jpeg = res.json();

    res = await h.as(head, { method: 'GET', url: `/api/cases/${id}/evidence/${png.id}/content` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="case-\d+-evidence-\d+\.png"$/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.rawPayload.equals(PNG)).toBe(true);
    res = await h.as(dsl, { method: 'GET', url: `/api/cases/${id}/evidence/${jpeg.id}/content` });
    expect(res.headers['content-type']).toBe('image/jpeg');
    expect(res.rawPayload.equals(JPEG)).toBe(true);

    const detail = (await h.as(dsl, { method: 'GET', url: `/api/cases/${id}` })).json();
    expect(detail.evidence.map((e: { kind: string }) => e.kind)).toEqual(['url', 'description', 'screenshot', 'screenshot']);
    // A URL is not an image to download; another case's evidence is not this case's.
    expectProblem(await h.as(dsl, { method: 'GET', url: `/api/cases/${id}/evidence/${detail.evidence[0].id}/content` }), 404);
    const other = await open();
    expectProblem(await h.as(dsl, { method: 'GET', url: `/api/cases/${other}/evidence/${png.id}/content` }), 404);
    expect((await events(id)).map((e) => e.kind)).toEqual(['open', 'evidence_add', 'evidence_add']);
  });

  it('refuses what is not a PNG or JPEG by its bytes, a mismatched type, an empty body and anything over 5 MiB', async () => {
    const id = await open();
    const count = async () => (await h.db.pool.query('SELECT count(*)::int AS n FROM case_evidence WHERE case_id = $1', [id])).rows[0].n;
    const upload = (type: string, payload: Buffer | string) =>
      h.as(dsl, { method: 'POST', url: `/api/cases/${id}/screenshots`, headers: { 'content-type': type }, payload });

    // A text file renamed .png and sent as image/png.
    expectProblem(await upload('image/png', Buffer.from('just some text pretending to be screenshot.png\n')), 415);
    expectProblem(await upload('image/jpeg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')), 415);
    expectProblem(await upload('image/jpeg', PNG), 415);
    expectProblem(await upload('image/svg+xml', PNG), 415);
    expectProblem(await upload('text/plain', 'hello'), 415);
    expectProblem(await upload('application/json', '{"a":1}'), 415);
    expectProblem(await upload('image/png', Buffer.alloc(0)), 400);
    const big = Buffer.concat([PNG, Buffer.alloc(5 * 1024 * 1024)]);
    expectProblem(await upload('image/png', big), 413);
    expect(await count()).toBe(0);
    // Exactly at the limit is fine.
    const atLimit = Buffer.concat([PNG, Buffer.alloc(5 * 1024 * 1024 - PNG.length)]);
    const ok = await upload('image/png', atLimit);
    expect(ok.statusCode, ok.body).toBe(201);
    expect(await count()).toBe(1);
  });
});

describe('export', () => {
  it('gives JSON with everything and printable HTML with every value escaped and images inline', async () => {
    const hostile = '<script>alert("x")</script> & \'quoted\'';
    const id = await open(dsl, {
      description: hostile,
      platform: '<b>Chat</b>',
      urls: ['https://evil.example/?q=<img src=x onerror=alert(1)>'],
      evidence: [{ kind: 'description', text: '</pre><iframe src="https://evil.example">' }],
    });
    await h.as(dsl, { method: 'POST', url: `/api/cases/${id}/screenshots`, headers: { 'content-type': 'image/png' }, payload: PNG });
    await post(dsl, `/api/cases/${id}/triage`, { note: '<em>note</em>' });
    await post(dsl, `/api/cases/${id}/platform-report`, { reference: 'REF"><script>' });

    let res = await h.as(head, { method: 'GET', url: `/api/cases/${id}/export` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="case-${id}.json"`);
    const doc = res.json();
    expect(doc.case).toMatchObject({ id, description: hostile, platform: '<b>Chat</b>', state: 'reported_to_platform' });
    expect(doc.case.platformReport.reference).toBe('REF"><script>');
    expect(doc.events.map((e: { kind: string }) => e.kind)).toEqual(['open', 'evidence_add', 'triage', 'platform_report']);
    expect(doc.generatedBy).toBe('head');
    const shot = doc.evidence.find((e: { kind: string }) => e.kind === 'screenshot');
    expect(Buffer.from(shot.contentBase64, 'base64').equals(PNG)).toBe(true);
    expect(shot.sha256).toBe(createHash('sha256').update(PNG).digest('hex'));

    res = await h.as(dsl, { method: 'GET', url: `/api/cases/${id}/export?format=html` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(String(res.headers['content-security-policy'])).toContain("default-src 'none'");
    const html = res.body;
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;');
    expect(html).not.toContain('<script');
    expect(html).not.toContain('<iframe');
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<b>Chat');
    expect(html).not.toContain('<em>');
    expect(html).toContain('&lt;b&gt;Chat&lt;/b&gt;');
    expect(html).toContain(`src="data:image/png;base64,${PNG.toString('base64')}"`);
    expect(html).toContain('@media print');
    expect(html).toContain('REF&quot;&gt;&lt;script&gt;');
    expect(html).toContain('Bullying or harassment');

    expectProblem(await h.as(dsl, { method: 'GET', url: `/api/cases/${id}/export?format=pdf` }), 400);
    expectProblem(await h.as(dsl, { method: 'GET', url: '/api/cases/999999/export' }), 404);
  });
});

describe('roles and input', () => {
  it('lets only the DSL change cases and the DSL or headteacher read them', async () => {
    const id = await open();
    for (const who of [staff, tech, head]) {
      expectProblem(await h.as(who, { method: 'POST', url: '/api/cases', payload: newCase() }), 403);
      expectProblem(await post(who, `/api/cases/${id}/triage`), 403);
      expectProblem(await post(who, `/api/cases/${id}/evidence`, { kind: 'description', text: 'x' }), 403);
      expectProblem(await h.as(who, { method: 'POST', url: `/api/cases/${id}/screenshots`, headers: { 'content-type': 'image/png' }, payload: PNG }), 403);
    }
    for (const who of [staff, tech]) {
      expectProblem(await h.as(who, { method: 'GET', url: '/api/cases' }), 403);
      expectProblem(await h.as(who, { method: 'GET', url: `/api/cases/${id}` }), 403);
      expectProblem(await h.as(who, { method: 'GET', url: `/api/cases/${id}/export?format=html` }), 403);
    }
    expect((await h.as(head, { method: 'GET', url: `/api/cases/${id}` })).statusCode).toBe(200);
    expectProblem(await h.app.inject({ method: 'GET', url: `/api/cases/${id}` }), 401);
    expect((await events(id)).map((e) => e.kind)).toEqual(['open']);
  });

  it('answers bad input with 4xx problems, never a 500', async () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [newCase({ harmType: 'spam' }), 'body/harmType'],
      [newCase({ urls: ['javascript:alert(1)'] }), 'body/urls/0'],
      [newCase({ urls: ['not a url'] }), 'body/urls/0'],
      [newCase({ affected: { role: 'parent', ageBand: 'under_13' } }), 'body/affected/role'],
      [newCase({ affected: { role: 'pupil', ageBand: '12' } }), 'body/affected/ageBand'],
      [newCase({ description: '   ' }), 'body/description'],
      [newCase({ description: 'nul\u0000byte' }), 'body/description'],
      [newCase({ extra: 1 }), 'body/extra'],
      [newCase({ evidence: [{ kind: 'url', text: 'ftp://x.example/' }] }), 'body/evidence/0/text'],
      [newCase({ evidence: [{ kind: 'screenshot', text: 'x' }] }), 'body/evidence/0/kind'],
    ];
    for (const [payload, field] of bad) {
      const res = await h.as(dsl, { method: 'POST', url: '/api/cases', payload });
      expectProblem(res, 400);
      expect(res.json()['invalid-params'].map((p: { name: string }) => p.name)).toContain(field);
    }
    const id = await open();
    await post(dsl, `/api/cases/${id}/triage`);
    expectProblem(await post(dsl, `/api/cases/${id}/refer`, { agency: 'fbi', reference: 'x' }), 400);
    expectProblem(await post(dsl, `/api/cases/${id}/refer`, { agency: 'police' }), 400);
    expectProblem(await post(dsl, `/api/cases/${id}/platform-report`, { reportedAt: 'yesterday' }), 400);
    expectProblem(await post(dsl, `/api/cases/${id}/platform-report`, { reportedAt: '0001-01-01T00:00:00Z' }), 400);
    expectProblem(await h.as(dsl, { method: 'POST', url: `/api/cases/${id}/refer`, headers: { 'content-type': 'application/json' }, payload: '{"agency":' }), 400);
    expectProblem(await h.as(dsl, { method: 'GET', url: '/api/cases/abc' }), 400);
    expectProblem(await h.as(dsl, { method: 'GET', url: '/api/cases/99999999999' }), 400);
    expectProblem(await h.as(dsl, { method: 'GET', url: '/api/cases/999999' }), 404);
    expectProblem(await post(dsl, '/api/cases/999999/triage'), 404);
    expectProblem(await h.as(dsl, { method: 'GET', url: `/api/cases/${id}/evidence/0/content` }), 400);
    expect((await events(id)).map((e) => e.kind)).toEqual(['open', 'triage']);
  });
});

describe('audit', () => {
  it('records every change and every read of a case in the audit log, with its actor', async () => {
    const id = await open();
    await post(dsl, `/api/cases/${id}/evidence`, { kind: 'url', text: 'https://snapgram.example/p/9' });
    const shot = (await h.as(dsl, { method: 'POST', url: `/api/cases/${id}/screenshots`, headers: { 'content-type': 'image/png' }, payload: PNG })).json();
    await post(dsl, `/api/cases/${id}/triage`);
    await post(dsl, `/api/cases/${id}/platform-report`, { reference: 'A-1' });
    expectProblem(await post(dsl, `/api/cases/${id}/escalate`, { reference: 'too soon' }), 409);
    await ageCase(id, 49);
    await post(dsl, `/api/cases/${id}/escalate`, { reference: 'RHC-A' });
    await post(dsl, `/api/cases/${id}/close`, { note: 'done' });
    await h.as(head, { method: 'GET', url: `/api/cases/${id}` });
    await h.as(head, { method: 'GET', url: `/api/cases/${id}/evidence/${shot.id}/content` });
    await h.as(head, { method: 'GET', url: `/api/cases/${id}/export?format=html` });

    const { rows } = await h.db.pool.query<{ actor_username: string; action: string; detail: Record<string, unknown> }>(
      'SELECT actor_username, action, detail FROM audit_log WHERE target = $1 ORDER BY id',
      [`case:${id}`],
    );
    expect(rows.map((r) => `${r.actor_username}:${r.action}`)).toEqual([
      'lead:case.open',
      'lead:case.evidence_add',
      'lead:case.evidence_add',
      'lead:case.triage',
      'lead:case.platform_report',
      'lead:case.escalate',
      'lead:case.close',
      'head:case.read',
      'head:case.evidence_read',
      'head:case.export',
    ]);
    expect(rows[5].detail).toMatchObject({ from: 'reported_to_platform', to: 'escalated_to_rhc', reference: 'RHC-A' });
    // The refused escalation left no trace: no event, no audit row.
    expect((await events(id)).filter((e) => e.kind === 'escalate')).toHaveLength(1);
  });
});
