// "I need this for teaching": a person asks, from one of their own blocks,
// for the site (or the URL prefix) to be allowed, with a reason. IT admins
// approve — which makes an allow override with the request's reason, the
// approver's expiry and the approver as decider, through the same
// createOverride the overrides route uses — or refuse with a reason. The
// requester sees the decision.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { findOwnBlock } from '../../safeguarding/blocked-visit.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { badRequest, conflict, notFound } from '../problem.js';
import { IdParams, Text } from '../schemas.js';
import { BlockRef } from './incident-reports.js';
import { createOverride } from './overrides.js';

const Status = Type.Enum(['pending', 'approved', 'refused']);
const Scope = Type.Enum(['domain', 'url'], { description: 'domain: the whole site (default); url: the blocked page and what lies under it' });

const UnblockRequest = Type.Object({
  id: Type.Integer(),
  requester: Type.String(),
  requestedAt: Type.String({ format: 'date-time' }),
  blockRef: Type.String(),
  url: Type.String(),
  category: Type.Union([Type.String(), Type.Null()]),
  targetKind: Scope,
  target: Type.String({ description: 'what an approval allows' }),
  reason: Type.String(),
  status: Status,
  decidedBy: Type.Union([Type.String(), Type.Null()]),
  decidedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  decisionNote: Type.Union([Type.String(), Type.Null()]),
  overrideId: Type.Union([Type.Integer(), Type.Null()]),
  overrideExpiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
type UnblockRequest = Static<typeof UnblockRequest>;

interface RequestRow {
  id: number;
  requester: string;
  requested_at: Date;
  block_ref: string;
  url: string;
  category: string | null;
  target_kind: 'domain' | 'url';
  target: string;
  reason: string;
  status: UnblockRequest['status'];
  decided_by: string | null;
  decided_at: Date | null;
  decision_note: string | null;
  override_id: number | null;
  override_expires_at: Date | null;
}

const SELECT_REQUEST = `SELECT r.id, u.username AS requester, r.requested_at, r.block_ref, r.url, r.category, r.target_kind, r.target, r.reason,
                               r.status, d.username AS decided_by, r.decided_at, r.decision_note, r.override_id, o.expires_at AS override_expires_at
                          FROM unblock_requests r JOIN users u ON u.id = r.requester_user_id
                          LEFT JOIN users d ON d.id = r.decided_by LEFT JOIN overrides o ON o.id = r.override_id`;

function requestOf(row: RequestRow): UnblockRequest {
  return {
    id: row.id,
    requester: row.requester,
    requestedAt: row.requested_at.toISOString(),
    blockRef: row.block_ref,
    url: row.url,
    category: row.category,
    targetKind: row.target_kind,
    target: row.target,
    reason: row.reason,
    status: row.status,
    decidedBy: row.decided_by,
    decidedAt: row.decided_at?.toISOString() ?? null,
    decisionNote: row.decision_note,
    overrideId: row.override_id,
    overrideExpiresAt: row.override_expires_at?.toISOString() ?? null,
  };
}

async function findRequest(db: Pool | PoolClient, schoolId: number, id: number): Promise<UnblockRequest> {
  const { rows } = await db.query<RequestRow>(`${SELECT_REQUEST} WHERE r.school_id = $1 AND r.id = $2`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no unblock request ${id}`);
  return requestOf(rows[0]);
}

/** The pending request, locked for the decision; a 409 once decided. */
async function lockPending(client: PoolClient, schoolId: number, id: number): Promise<UnblockRequest> {
  await client.query('SELECT id FROM unblock_requests WHERE school_id = $1 AND id = $2 FOR UPDATE', [schoolId, id]);
  const request = await findRequest(client, schoolId, id);
  if (request.status !== 'pending') throw conflict(`unblock request ${id} was already ${request.status}`);
  return request;
}

function audit(client: PoolClient, principal: Principal, action: string, id: number, detail: Record<string, unknown>) {
  return appendAudit(client, { schoolId: principal.schoolId, actor: actorOf(principal), action, target: `unblock_request:${id}`, detail });
}

/** What an approval would allow: the host, or host + path for a url scope (no query string). */
function targetOf(scope: 'domain' | 'url', url: string): string {
  const parsed = new URL(url);
  if (scope === 'domain' || parsed.pathname === '/') return parsed.hostname.replace(/^\[|\]$/g, '');
  return `${parsed.hostname}${parsed.pathname}`;
}

const CreateBody = Type.Object(
  { ref: BlockRef, reason: Text({ minLength: 1, maxLength: 1000, description: 'why it is needed for teaching' }), scope: Type.Optional(Scope) },
  { additionalProperties: false },
);

const ApproveBody = Type.Object(
  {
    expiresAt: Type.String({ format: 'date-time', description: 'required: when the allow ends (in the future)' }),
    groupKey: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'only this group; omitted: every group' })),
    note: Type.Optional(Text({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);

const RefuseBody = Type.Object({ reason: Text({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false });

export const unblockRequestRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const itAdmin = ['it_admin'] as const;

  app.post(
    '/api/unblock-requests',
    {
      config: { access: 'signed-in' },
      schema: {
        tags: ['safeguarding'],
        summary: '"I need this for teaching": ask for one of your own blocks to be lifted, with a reason',
        body: CreateBody,
        response: { 201: UnblockRequest },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { ref, reason, scope = 'domain' } = request.body;
      const created = await inTransaction(pool, async (client) => {
        const visit = await findOwnBlock(client, principal.schoolId, principal.userId, ref);
        const target = targetOf(scope, visit.url);
        const kind = target.includes('/') ? 'url' : 'domain';
        const pending = await client.query<{ id: number }>(
          "SELECT id FROM unblock_requests WHERE school_id = $1 AND requester_user_id = $2 AND target = $3 AND status = 'pending'",
          [principal.schoolId, principal.userId, target],
        );
        if (pending.rows[0]) throw conflict(`you already asked for ${target} (request ${pending.rows[0].id}); it is waiting for an IT admin`);
        const insert = await client.query<{ id: number }>(
          `INSERT INTO unblock_requests (school_id, requester_user_id, block_ref, url, category, target_kind, target, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
          [principal.schoolId, principal.userId, ref, visit.url, visit.category, kind, target, reason.trim()],
        );
        const id = insert.rows[0].id;
        await audit(client, principal, 'unblock_request.create', id, { blockRef: ref, target, reason: reason.trim() });
        return findRequest(client, principal.schoolId, id);
      });
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/api/my/unblock-requests',
    {
      config: { access: 'signed-in' },
      schema: { tags: ['safeguarding'], summary: 'Your own unblock requests and their decisions, newest first', querystring: Type.Object(PageQuery), response: { 200: Page(UnblockRequest) } },
    },
    async (request) => {
      const principal = principalOf(request);
      const limit = pageLimit(request.query);
      const after = decodeCursor(request.query.cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const { rows } = await pool.query<RequestRow>(
        `${SELECT_REQUEST} WHERE r.school_id = $1 AND r.requester_user_id = $2 AND ($3::int IS NULL OR r.id < $3) ORDER BY r.id DESC LIMIT $4`,
        [principal.schoolId, principal.userId, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(requestOf), limit, (r) => [r.id]);
    },
  );

  app.get(
    '/api/unblock-requests',
    {
      config: { access: itAdmin },
      schema: {
        tags: ['safeguarding'],
        summary: 'Unblock requests, newest first',
        querystring: Type.Object({ ...PageQuery, status: Type.Optional(Status) }),
        response: { 200: Page(UnblockRequest) },
      },
    },
    async (request) => {
      const limit = pageLimit(request.query);
      const after = decodeCursor(request.query.cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const { rows } = await pool.query<RequestRow>(
        `${SELECT_REQUEST} WHERE r.school_id = $1 AND ($2::text IS NULL OR r.status = $2) AND ($3::int IS NULL OR r.id < $3)
          ORDER BY r.id DESC LIMIT $4`,
        [principalOf(request).schoolId, request.query.status ?? null, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(requestOf), limit, (r) => [r.id]);
    },
  );

  app.post(
    '/api/unblock-requests/:id/approve',
    {
      config: { access: itAdmin },
      schema: {
        tags: ['safeguarding'],
        summary: "Approve: allow the request's target until expiresAt, with the request's reason, decided by you",
        params: IdParams,
        body: ApproveBody,
        response: { 200: UnblockRequest },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { expiresAt, groupKey, note } = request.body;
      if (!(new Date(expiresAt).getTime() > Date.now())) {
        throw badRequest('expiresAt must be in the future', [{ name: 'body/expiresAt', reason: 'is not in the future' }]);
      }
      return inTransaction(pool, async (client) => {
        const pending = await lockPending(client, principal.schoolId, request.params.id);
        const override = await createOverride(client, principal, {
          action: 'allow',
          kind: pending.targetKind,
          value: pending.target,
          groupKey,
          reason: `unblock request ${pending.id} from ${pending.requester}: ${pending.reason}`,
          expiresAt,
        });
        await client.query(
          "UPDATE unblock_requests SET status = 'approved', decided_by = $2, decided_at = now(), decision_note = $3, override_id = $4 WHERE id = $1",
          [pending.id, principal.userId, note?.trim() || null, override.id],
        );
        await audit(client, principal, 'unblock_request.approve', pending.id, { overrideId: override.id, target: pending.target, expiresAt, groupKey });
        return findRequest(client, principal.schoolId, pending.id);
      });
    },
  );

  app.post(
    '/api/unblock-requests/:id/refuse',
    {
      config: { access: itAdmin },
      schema: { tags: ['safeguarding'], summary: 'Refuse, with a reason the requester sees', params: IdParams, body: RefuseBody, response: { 200: UnblockRequest } },
    },
    async (request) => {
      const principal = principalOf(request);
      const reason = request.body.reason.trim();
      return inTransaction(pool, async (client) => {
        const pending = await lockPending(client, principal.schoolId, request.params.id);
        await client.query("UPDATE unblock_requests SET status = 'refused', decided_by = $2, decided_at = now(), decision_note = $3 WHERE id = $1", [
          pending.id,
          principal.userId,
          reason,
        ]);
        await audit(client, principal, 'unblock_request.refuse', pending.id, { target: pending.target, reason });
        return findRequest(client, principal.schoolId, pending.id);
      });
    },
  );
};
