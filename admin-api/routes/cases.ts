// Harmful-content cases, after the UK Report Harmful Content (SWGfL) process.
// The DSL opens a case (harm type, where it is, who is affected, evidence)
// and moves it on; the headteacher may read. States:
//
//   new → triage → referred            illegal: police, IWF or CEOP; the case stops there
//                → reported_to_platform → resolved          the platform acted
//                                       → escalated_to_rhc   no action 48 h after the report
//                                           → resolved | closed
//
// Every step is a case_events row (actor, time, note, data) and an audit row
// in the same transaction; a step the current state does not allow is a 409
// naming that state. Deadlines: triage within 24 h of opening; the platform
// within 48 h of being told. Reading a case, its screenshots or its export is
// audited too.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { createHash } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { caseAsHtml, type CaseDocument, type ExportEvidence } from '../case-export.js';
import { DateTime } from '../instants.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { badRequest, conflict, notFound, Problem } from '../problem.js';
import { IdParams, Text } from '../schemas.js';

export const SCREENSHOT_LIMIT_BYTES = 5 * 1024 * 1024;
export const TRIAGE_HOURS = 24;
export const PLATFORM_RESPONSE_HOURS = 48;

const HARM_TYPES = [
  'threats',
  'impersonation',
  'bullying_harassment',
  'self_harm_suicide',
  'online_abuse',
  'violent_content',
  'unwanted_sexual_advances',
  'pornographic_content',
] as const;
const STATES = ['new', 'triage', 'referred', 'reported_to_platform', 'escalated_to_rhc', 'resolved', 'closed'] as const;
type State = (typeof STATES)[number];
const TERMINAL: readonly State[] = ['referred', 'resolved', 'closed'];

const DeadlineSchema = Type.Union([
  Type.Object({
    kind: Type.Enum(['triage', 'platform_response'], { description: 'what is awaited: triage by the DSL, or action by the platform' }),
    at: Type.String({ format: 'date-time' }),
    overdue: Type.Boolean(),
  }),
  Type.Null(),
]);

const CaseSchema = Type.Object({
  id: Type.Integer(),
  state: Type.Enum([...STATES]),
  harmType: Type.Enum([...HARM_TYPES]),
  platform: Type.String(),
  urls: Type.Array(Type.String()),
  affected: Type.Object({ role: Type.Enum(['pupil', 'staff']), ageBand: Type.Enum(['under_13', '13_to_17', '18_or_over']) }),
  description: Type.String(),
  openedBy: Type.String(),
  openedAt: Type.String({ format: 'date-time' }),
  illegal: Type.Union([Type.Boolean(), Type.Null()], { description: "triage's decision; null until made" }),
  referral: Type.Union([
    Type.Object({ agency: Type.Enum(['police', 'iwf', 'ceop']), reference: Type.String(), at: Type.String({ format: 'date-time' }) }),
    Type.Null(),
  ]),
  platformReport: Type.Union([Type.Object({ reference: Type.Union([Type.String(), Type.Null()]), reportedAt: Type.String({ format: 'date-time' }) }), Type.Null()]),
  rhcEscalation: Type.Union([Type.Object({ reference: Type.String(), escalatedAt: Type.String({ format: 'date-time' }) }), Type.Null()]),
  outcome: Type.Union([Type.String(), Type.Null()]),
  endedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  deadline: DeadlineSchema,
  escalationPossibleAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'while reported to the platform: when escalation to Report Harmful Content becomes possible',
  }),
});
type CaseView = Static<typeof CaseSchema>;

const EventSchema = Type.Object({
  id: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  actor: Type.String(),
  kind: Type.String(),
  state: Type.String({ description: 'the state after the event' }),
  note: Type.Union([Type.String(), Type.Null()]),
  data: Type.Record(Type.String(), Type.Unknown()),
});

const EvidenceSchema = Type.Object({
  id: Type.Integer(),
  kind: Type.Enum(['url', 'description', 'screenshot']),
  addedBy: Type.String(),
  addedAt: Type.String({ format: 'date-time' }),
  text: Type.Union([Type.String(), Type.Null()]),
  mediaType: Type.Union([Type.Enum(['image/png', 'image/jpeg']), Type.Null()]),
  size: Type.Union([Type.Integer(), Type.Null()]),
  sha256: Type.Union([Type.String(), Type.Null()]),
});

const CaseDetail = Type.Object({ case: CaseSchema, events: Type.Array(EventSchema), evidence: Type.Array(EvidenceSchema) });

const Note = Text({ maxLength: 4000, description: 'a note for the case record' });
const RequiredNote = Text({ minLength: 1, maxLength: 4000 });
const Reference = Text({ minLength: 1, maxLength: 200 });
const UrlText = Text({ minLength: 1, maxLength: 2048 });

const EvidenceInput = Type.Object(
  { kind: Type.Enum(['url', 'description']), text: Text({ minLength: 1, maxLength: 8000 }) },
  { additionalProperties: false },
);

const CreateBody = Type.Object(
  {
    harmType: Type.Enum([...HARM_TYPES]),
    platform: Text({ minLength: 1, maxLength: 200, description: 'the platform or service the content is on' }),
    urls: Type.Array(UrlText, { maxItems: 50, description: 'http(s) addresses of the content' }),
    affected: Type.Object(
      { role: Type.Enum(['pupil', 'staff']), ageBand: Type.Enum(['under_13', '13_to_17', '18_or_over']) },
      { additionalProperties: false },
    ),
    description: Text({ minLength: 1, maxLength: 8000 }),
    evidence: Type.Optional(Type.Array(EvidenceInput, { maxItems: 50 })),
  },
  { additionalProperties: false },
);

const NoteBody = Type.Object({ note: Type.Optional(Note) }, { additionalProperties: false });
const ReferBody = Type.Object(
  { agency: Type.Enum(['police', 'iwf', 'ceop']), reference: Reference, note: Type.Optional(Note) },
  { additionalProperties: false },
);
const PlatformReportBody = Type.Object(
  {
    reference: Type.Optional(Reference),
    reportedAt: Type.Optional(DateTime('when the content was reported to the platform; default now; not in the future')),
    note: Type.Optional(Note),
  },
  { additionalProperties: false },
);
const EscalateBody = Type.Object({ reference: Reference, note: Type.Optional(Note) }, { additionalProperties: false });
const OutcomeBody = Type.Object({ note: RequiredNote }, { additionalProperties: false });

const ListQuery = Type.Object({
  ...PageQuery,
  state: Type.Optional(Type.Enum([...STATES])),
  overdue: Type.Optional(Type.Boolean({ description: 'true: only cases waiting past a deadline' })),
});
const ExportQuery = Type.Object({ format: Type.Optional(Type.Enum(['json', 'html'], { description: 'default json' })) });
const EvidenceParams = Type.Object({ id: IdParams.properties.id, evidenceId: IdParams.properties.id });

interface CaseRow {
  id: number;
  state: State;
  harm_type: CaseView['harmType'];
  location: string;
  urls: string[];
  affected_role: CaseView['affected']['role'];
  affected_age_band: CaseView['affected']['ageBand'];
  summary: string;
  opened_by: string;
  opened_at: Date;
  illegal: boolean | null;
  referred_to: 'police' | 'iwf' | 'ceop' | null;
  referral_reference: string | null;
  referred_at: Date | null;
  platform_reported_at: Date | null;
  platform_reference: string | null;
  rhc_escalated_at: Date | null;
  rhc_reference: string | null;
  outcome: string | null;
  ended_at: Date | null;
  deadline_at: Date | null;
  overdue: boolean;
}

const SELECT_CASE = `SELECT c.id, c.state, c.harm_type, c.location, c.urls, c.affected_role, c.affected_age_band, c.summary,
                            u.username AS opened_by, c.opened_at, c.illegal, c.referred_to, c.referral_reference, c.referred_at,
                            c.platform_reported_at, c.platform_reference, c.rhc_escalated_at, c.rhc_reference, c.outcome, c.ended_at,
                            c.deadline_at, coalesce(c.deadline_at < now(), false) AS overdue
                       FROM cases c JOIN users u ON u.id = c.opened_by`;

const iso = (d: Date | null): string | null => d?.toISOString() ?? null;
const hoursAfter = (d: Date, hours: number) => new Date(d.getTime() + hours * 3_600_000);

function caseOf(row: CaseRow): CaseView {
  const deadlineKind = row.state === 'new' || row.state === 'triage' ? 'triage' : row.state === 'reported_to_platform' ? 'platform_response' : null;
  return {
    id: row.id,
    state: row.state,
    harmType: row.harm_type,
    platform: row.location,
    urls: row.urls,
    affected: { role: row.affected_role, ageBand: row.affected_age_band },
    description: row.summary,
    openedBy: row.opened_by,
    openedAt: row.opened_at.toISOString(),
    illegal: row.illegal,
    referral:
      row.referred_to && row.referral_reference && row.referred_at
        ? { agency: row.referred_to, reference: row.referral_reference, at: row.referred_at.toISOString() }
        : null,
    platformReport: row.platform_reported_at ? { reference: row.platform_reference, reportedAt: row.platform_reported_at.toISOString() } : null,
    rhcEscalation: row.rhc_escalated_at && row.rhc_reference ? { reference: row.rhc_reference, escalatedAt: row.rhc_escalated_at.toISOString() } : null,
    outcome: row.outcome,
    endedAt: iso(row.ended_at),
    deadline: deadlineKind && row.deadline_at ? { kind: deadlineKind, at: row.deadline_at.toISOString(), overdue: row.overdue } : null,
    escalationPossibleAt:
      row.state === 'reported_to_platform' && row.platform_reported_at ? hoursAfter(row.platform_reported_at, PLATFORM_RESPONSE_HOURS).toISOString() : null,
  };
}

interface EventRow {
  id: string;
  at: Date;
  actor_username: string;
  kind: string;
  state: string;
  detail: { note?: string | null; data?: Record<string, unknown> };
}

interface EvidenceRow {
  id: number;
  kind: ExportEvidence['kind'];
  added_by: string;
  added_at: Date;
  text: string | null;
  media_type: ExportEvidence['mediaType'];
  size: number | null;
  sha256: Buffer | null;
  content?: Buffer | null;
}

function evidenceOf(row: EvidenceRow): ExportEvidence {
  return {
    id: row.id,
    kind: row.kind,
    addedBy: row.added_by,
    addedAt: row.added_at.toISOString(),
    text: row.text,
    mediaType: row.media_type,
    size: row.size,
    sha256: row.sha256?.toString('hex') ?? null,
  };
}

async function findCase(db: Pool | PoolClient, schoolId: number, id: number): Promise<CaseView> {
  const { rows } = await db.query<CaseRow>(`${SELECT_CASE} WHERE c.school_id = $1 AND c.id = $2`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no case ${id}`);
  return caseOf(rows[0]);
}

async function caseDetail(db: Pool | PoolClient, schoolId: number, id: number, withContent: boolean) {
  const found = await findCase(db, schoolId, id);
  const events = await db.query<EventRow>(
    'SELECT id::text, at, actor_username, kind, state, detail FROM case_events WHERE case_id = $1 ORDER BY id',
    [id],
  );
  const evidence = await db.query<EvidenceRow>(
    `SELECT e.id, e.kind, u.username AS added_by, e.added_at, e.text, e.media_type, octet_length(e.content) AS size, e.sha256
            ${withContent ? ', e.content' : ''}
       FROM case_evidence e JOIN users u ON u.id = e.added_by WHERE e.case_id = $1 ORDER BY e.id`,
    [id],
  );
  return {
    case: found,
    events: events.rows.map((r) => ({
      id: Number(r.id),
      at: r.at.toISOString(),
      actor: r.actor_username,
      kind: r.kind,
      state: r.state,
      note: r.detail.note ?? null,
      data: r.detail.data ?? {},
    })),
    evidence: evidence.rows.map((r) => (withContent ? { ...evidenceOf(r), contentBase64: r.content?.toString('base64') ?? null } : evidenceOf(r))),
  };
}

function audit(client: Pool | PoolClient, principal: Principal, action: string, id: number, detail: Record<string, unknown>) {
  return appendAudit(client, { schoolId: principal.schoolId, actor: actorOf(principal), action, target: `case:${id}`, detail });
}

async function addEvent(client: PoolClient, principal: Principal, caseId: number, kind: string, state: State, note: string | null, data: Record<string, unknown>) {
  await client.query('INSERT INTO case_events (case_id, actor_user_id, actor_username, kind, state, detail) VALUES ($1, $2, $3, $4, $5, $6)', [
    caseId,
    principal.userId,
    principal.username,
    kind,
    state,
    JSON.stringify({ note, data }),
  ]);
}

/** http(s) URLs only; a 400 naming the field otherwise. */
function checkUrl(value: string, field: string): string {
  const text = value.trim();
  let ok = false;
  try {
    const u = new URL(text);
    ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    ok = false;
  }
  if (!ok) throw badRequest(`${field} is not an http(s) URL`, [{ name: field, reason: 'not an http(s) URL' }]);
  return text;
}

function checkEvidence(items: ReadonlyArray<{ kind: 'url' | 'description'; text: string }>, field: string) {
  return items.map((item, i) => ({ kind: item.kind, text: item.kind === 'url' ? checkUrl(item.text, `${field}/${i}/text`) : item.text.trim() }));
}

/** The image type its first bytes say, or null. */
export function sniffImage(bytes: Buffer): 'image/png' | 'image/jpeg' | null {
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  return null;
}

interface Locked {
  state: State;
  opened_at: Date;
  platform_reported_at: Date | null;
  escalation_from: Date | null;
  escalation_allowed: boolean;
}

async function lockCase(client: PoolClient, schoolId: number, id: number): Promise<Locked> {
  const { rows } = await client.query<Locked>(
    `SELECT state, opened_at, platform_reported_at,
            platform_reported_at + $3 * interval '1 hour' AS escalation_from,
            coalesce(platform_reported_at + $3 * interval '1 hour' <= now(), false) AS escalation_allowed
       FROM cases WHERE school_id = $1 AND id = $2 FOR UPDATE`,
    [schoolId, id, PLATFORM_RESPONSE_HOURS],
  );
  if (!rows[0]) throw notFound(`no case ${id}`);
  return rows[0];
}

function requireState(id: number, locked: Locked, allowed: readonly State[], step: string): void {
  if (!allowed.includes(locked.state)) {
    throw conflict(`case ${id} is in state ${locked.state}; ${step} is possible only from ${allowed.join(' or ')}`);
  }
}

export const caseRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const dsl = ['dsl'] as const;
  const readers = ['dsl', 'headteacher'] as const;

  // Screenshots arrive as the raw image; only this plugin's routes accept these types.
  app.addContentTypeParser(['image/png', 'image/jpeg'], { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  /** One step of the process: lock, check the state, change, record the event and audit, all in one transaction. */
  async function step(
    principal: Principal,
    id: number,
    name: string,
    allowed: readonly State[],
    change: (client: PoolClient, locked: Locked) => Promise<{ to: State; note: string | null; data: Record<string, unknown> }>,
  ): Promise<CaseView> {
    return inTransaction(pool, async (client) => {
      const locked = await lockCase(client, principal.schoolId, id);
      requireState(id, locked, allowed, name);
      const { to, note, data } = await change(client, locked);
      await addEvent(client, principal, id, name, to, note, data);
      await audit(client, principal, `case.${name}`, id, { from: locked.state, to, note, ...data });
      return findCase(client, principal.schoolId, id);
    });
  }

  app.post(
    '/api/cases',
    {
      config: { access: dsl },
      schema: {
        tags: ['safeguarding'],
        summary: 'Open a harmful-content case (state new; triage due within 24 hours)',
        body: CreateBody,
        response: { 201: CaseDetail },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const urls = body.urls.map((u, i) => checkUrl(u, `body/urls/${i}`));
      const evidence = checkEvidence(body.evidence ?? [], 'body/evidence');
      const detail = await inTransaction(pool, async (client) => {
        const insert = await client.query<{ id: number }>(
          `INSERT INTO cases (school_id, opened_by, harm_type, location, urls, affected_role, affected_age_band, summary, state, deadline_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'new', now() + $9 * interval '1 hour') RETURNING id`,
          [principal.schoolId, principal.userId, body.harmType, body.platform.trim(), urls, body.affected.role, body.affected.ageBand,
            body.description.trim(), TRIAGE_HOURS],
        );
        const id = insert.rows[0].id;
        for (const item of evidence) {
          await client.query('INSERT INTO case_evidence (case_id, added_by, kind, text) VALUES ($1, $2, $3, $4)', [id, principal.userId, item.kind, item.text]);
        }
        const data = { harmType: body.harmType, platform: body.platform.trim(), urls, affected: body.affected, evidence: evidence.length };
        await addEvent(client, principal, id, 'open', 'new', null, data);
        await audit(client, principal, 'case.open', id, data);
        return caseDetail(client, principal.schoolId, id, false);
      });
      return reply.code(201).send(detail);
    },
  );

  app.get(
    '/api/cases',
    {
      config: { access: readers },
      schema: {
        tags: ['safeguarding'],
        summary: 'Cases, newest first; overdue=true lists those waiting past a deadline, with the deadline that passed',
        querystring: ListQuery,
        response: { 200: Page(CaseSchema) },
      },
    },
    async (request) => {
      const { query } = request;
      const limit = pageLimit(query);
      const after = decodeCursor(query.cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const overdue = query.overdue === undefined ? null : query.overdue;
      const { rows } = await pool.query<CaseRow>(
        `${SELECT_CASE}
          WHERE c.school_id = $1 AND ($2::text IS NULL OR c.state = $2)
            AND ($3::boolean IS NULL OR coalesce(c.deadline_at < now(), false) = $3)
            AND ($4::int IS NULL OR c.id < $4)
          ORDER BY c.id DESC LIMIT $5`,
        [principalOf(request).schoolId, query.state ?? null, overdue, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(caseOf), limit, (c) => [c.id]);
    },
  );

  app.get(
    '/api/cases/:id',
    {
      config: { access: readers },
      schema: {
        tags: ['safeguarding'],
        summary: 'A case with its events (oldest first) and evidence; the read is audited',
        params: IdParams,
        response: { 200: CaseDetail },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return inTransaction(pool, async (client) => {
        const detail = await caseDetail(client, principal.schoolId, request.params.id, false);
        await audit(client, principal, 'case.read', request.params.id, {});
        return detail;
      });
    },
  );

  app.post(
    '/api/cases/:id/triage',
    {
      config: { access: dsl },
      schema: { tags: ['safeguarding'], summary: 'Start triage of a new case', params: IdParams, body: NoteBody, response: { 200: CaseSchema } },
    },
    async (request) =>
      step(principalOf(request), request.params.id, 'triage', ['new'], async (client, locked) => {
        await client.query("UPDATE cases SET state = 'triage' WHERE id = $1", [request.params.id]);
        return { to: 'triage', note: request.body.note?.trim() || null, data: { triageDueAt: hoursAfter(locked.opened_at, TRIAGE_HOURS).toISOString() } };
      }),
  );

  app.post(
    '/api/cases/:id/refer',
    {
      config: { access: dsl },
      schema: {
        tags: ['safeguarding'],
        summary: 'Triage found it illegal: referred to the police, IWF or CEOP, with their reference; the case stops there',
        params: IdParams,
        body: ReferBody,
        response: { 200: CaseSchema },
      },
    },
    async (request) =>
      step(principalOf(request), request.params.id, 'refer', ['triage'], async (client) => {
        const { agency, reference, note } = request.body;
        await client.query(
          `UPDATE cases SET state = 'referred', illegal = true, referred_to = $2, referral_reference = $3, referred_at = now(),
                            ended_at = now(), outcome = 'referred', deadline_at = NULL WHERE id = $1`,
          [request.params.id, agency, reference.trim()],
        );
        return { to: 'referred', note: note?.trim() || null, data: { illegal: true, agency, reference: reference.trim() } };
      }),
  );

  app.post(
    '/api/cases/:id/platform-report',
    {
      config: { access: dsl },
      schema: {
        tags: ['safeguarding'],
        summary: 'Triage found it not illegal and it was reported to the platform (date and reference); the platform has 48 hours',
        params: IdParams,
        body: PlatformReportBody,
        response: { 200: CaseSchema },
      },
    },
    async (request) => {
      const { reference, reportedAt, note } = request.body;
      // A minute's grace for clocks; a report cannot have been made in the future.
      if (reportedAt !== undefined && Date.parse(reportedAt) > Date.now() + 60_000) {
        throw badRequest('reportedAt is in the future', [{ name: 'body/reportedAt', reason: 'must not be in the future' }]);
      }
      return step(principalOf(request), request.params.id, 'platform_report', ['triage'], async (client) => {
        const updated = await client.query<{ platform_reported_at: Date; deadline_at: Date }>(
          `UPDATE cases SET state = 'reported_to_platform', illegal = false, platform_reference = $2,
                            platform_reported_at = coalesce($3::timestamptz, now()),
                            deadline_at = coalesce($3::timestamptz, now()) + $4 * interval '1 hour'
            WHERE id = $1 RETURNING platform_reported_at, deadline_at`,
          [request.params.id, reference?.trim() ?? null, reportedAt ?? null, PLATFORM_RESPONSE_HOURS],
        );
        const row = updated.rows[0];
        return {
          to: 'reported_to_platform',
          note: note?.trim() || null,
          data: { illegal: false, reference: reference?.trim() ?? null, reportedAt: row.platform_reported_at.toISOString(), escalationPossibleAt: row.deadline_at.toISOString() },
        };
      });
    },
  );

  app.post(
    '/api/cases/:id/escalate',
    {
      config: { access: dsl },
      schema: {
        tags: ['safeguarding'],
        summary: 'Escalate to Report Harmful Content, with its reference: only once 48 hours have passed since the platform report (409 before)',
        params: IdParams,
        body: EscalateBody,
        response: { 200: CaseSchema },
      },
    },
    async (request) =>
      step(principalOf(request), request.params.id, 'escalate', ['reported_to_platform'], async (client, locked) => {
        if (!locked.escalation_allowed || !locked.escalation_from) {
          throw conflict(
            `case ${request.params.id} was reported to the platform at ${iso(locked.platform_reported_at)}; ` +
              `escalation to Report Harmful Content is possible from ${iso(locked.escalation_from)} (${PLATFORM_RESPONSE_HOURS} hours later)`,
          );
        }
        const { reference, note } = request.body;
        await client.query(
          "UPDATE cases SET state = 'escalated_to_rhc', rhc_reference = $2, rhc_escalated_at = now(), deadline_at = NULL WHERE id = $1",
          [request.params.id, reference.trim()],
        );
        return { to: 'escalated_to_rhc', note: note?.trim() || null, data: { reference: reference.trim() } };
      }),
  );

  app.post(
    '/api/cases/:id/resolve',
    {
      config: { access: dsl },
      schema: {
        tags: ['safeguarding'],
        summary: 'The platform (or Report Harmful Content) acted: the case is resolved; the note says what was done',
        params: IdParams,
        body: OutcomeBody,
        response: { 200: CaseSchema },
      },
    },
    async (request) =>
      step(principalOf(request), request.params.id, 'resolve', ['reported_to_platform', 'escalated_to_rhc'], async (client, locked) => {
        const note = request.body.note.trim();
        await client.query("UPDATE cases SET state = 'resolved', outcome = $2, ended_at = now(), deadline_at = NULL WHERE id = $1", [request.params.id, note]);
        return { to: 'resolved', note, data: { resolvedBy: locked.state === 'escalated_to_rhc' ? 'report_harmful_content' : 'platform' } };
      }),
  );

  app.post(
    '/api/cases/:id/close',
    {
      config: { access: dsl },
      schema: {
        tags: ['safeguarding'],
        summary: 'Close an escalated case without resolution (for example Report Harmful Content could not act); the note says why',
        params: IdParams,
        body: OutcomeBody,
        response: { 200: CaseSchema },
      },
    },
    async (request) =>
      step(principalOf(request), request.params.id, 'close', ['escalated_to_rhc'], async (client) => {
        const note = request.body.note.trim();
        await client.query("UPDATE cases SET state = 'closed', outcome = $2, ended_at = now(), deadline_at = NULL WHERE id = $1", [request.params.id, note]);
        return { to: 'closed', note, data: {} };
      }),
  );

  app.post(
    '/api/cases/:id/evidence',
    {
      config: { access: dsl },
      schema: {
        tags: ['safeguarding'],
        summary: 'Add a URL or a text description as evidence to an open case',
        params: IdParams,
        body: EvidenceInput,
        response: { 201: EvidenceSchema },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const [item] = checkEvidence([request.body], 'body');
      const added = await inTransaction(pool, async (client) => {
        const locked = await lockCase(client, principal.schoolId, request.params.id);
        if (TERMINAL.includes(locked.state)) throw conflict(`case ${request.params.id} is in state ${locked.state}; evidence can no longer be added`);
        const { rows } = await client.query<{ id: number }>(
          'INSERT INTO case_evidence (case_id, added_by, kind, text) VALUES ($1, $2, $3, $4) RETURNING id',
          [request.params.id, principal.userId, item.kind, item.text],
        );
        const evidenceId = rows[0].id;
        await addEvent(client, principal, request.params.id, 'evidence_add', locked.state, null, { evidenceId, kind: item.kind });
        await audit(client, principal, 'case.evidence_add', request.params.id, { evidenceId, kind: item.kind });
        return findEvidence(client, request.params.id, evidenceId);
      });
      return reply.code(201).send(added);
    },
  );

  app.post(
    '/api/cases/:id/screenshots',
    {
      config: { access: dsl },
      bodyLimit: SCREENSHOT_LIMIT_BYTES,
      schema: {
        tags: ['safeguarding'],
        summary: 'Add a screenshot: the raw image as the body, Content-Type image/png or image/jpeg, at most 5 MiB',
        description: 'The bytes must be the declared type by their signature (415 otherwise); larger than the limit is a 413.',
        params: IdParams,
        consumes: ['image/png', 'image/jpeg'],
        response: { 201: EvidenceSchema },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body: unknown = request.body;
      // Other types fastify parses itself (JSON, text) arrive as something other than a Buffer.
      if (!Buffer.isBuffer(body)) throw new Problem(415, 'unsupported-media-type', 'send the screenshot as the body, with Content-Type image/png or image/jpeg');
      if (body.length === 0) throw badRequest('the body holds no image', [{ name: 'body', reason: 'is required' }]);
      const declared = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      const actual = sniffImage(body);
      if (actual === null) throw new Problem(415, 'unsupported-media-type', 'the body is not a PNG or JPEG image (by its signature)');
      if (actual !== declared) throw new Problem(415, 'unsupported-media-type', `the body is ${actual} by its signature but was declared ${declared}`);
      const sha256 = createHash('sha256').update(body).digest();
      const added = await inTransaction(pool, async (client) => {
        const locked = await lockCase(client, principal.schoolId, request.params.id);
        if (TERMINAL.includes(locked.state)) throw conflict(`case ${request.params.id} is in state ${locked.state}; evidence can no longer be added`);
        const { rows } = await client.query<{ id: number }>(
          "INSERT INTO case_evidence (case_id, added_by, kind, media_type, content, sha256) VALUES ($1, $2, 'screenshot', $3, $4, $5) RETURNING id",
          [request.params.id, principal.userId, actual, body, sha256],
        );
        const evidenceId = rows[0].id;
        const data = { evidenceId, kind: 'screenshot', mediaType: actual, size: body.length, sha256: sha256.toString('hex') };
        await addEvent(client, principal, request.params.id, 'evidence_add', locked.state, null, data);
        await audit(client, principal, 'case.evidence_add', request.params.id, data);
        return findEvidence(client, request.params.id, evidenceId);
      });
      return reply.code(201).send(added);
    },
  );

  app.get(
    '/api/cases/:id/evidence/:evidenceId/content',
    {
      config: { access: readers },
      schema: {
        tags: ['safeguarding'],
        summary: 'A screenshot, as a download (image/png or image/jpeg only); the read is audited',
        params: EvidenceParams,
        response: {
          200: {
            description: 'the image',
            content: {
              'image/png': { schema: Type.Unsafe<Buffer>(Type.String({ format: 'binary' })) },
              'image/jpeg': { schema: Type.Unsafe<Buffer>(Type.String({ format: 'binary' })) },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { id, evidenceId } = request.params;
      const image = await inTransaction(pool, async (client) => {
        await findCase(client, principal.schoolId, id);
        const { rows } = await client.query<{ media_type: string | null; content: Buffer | null }>(
          'SELECT media_type, content FROM case_evidence WHERE case_id = $1 AND id = $2',
          [id, evidenceId],
        );
        const row = rows[0];
        if (!row) throw notFound(`case ${id} has no evidence ${evidenceId}`);
        if (row.content === null || (row.media_type !== 'image/png' && row.media_type !== 'image/jpeg')) {
          throw notFound(`evidence ${evidenceId} of case ${id} is not a screenshot`);
        }
        await audit(client, principal, 'case.evidence_read', id, { evidenceId });
        return { mediaType: row.media_type, content: row.content };
      });
      return reply
        .type(image.mediaType)
        .header('content-disposition', `attachment; filename="case-${id}-evidence-${evidenceId}.${image.mediaType === 'image/png' ? 'png' : 'jpg'}"`)
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'none'")
        .header('cache-control', 'no-store')
        .send(image.content);
    },
  );

  app.get(
    '/api/cases/:id/export',
    {
      config: { access: readers },
      schema: {
        tags: ['safeguarding'],
        summary: 'The case as one self-contained document for an escalation: JSON (default) or printable HTML; audited',
        params: IdParams,
        querystring: ExportQuery,
        response: {
          200: {
            description: 'the document',
            content: {
              'application/json': { schema: Type.Unsafe<string>(Type.Object({ generatedAt: Type.String(), case: CaseSchema })) },
              'text/html': { schema: Type.Unsafe<string>(Type.String()) },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const format = request.query.format ?? 'json';
      const { id } = request.params;
      const doc = await inTransaction(pool, async (client): Promise<CaseDocument> => {
        const detail = await caseDetail(client, principal.schoolId, id, true);
        await audit(client, principal, 'case.export', id, { format });
        return { generatedAt: new Date().toISOString(), generatedBy: principal.username, ...detail };
      });
      reply
        .header('content-disposition', `attachment; filename="case-${id}.${format}"`)
        .header('x-content-type-options', 'nosniff')
        .header('cache-control', 'no-store');
      if (format === 'html') {
        return reply
          .type('text/html; charset=utf-8')
          .header('content-security-policy', "default-src 'none'; img-src data:; style-src 'unsafe-inline'")
          .send(caseAsHtml(doc));
      }
      return reply.type('application/json; charset=utf-8').send(JSON.stringify(doc, null, 2));
    },
  );
};

async function findEvidence(db: PoolClient, caseId: number, evidenceId: number): Promise<ExportEvidence> {
  const { rows } = await db.query<EvidenceRow>(
    `SELECT e.id, e.kind, u.username AS added_by, e.added_at, e.text, e.media_type, octet_length(e.content) AS size, e.sha256
       FROM case_evidence e JOIN users u ON u.id = e.added_by WHERE e.case_id = $1 AND e.id = $2`,
    [caseId, evidenceId],
  );
  return evidenceOf(rows[0]);
}
