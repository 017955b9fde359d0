// Reports from staff: "I reached this by accident" (tied to the block's
// access-log row, by the reference on the block page) and "I received
// inappropriate content". Anyone signed in reports and sees their own
// reports' status; the DSL works the queue and records an outcome.
// A report made within SELF_REPORT_WINDOW_MINUTES of the block marks the
// person's visits to that host around it as self-reported, so a later
// investigation sees that they told someone.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { findOwnBlock } from '../../safeguarding/blocked-visit.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { conflict, notFound } from '../problem.js';
import { IdParams, Text } from '../schemas.js';

export const BlockRef = Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{10}$', description: 'the reference shown on the block page' });

const Status = Type.Enum(['open', 'genuine_mistake', 'needs_follow_up']);

const IncidentReport = Type.Object({
  id: Type.Integer(),
  kind: Type.Enum(['accidental_access', 'inappropriate_content']),
  reporter: Type.String(),
  reportedAt: Type.String({ format: 'date-time' }),
  blockRef: Type.Union([Type.String(), Type.Null()]),
  url: Type.Union([Type.String(), Type.Null()]),
  category: Type.Union([Type.String(), Type.Null()]),
  blockedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  channel: Type.Union([Type.Enum(['email', 'message', 'link']), Type.Null()]),
  description: Type.String(),
  accessLogIds: Type.Array(Type.String({ format: 'uuid' }), { description: 'the access-log rows the report concerns' }),
  selfReported: Type.Boolean({ description: 'made within the window, so those rows are marked self-reported' }),
  status: Status,
  outcomeNote: Type.Union([Type.String(), Type.Null()]),
  decidedBy: Type.Union([Type.String(), Type.Null()]),
  decidedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
type IncidentReport = Static<typeof IncidentReport>;

interface ReportRow {
  id: number;
  kind: IncidentReport['kind'];
  reporter: string;
  reported_at: Date;
  block_ref: string | null;
  url: string | null;
  category: string | null;
  blocked_at: Date | null;
  channel: IncidentReport['channel'];
  description: string;
  access_log_ids: string[];
  self_reported: boolean;
  status: IncidentReport['status'];
  outcome_note: string | null;
  decided_by: string | null;
  decided_at: Date | null;
}

const SELECT_REPORT = `SELECT r.id, r.kind, u.username AS reporter, r.reported_at, r.block_ref, r.url, r.category, r.blocked_at, r.channel,
                              r.description, r.access_log_ids::text[] AS access_log_ids,
                              (r.kind = 'accidental_access' AND cardinality(r.access_log_ids) > 0 AND r.self_reported) AS self_reported,
                              r.status, r.outcome_note, d.username AS decided_by, r.decided_at
                         FROM (SELECT *, EXISTS (SELECT 1 FROM access_log a WHERE a.id = ANY(incident_reports.access_log_ids)
                                                   AND a.self_reported_at IS NOT NULL) AS self_reported
                                 FROM incident_reports) r
                         JOIN users u ON u.id = r.reporter_user_id LEFT JOIN users d ON d.id = r.decided_by`;

function reportOf(row: ReportRow): IncidentReport {
  return {
    id: row.id,
    kind: row.kind,
    reporter: row.reporter,
    reportedAt: row.reported_at.toISOString(),
    blockRef: row.block_ref,
    url: row.url,
    category: row.category,
    blockedAt: row.blocked_at?.toISOString() ?? null,
    channel: row.channel,
    description: row.description,
    accessLogIds: row.access_log_ids,
    selfReported: row.self_reported,
    status: row.status,
    outcomeNote: row.outcome_note,
    decidedBy: row.decided_by,
    decidedAt: row.decided_at?.toISOString() ?? null,
  };
}

async function findReport(db: Pool | PoolClient, schoolId: number, id: number): Promise<IncidentReport> {
  const { rows } = await db.query<ReportRow>(`${SELECT_REPORT} WHERE r.school_id = $1 AND r.id = $2`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no incident report ${id}`);
  return reportOf(rows[0]);
}

function audit(client: PoolClient, principal: Principal, action: string, id: number, detail: Record<string, unknown>) {
  return appendAudit(client, { schoolId: principal.schoolId, actor: actorOf(principal), action, target: `incident_report:${id}`, detail });
}

const AccidentBody = Type.Object(
  { ref: BlockRef, note: Type.Optional(Text({ maxLength: 2000, description: 'anything the DSL should know' })) },
  { additionalProperties: false },
);

const ReceivedBody = Type.Object(
  {
    channel: Type.Enum(['email', 'message', 'link'], { description: 'how the content arrived' }),
    description: Text({ minLength: 1, maxLength: 4000 }),
    url: Type.Optional(Text({ minLength: 1, maxLength: 2048 })),
  },
  { additionalProperties: false },
);

const QueueQuery = Type.Object({ ...PageQuery, status: Type.Optional(Status) });

const OutcomeBody = Type.Object(
  { outcome: Type.Enum(['genuine_mistake', 'needs_follow_up']), note: Text({ minLength: 1, maxLength: 4000 }) },
  { additionalProperties: false },
);

export const incidentReportRoutes: FastifyPluginAsyncTypebox<{ pool: Pool; selfReportWindowMinutes: number }> = async (app, opts) => {
  const { pool, selfReportWindowMinutes } = opts;
  const dsl = ['dsl'] as const;

  app.post(
    '/api/reports/accidental-access',
    {
      config: { access: 'signed-in' },
      schema: {
        tags: ['safeguarding'],
        summary: '"I reached this by accident": report one of your own blocks, by its reference',
        description: 'A block the proxy could not tie to a person cannot be reported as yours (409).',
        body: AccidentBody,
        response: { 201: IncidentReport },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { ref, note } = request.body;
      const created = await inTransaction(pool, async (client) => {
        const visit = await findOwnBlock(client, principal.schoolId, principal.userId, ref);
        const already = await client.query<{ id: number }>(
          "SELECT id FROM incident_reports WHERE school_id = $1 AND kind = 'accidental_access' AND block_ref = $2 AND reporter_user_id = $3",
          [principal.schoolId, ref, principal.userId],
        );
        if (already.rows[0]) throw conflict(`you already reported ${ref} (report ${already.rows[0].id})`);
        // Soon enough after the block: mark this person's visits to the host around it.
        const windowMs = selfReportWindowMinutes * 60_000;
        let accessLogIds = [visit.id];
        if (Date.now() - visit.time.getTime() <= windowMs) {
          const marked = await client.query<{ id: string }>(
            `UPDATE access_log SET self_reported_at = now()
              WHERE school_id = $1 AND user_id = $2 AND host = $3 AND time BETWEEN $4::timestamptz - $5 * interval '1 minute' AND now()
                AND self_reported_at IS NULL
              RETURNING id::text`,
            [principal.schoolId, principal.userId, visit.host, visit.time, selfReportWindowMinutes],
          );
          accessLogIds = [...new Set([visit.id, ...marked.rows.map((r) => r.id)])];
        }
        const insert = await client.query<{ id: number }>(
          `INSERT INTO incident_reports (school_id, kind, reporter_user_id, block_ref, url, category, blocked_at, description, access_log_ids)
           VALUES ($1, 'accidental_access', $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
          [principal.schoolId, principal.userId, ref, visit.url, visit.category, visit.time, note?.trim() ?? '', accessLogIds],
        );
        const id = insert.rows[0].id;
        await audit(client, principal, 'incident_report.create', id, { kind: 'accidental_access', blockRef: ref, url: visit.url, accessLogIds });
        return findReport(client, principal.schoolId, id);
      });
      return reply.code(201).send(created);
    },
  );

  app.post(
    '/api/reports/inappropriate-content',
    {
      config: { access: 'signed-in' },
      schema: {
        tags: ['safeguarding'],
        summary: '"I received inappropriate content" (an email, a message or a link)',
        body: ReceivedBody,
        response: { 201: IncidentReport },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { channel, description, url } = request.body;
      const created = await inTransaction(pool, async (client) => {
        const insert = await client.query<{ id: number }>(
          `INSERT INTO incident_reports (school_id, kind, reporter_user_id, channel, description, url)
           VALUES ($1, 'inappropriate_content', $2, $3, $4, $5) RETURNING id`,
          [principal.schoolId, principal.userId, channel, description.trim(), url?.trim() ?? null],
        );
        const id = insert.rows[0].id;
        await audit(client, principal, 'incident_report.create', id, { kind: 'inappropriate_content', channel });
        return findReport(client, principal.schoolId, id);
      });
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/api/my/reports',
    {
      config: { access: 'signed-in' },
      schema: { tags: ['safeguarding'], summary: 'Your own reports and their status, newest first', querystring: Type.Object(PageQuery), response: { 200: Page(IncidentReport) } },
    },
    async (request) => {
      const principal = principalOf(request);
      const limit = pageLimit(request.query);
      const after = decodeCursor(request.query.cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const { rows } = await pool.query<ReportRow>(
        `${SELECT_REPORT} WHERE r.school_id = $1 AND r.reporter_user_id = $2 AND ($3::int IS NULL OR r.id < $3) ORDER BY r.id DESC LIMIT $4`,
        [principal.schoolId, principal.userId, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(reportOf), limit, (r) => [r.id]);
    },
  );

  app.get(
    '/api/incident-reports',
    {
      config: { access: dsl },
      schema: { tags: ['safeguarding'], summary: "The DSL's queue of reports, newest first", querystring: QueueQuery, response: { 200: Page(IncidentReport) } },
    },
    async (request) => {
      const limit = pageLimit(request.query);
      const after = decodeCursor(request.query.cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const { rows } = await pool.query<ReportRow>(
        `${SELECT_REPORT} WHERE r.school_id = $1 AND ($2::text IS NULL OR r.status = $2) AND ($3::int IS NULL OR r.id < $3)
          ORDER BY r.id DESC LIMIT $4`,
        [principalOf(request).schoolId, request.query.status ?? null, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(reportOf), limit, (r) => [r.id]);
    },
  );

  app.post(
    '/api/incident-reports/:id/outcome',
    {
      config: { access: dsl },
      schema: {
        tags: ['safeguarding'],
        summary: 'Record the outcome of an open report: a genuine mistake, or it needs follow-up',
        params: IdParams,
        body: OutcomeBody,
        response: { 200: IncidentReport },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { outcome, note } = request.body;
      return inTransaction(pool, async (client) => {
        const locked = await client.query<{ status: string }>('SELECT status FROM incident_reports WHERE school_id = $1 AND id = $2 FOR UPDATE', [
          principal.schoolId,
          request.params.id,
        ]);
        if (!locked.rows[0]) throw notFound(`no incident report ${request.params.id}`);
        if (locked.rows[0].status !== 'open') throw conflict(`report ${request.params.id} already has an outcome (${locked.rows[0].status})`);
        await client.query('UPDATE incident_reports SET status = $2, outcome_note = $3, decided_by = $4, decided_at = now() WHERE id = $1', [
          request.params.id,
          outcome,
          note.trim(),
          principal.userId,
        ]);
        await audit(client, principal, 'incident_report.outcome', request.params.id, { outcome, note: note.trim() });
        return findReport(client, principal.schoolId, request.params.id);
      });
    },
  );
};
