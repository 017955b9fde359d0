// Investigations: the only way to read a member of staff's browsing history.
// The headteacher requests one into a member of staff (governors request one
// into a headteacher) with a reason, a past time window and an expiry at most
// 30 days ahead; a governor who is neither the requester nor the subject
// approves or refuses it; the requester or a governor may close it early.
// Who sees which investigation is canSeeInvestigation (history-access.ts):
// the subject never does. Every step is audited in its own transaction.
//
// The audit rows name the subject, the window and the expiry but not the
// reason or the notes: the audit log is read by IT admins, who may know that
// an investigation happened but not its grounds (those stay here, for the
// headteacher and governors).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import type { Role } from '../../core/users.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { canSeeInvestigation, overseerRoleOf, PUPILS_GROUP_KEY } from '../history-access.js';
import { assertOrdered, DateTime } from '../instants.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { badRequest, conflict, notFound, Problem } from '../problem.js';
import { IdParams, Text } from '../schemas.js';

const MAX_EXPIRY_DAYS = 30;
const MAX_WINDOW_DAYS = 366;
// Allowance for a client clock a little ahead of ours when it writes "now" as the window's end.
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

const Status = Type.Enum(['requested', 'approved', 'refused', 'closed']);
const Person = Type.Object({ id: Type.Integer(), username: Type.String(), displayName: Type.String() });
const Timestamp = Type.String({ format: 'date-time' });
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const Investigation = Type.Object({
  id: Type.Integer(),
  subject: Person,
  reason: Type.String(),
  requestedBy: Person,
  requestedAt: Timestamp,
  windowStart: Timestamp,
  windowEnd: Timestamp,
  expiresAt: Timestamp,
  status: Status,
  expired: Type.Boolean({ description: 'past its expiry: it no longer grants access, whatever its status' }),
  decidedBy: Nullable(Person),
  decidedAt: Nullable(Timestamp),
  decisionNote: Nullable(Type.String()),
  closedBy: Nullable(Person),
  closedAt: Nullable(Timestamp),
  closeNote: Nullable(Type.String()),
});
type Investigation = Static<typeof Investigation>;

const Note = Text({ minLength: 1, maxLength: 2000 });

const RequestBody = Type.Object(
  {
    subjectUserId: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }),
    reason: Note,
    windowStart: DateTime('start of the history that may be read'),
    windowEnd: DateTime('end of the history that may be read (exclusive); not in the future'),
    expiresAt: DateTime(`when the approval stops granting access; at most ${MAX_EXPIRY_DAYS} days ahead`),
  },
  { additionalProperties: false },
);
const DecisionBody = Type.Object({ note: Note }, { additionalProperties: false });
const CloseBody = Type.Object({ note: Type.Optional(Note) }, { additionalProperties: false });
const ListQuery = Type.Object({ ...PageQuery, status: Type.Optional(Status) });

interface InvestigationRow {
  id: number;
  subject_user_id: number;
  subject_username: string;
  subject_display_name: string;
  reason: string;
  requested_by: number;
  requester_username: string;
  requester_display_name: string;
  requested_at: Date;
  window_start: Date;
  window_end: Date;
  expires_at: Date;
  expired: boolean;
  status: Investigation['status'];
  decided_by: number | null;
  decider_username: string | null;
  decider_display_name: string | null;
  decided_at: Date | null;
  decision_note: string | null;
  closed_by: number | null;
  closer_username: string | null;
  closer_display_name: string | null;
  closed_at: Date | null;
  close_note: string | null;
}

const SELECT_INVESTIGATION = `
  SELECT i.id, i.subject_user_id, s.username AS subject_username, s.display_name AS subject_display_name, i.reason,
         i.requested_by, r.username AS requester_username, r.display_name AS requester_display_name, i.requested_at,
         i.window_start, i.window_end, i.expires_at, i.expires_at <= now() AS expired, i.status,
         i.decided_by, d.username AS decider_username, d.display_name AS decider_display_name, i.decided_at, i.decision_note,
         i.closed_by, c.username AS closer_username, c.display_name AS closer_display_name, i.closed_at, i.close_note
    FROM investigations i
    JOIN users s ON s.id = i.subject_user_id
    JOIN users r ON r.id = i.requested_by
    LEFT JOIN users d ON d.id = i.decided_by
    LEFT JOIN users c ON c.id = i.closed_by`;

function personOf(id: number | null, username: string | null, displayName: string | null) {
  return id === null ? null : { id, username: username ?? '', displayName: displayName ?? '' };
}

function investigationOf(row: InvestigationRow): Investigation {
  return {
    id: row.id,
    subject: { id: row.subject_user_id, username: row.subject_username, displayName: row.subject_display_name },
    reason: row.reason,
    requestedBy: { id: row.requested_by, username: row.requester_username, displayName: row.requester_display_name },
    requestedAt: row.requested_at.toISOString(),
    windowStart: row.window_start.toISOString(),
    windowEnd: row.window_end.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    status: row.status,
    expired: row.expired,
    decidedBy: personOf(row.decided_by, row.decider_username, row.decider_display_name),
    decidedAt: row.decided_at?.toISOString() ?? null,
    decisionNote: row.decision_note,
    closedBy: personOf(row.closed_by, row.closer_username, row.closer_display_name),
    closedAt: row.closed_at?.toISOString() ?? null,
    closeNote: row.close_note,
  };
}

/** The investigation if `principal` may know of it (locked for the transaction when `forUpdate`); otherwise 404. */
async function findVisible(db: Pool | PoolClient, principal: Principal, id: number, forUpdate = false): Promise<Investigation> {
  const { rows } = await db.query<InvestigationRow>(
    `${SELECT_INVESTIGATION} WHERE i.school_id = $1 AND i.id = $2 ${forUpdate ? 'FOR UPDATE OF i' : ''}`,
    [principal.schoolId, id],
  );
  const row = rows[0];
  if (!row || !canSeeInvestigation(principal, { subjectUserId: row.subject_user_id, requestedBy: row.requested_by })) {
    throw notFound(`no investigation ${id}`);
  }
  return investigationOf(row);
}

function audit(client: PoolClient, principal: Principal, action: string, investigation: Investigation, detail: Record<string, unknown> = {}) {
  return appendAudit(client, {
    schoolId: principal.schoolId,
    actor: actorOf(principal),
    action,
    target: `user:${investigation.subject.username}`,
    detail: {
      investigationId: investigation.id,
      subjectUserId: investigation.subject.id,
      windowStart: investigation.windowStart,
      windowEnd: investigation.windowEnd,
      expiresAt: investigation.expiresAt,
      ...detail,
    },
  });
}

interface SubjectRow {
  id: number;
  group_key: string;
  roles: Role[];
}

/** Refuses, naming the field, any request the policy does not allow; returns nothing when it may go ahead. */
async function checkRequest(client: PoolClient, principal: Principal, body: Static<typeof RequestBody>): Promise<void> {
  const { rows } = await client.query<SubjectRow>(
    'SELECT u.id, g.key AS group_key, u.roles FROM users u JOIN groups g ON g.id = u.group_id WHERE u.school_id = $1 AND u.id = $2',
    [principal.schoolId, body.subjectUserId],
  );
  const subject = rows[0];
  const subjectField = 'body/subjectUserId';
  if (!subject) throw badRequest(`there is no user ${body.subjectUserId}`, [{ name: subjectField, reason: 'no such user' }]);
  if (subject.id === principal.userId) {
    throw badRequest('you may read your own history without an investigation', [{ name: subjectField, reason: 'is you' }]);
  }
  if (subject.group_key === PUPILS_GROUP_KEY) {
    throw badRequest("pupils' histories are read by the DSL; investigations are for staff", [{ name: subjectField, reason: 'is a pupil' }]);
  }
  const overseer = overseerRoleOf(subject);
  if (!principal.roles.includes(overseer)) {
    throw new Problem(
      403,
      'forbidden',
      overseer === 'governor' ? 'an investigation into a headteacher is requested by a governor' : 'an investigation into a member of staff is requested by the headteacher',
    );
  }

  assertOrdered({ name: 'body/windowStart', value: body.windowStart }, { name: 'body/windowEnd', value: body.windowEnd });
  const now = Date.now();
  const windowStart = Date.parse(body.windowStart);
  const windowEnd = Date.parse(body.windowEnd);
  const expiresAt = Date.parse(body.expiresAt);
  if (windowEnd > now + CLOCK_SKEW_MS) {
    throw badRequest('the window may not reach into the future: an investigation reviews what has happened', [
      { name: 'body/windowEnd', reason: 'is in the future' },
    ]);
  }
  if (windowEnd - windowStart > MAX_WINDOW_DAYS * DAY_MS) {
    throw badRequest(`the window may be at most ${MAX_WINDOW_DAYS} days long`, [{ name: 'body/windowStart', reason: 'window too long' }]);
  }
  if (expiresAt <= now) throw badRequest('the expiry must be in the future', [{ name: 'body/expiresAt', reason: 'is in the past' }]);
  if (expiresAt > now + MAX_EXPIRY_DAYS * DAY_MS) {
    throw badRequest(`an investigation may run for at most ${MAX_EXPIRY_DAYS} days`, [
      { name: 'body/expiresAt', reason: `more than ${MAX_EXPIRY_DAYS} days ahead` },
    ]);
  }
}

export const investigationRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['headteacher', 'governor'] as const;

  app.get(
    '/api/investigations',
    {
      config: { access },
      schema: {
        tags: ['investigations'],
        summary: 'Investigations, newest first: governors see all but any into themselves; a headteacher, those they requested',
        querystring: ListQuery,
        response: { 200: Page(Investigation) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const limit = pageLimit(request.query);
      const before = decodeCursor(request.query.cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      // The same rule as canSeeInvestigation, in SQL.
      const { rows } = await pool.query<InvestigationRow>(
        `${SELECT_INVESTIGATION}
          WHERE i.school_id = $1 AND i.subject_user_id <> $2 AND ($3 OR i.requested_by = $2)
            AND ($4::text IS NULL OR i.status = $4)
            AND ($5::int IS NULL OR i.id < $5)
          ORDER BY i.id DESC LIMIT $6`,
        [principal.schoolId, principal.userId, principal.roles.includes('governor'), request.query.status ?? null, before?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(investigationOf), limit, (investigation) => [investigation.id]);
    },
  );

  app.get(
    '/api/investigations/:id',
    {
      config: { access },
      schema: { tags: ['investigations'], summary: 'One investigation', params: IdParams, response: { 200: Investigation } },
    },
    async (request) => findVisible(pool, principalOf(request), request.params.id),
  );

  app.post(
    '/api/investigations',
    {
      config: { access },
      schema: {
        tags: ['investigations'],
        summary: "Request an investigation into a member of staff's history; a governor must approve it",
        body: RequestBody,
        response: { 201: Investigation },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const created = await inTransaction(pool, async (client) => {
        await checkRequest(client, principal, body);
        const { rows } = await client.query<{ id: number }>(
          `INSERT INTO investigations (school_id, subject_user_id, reason, requested_by, window_start, window_end, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
          [principal.schoolId, body.subjectUserId, body.reason.trim(), principal.userId, body.windowStart, body.windowEnd, body.expiresAt],
        );
        const investigation = await findVisible(client, principal, rows[0].id);
        await audit(client, principal, 'investigation.request', investigation);
        return investigation;
      });
      return reply.code(201).send(created);
    },
  );

  for (const decision of ['approve', 'refuse'] as const) {
    app.post(
      `/api/investigations/:id/${decision}`,
      {
        config: { access: ['governor'] },
        schema: {
          tags: ['investigations'],
          summary: `${decision === 'approve' ? 'Approve' : 'Refuse'} a requested investigation, with a note (a governor other than the requester)`,
          params: IdParams,
          body: DecisionBody,
          response: { 200: Investigation },
        },
      },
      async (request) => {
        const principal = principalOf(request);
        return inTransaction(pool, async (client) => {
          // Invisible to its subject, so a governor cannot decide one into themselves.
          const before = await findVisible(client, principal, request.params.id, true);
          if (before.requestedBy.id === principal.userId) {
            throw new Problem(403, 'forbidden', 'you requested this investigation; another governor must decide it');
          }
          if (before.status !== 'requested') throw conflict(`investigation ${before.id} is already ${before.status}`);
          if (before.expired) throw conflict(`investigation ${before.id} expired before it was decided; request a new one`);
          const status = decision === 'approve' ? 'approved' : 'refused';
          await client.query(
            'UPDATE investigations SET status = $2, decided_by = $3, decided_at = now(), decision_note = $4 WHERE id = $1',
            [before.id, status, principal.userId, request.body.note.trim()],
          );
          await audit(client, principal, `investigation.${decision}`, before);
          return findVisible(client, principal, before.id);
        });
      },
    );
  }

  app.post(
    '/api/investigations/:id/close',
    {
      config: { access },
      schema: {
        tags: ['investigations'],
        summary: 'Close an investigation early (its requester or a governor): it grants no more access',
        params: IdParams,
        body: CloseBody,
        response: { 200: Investigation },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return inTransaction(pool, async (client) => {
        const before = await findVisible(client, principal, request.params.id, true);
        if (before.status !== 'requested' && before.status !== 'approved') {
          throw conflict(`investigation ${before.id} is already ${before.status}`);
        }
        await client.query(
          "UPDATE investigations SET status = 'closed', closed_by = $2, closed_at = now(), close_note = $3 WHERE id = $1",
          [before.id, principal.userId, request.body.note?.trim() ?? null],
        );
        await audit(client, principal, 'investigation.close', before, { statusBefore: before.status });
        return findVisible(client, principal, before.id);
      });
    },
  );
};
