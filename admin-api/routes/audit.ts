// The audit log: GET /api/audit (a page at a time, newest first) and
// GET /api/audit/verify (is the hash chain intact?).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Pool } from '../../core/db.js';
import { listAudit, verifyAuditChain } from '../audit.js';
import { principalOf } from '../auth/principal.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';

const AuditEntry = Type.Object({
  id: Type.Integer(),
  at: Type.String({ format: 'date-time' }),
  actorUserId: Type.Union([Type.Integer(), Type.Null()]),
  actorUsername: Type.String(),
  action: Type.String(),
  target: Type.String(),
  detail: Type.Record(Type.String(), Type.Unknown()),
  hash: Type.String({ description: 'SHA-256 of the previous hash and this row, hex' }),
});

const Verification = Type.Object({
  ok: Type.Boolean(),
  rows: Type.Integer({ description: 'rows checked and found sound' }),
  headHash: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'hash of the newest row; keep a copy elsewhere to detect truncation' })),
  firstBrokenId: Type.Optional(Type.Integer()),
  reason: Type.Optional(Type.String()),
});

export const auditRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  app.get(
    '/api/audit',
    {
      config: { access: ['it_admin'] },
      schema: {
        tags: ['audit'],
        summary: 'The audit log, newest first',
        querystring: Type.Object({
          ...PageQuery,
          action: Type.Optional(Type.String({ pattern: '^[a-z_]+(\\.[a-z_]+)+$', maxLength: 64, description: 'e.g. user.create' })),
        }),
        response: { 200: Page(AuditEntry) },
      },
    },
    async (request) => {
      const limit = pageLimit(request.query);
      const before = decodeCursor(request.query.cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const rows = await listAudit(pool, principalOf(request).schoolId, {
        beforeId: before?.[0],
        limit: limit + 1,
        action: request.query.action,
      });
      return pageOf(rows, limit, (row) => [row.id]);
    },
  );

  app.get(
    '/api/audit/verify',
    {
      config: { access: ['it_admin', 'headteacher', 'governor'] },
      schema: { tags: ['audit'], summary: "Check the school's audit hash chain from its first row", response: { 200: Verification } },
    },
    async (request) => verifyAuditChain(pool, principalOf(request).schoolId),
  );
};
