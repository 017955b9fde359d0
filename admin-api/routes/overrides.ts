// Local overrides (it_admin): allow or block a domain or URL prefix, for
// every group or one, each with who decided, why, when and an optional
// expiry. Also the school's filtering record ("what is blocked or allowed
// and why", as the DfE filtering standard asks schools to keep): every
// override and every group rule with its reason, decider and time, streamed
// as CSV or JSON.
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { endSession, inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { assertPolicyCompiles } from '../policy-check.js';
import { badRequest, conflict, notFound } from '../problem.js';
import { IdParams, NoContent, Text } from '../schemas.js';
import { normaliseTarget } from '../targets.js';
import { csvLine } from '../csv.js';

const OverrideAction = Type.Enum(['allow', 'block']);
const Kind = Type.Enum(['domain', 'url'], { description: 'domain: the host and its subdomains; url: host/path prefix' });
const GroupKey = Type.String({ minLength: 1, maxLength: 64 });

const Override = Type.Object({
  id: Type.Integer(),
  action: OverrideAction,
  kind: Kind,
  value: Type.String(),
  groupKey: Type.Union([Type.String(), Type.Null()], { description: 'null: every group' }),
  reason: Type.String(),
  decidedBy: Type.String(),
  decidedAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  active: Type.Boolean({ description: 'false once expires_at has passed' }),
});
export type Override = Static<typeof Override>;

const ListQuery = Type.Object({
  ...PageQuery,
  status: Type.Optional(Type.Enum(['active', 'expired', 'all'], { description: 'default active' })),
  groupKey: Type.Optional(GroupKey),
  search: Type.Optional(Text({ minLength: 1, maxLength: 256, description: 'part of the domain or url' })),
});

const CreateBody = Type.Object(
  {
    action: OverrideAction,
    kind: Kind,
    value: Text({ minLength: 1, maxLength: 2048, description: 'a domain, or host/path for a url (a pasted http:// or https:// is dropped)' }),
    groupKey: Type.Optional(GroupKey),
    reason: Text({ minLength: 1, maxLength: 1000, description: 'why: required, and kept in the filtering record' }),
    expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'in the future; omitted: never expires' })),
  },
  { additionalProperties: false },
);

const RecordQuery = Type.Object({ format: Type.Optional(Type.Enum(['csv', 'json'], { description: 'default csv' })) });

const RecordItem = Type.Object({
  record: Type.Enum(['override', 'group_rule']),
  id: Type.Integer(),
  action: Type.String(),
  targetKind: Type.Enum(['domain', 'url', 'category']),
  target: Type.String(),
  group: Type.String({ description: 'a group key, or "all groups"' }),
  schedule: Type.Union([Type.String(), Type.Null()]),
  reason: Type.String(),
  decidedBy: Type.String(),
  decidedAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  status: Type.Enum(['active', 'expired']),
});
type RecordItem = Static<typeof RecordItem>;

interface OverrideRow {
  id: number;
  action: 'allow' | 'block';
  kind: 'domain' | 'url';
  value: string;
  group_key: string | null;
  reason: string;
  decided_by: string;
  decided_at: Date;
  expires_at: Date | null;
  active: boolean;
}

const SELECT_OVERRIDE = `SELECT o.id, o.action, o.kind, o.value, g.key AS group_key, o.reason, o.decided_by, o.decided_at, o.expires_at,
                                (o.expires_at IS NULL OR o.expires_at > now()) AS active
                           FROM overrides o LEFT JOIN groups g ON g.id = o.group_id`;

function overrideOf(row: OverrideRow): Override {
  return {
    id: row.id,
    action: row.action,
    kind: row.kind,
    value: row.value,
    groupKey: row.group_key,
    reason: row.reason,
    decidedBy: row.decided_by,
    decidedAt: row.decided_at.toISOString(),
    expiresAt: row.expires_at?.toISOString() ?? null,
    active: row.active,
  };
}

async function findOverride(db: Pool | PoolClient, schoolId: number, id: number, forUpdate = false): Promise<Override> {
  const { rows } = await db.query<OverrideRow>(`${SELECT_OVERRIDE} WHERE o.school_id = $1 AND o.id = $2 ${forUpdate ? 'FOR UPDATE OF o' : ''}`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no override ${id}`);
  return overrideOf(rows[0]);
}

/** "a.b.example.org" → ["a.b.example.org", "b.example.org", "example.org", "org"]. */
function domainAndParents(host: string): string[] {
  const labels = host.split('.');
  return labels.map((_, i) => labels.slice(i).join('.'));
}

/** An allow cannot reach a site on an illegal-content list (decide() blocks those first), so say so instead of recording one. */
async function assertNotIllegal(client: PoolClient, value: string, kind: 'domain' | 'url'): Promise<void> {
  const host = kind === 'domain' ? value : value.slice(0, value.indexOf('/'));
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.name FROM list_entries e JOIN categories c ON c.id = e.category_id
      WHERE c.illegal AND e.kind = 'domain' AND e.value = ANY($1) LIMIT 1`,
    [domainAndParents(host)],
  );
  if (rows[0]) throw conflict(`${host} is listed in ${rows[0].name}: illegal content is always blocked, for everyone, and no override can allow it`);
}

function audit(client: PoolClient, principal: Principal, action: string, override: Override, detail: Record<string, unknown> = {}) {
  const { id, active, ...rest } = override;
  return appendAudit(client, { schoolId: principal.schoolId, actor: actorOf(principal), action, target: `override:${id}`, detail: { ...rest, ...detail } });
}

export type NewOverride = Static<typeof CreateBody>;

/**
 * Records an override decided by `principal`, audited, inside the caller's
 * transaction: the one way an override is made, whether an admin asks for it
 * directly or approves an unblock request. Bad input is a 400 naming its
 * body/ field, a duplicate or an allow of illegal content a 409.
 */
export async function createOverride(client: PoolClient, principal: Principal, body: NewOverride): Promise<Override> {
  const value = normaliseTarget(body.kind, body.value, 'body/value');
  const expiresAt = body.expiresAt === undefined ? null : new Date(body.expiresAt);
  if (expiresAt !== null && expiresAt.getTime() <= Date.now()) {
    throw badRequest('expiresAt must be in the future', [{ name: 'body/expiresAt', reason: 'is not in the future' }]);
  }
  let groupId: number | null = null;
  if (body.groupKey !== undefined) {
    const { rows } = await client.query<{ id: number }>('SELECT id FROM groups WHERE school_id = $1 AND key = $2', [principal.schoolId, body.groupKey]);
    if (!rows[0]) throw badRequest(`there is no group "${body.groupKey}"`, [{ name: 'body/groupKey', reason: 'no such group' }]);
    groupId = rows[0].id;
  }
  if (body.action === 'allow') await assertNotIllegal(client, value, body.kind);
  const same = await client.query<{ id: number }>(
    `SELECT id FROM overrides WHERE school_id = $1 AND action = $2 AND kind = $3 AND value = $4
        AND group_id IS NOT DISTINCT FROM $5 AND (expires_at IS NULL OR expires_at > now())`,
    [principal.schoolId, body.action, body.kind, value, groupId],
  );
  if (same.rows[0]) throw conflict(`override ${same.rows[0].id} already does this (${body.action} ${value}); change or expire it instead`);
  const insert = await client.query<{ id: number }>(
    `INSERT INTO overrides (school_id, action, kind, value, group_id, reason, decided_by, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
    [principal.schoolId, body.action, body.kind, value, groupId, body.reason.trim(), principal.username, expiresAt],
  );
  await assertPolicyCompiles(client, principal.schoolId);
  const override = await findOverride(client, principal.schoolId, insert.rows[0].id);
  await audit(client, principal, 'override.create', override);
  return override;
}

// --- the filtering record ----------------------------------------------------

const RECORD_BATCH = 500;
const CSV_COLUMNS: ReadonlyArray<keyof RecordItem> = [
  'record', 'id', 'action', 'targetKind', 'target', 'group', 'schedule', 'reason', 'decidedBy', 'decidedAt', 'expiresAt', 'status',
];


interface RecordRow {
  id: number;
  action: string;
  target_kind: RecordItem['targetKind'];
  target: string;
  group_key: string | null;
  schedule: string | null;
  reason: string;
  decided_by: string;
  decided_at: Date;
  expires_at: Date | null;
  active: boolean;
}

const RECORD_QUERIES = {
  override: `SELECT o.id, o.action, o.kind AS target_kind, o.value AS target, g.key AS group_key, NULL AS schedule,
                    o.reason, o.decided_by, o.decided_at, o.expires_at, (o.expires_at IS NULL OR o.expires_at > now()) AS active
               FROM overrides o LEFT JOIN groups g ON g.id = o.group_id
              WHERE o.school_id = $1 AND o.id > $2 ORDER BY o.id LIMIT $3`,
  group_rule: `SELECT r.id, r.action, 'category' AS target_kind, c.key AS target, g.key AS group_key, s.key AS schedule,
                      r.reason, r.decided_by, r.decided_at, NULL::timestamptz AS expires_at, true AS active
                 FROM group_rules r JOIN groups g ON g.id = r.group_id JOIN categories c ON c.id = r.category_id
                 LEFT JOIN schedules s ON s.id = r.schedule_id
                WHERE r.school_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3`,
} as const;

/** Every override, then every group rule, read in batches from one consistent snapshot. */
async function* filteringRecord(pool: Pool, schoolId: number): AsyncGenerator<RecordItem> {
  const client = await pool.connect();
  let committed = false;
  let failure: unknown;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    for (const record of ['override', 'group_rule'] as const) {
      for (let afterId = 0; ; ) {
        const { rows } = await client.query<RecordRow>(RECORD_QUERIES[record], [schoolId, afterId, RECORD_BATCH]);
        for (const row of rows) {
          yield {
            record,
            id: row.id,
            action: row.action,
            targetKind: row.target_kind,
            target: row.target,
            group: row.group_key ?? 'all groups',
            schedule: row.schedule,
            reason: row.reason,
            decidedBy: row.decided_by,
            decidedAt: row.decided_at.toISOString(),
            expiresAt: row.expires_at?.toISOString() ?? null,
            status: row.active ? 'active' : 'expired',
          };
        }
        if (rows.length < RECORD_BATCH) break;
        afterId = rows[rows.length - 1].id;
      }
    }
    await client.query('COMMIT');
    committed = true;
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    // Also reached when the client goes away mid-download.
    await endSession(client, failure, !committed);
  }
}

async function* recordAsCsv(items: AsyncIterable<RecordItem>): AsyncGenerator<string> {
  yield csvLine(CSV_COLUMNS);
  for await (const item of items) yield csvLine(CSV_COLUMNS.map((column) => item[column]));
}

async function* recordAsJson(items: AsyncIterable<RecordItem>): AsyncGenerator<string> {
  yield `{"generatedAt":${JSON.stringify(new Date().toISOString())},"items":[`;
  let first = true;
  for await (const item of items) {
    yield `${first ? '' : ','}\n${JSON.stringify(item)}`;
    first = false;
  }
  yield '\n]}\n';
}

export const overrideRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['it_admin'] as const;

  app.get(
    '/api/overrides',
    {
      config: { access },
      schema: { tags: ['overrides'], summary: 'Overrides, newest first', querystring: ListQuery, response: { 200: Page(Override) } },
    },
    async (request) => {
      const { status = 'active', groupKey, search, cursor } = request.query;
      const limit = pageLimit(request.query);
      const after = decodeCursor(cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const { rows } = await pool.query<OverrideRow>(
        `${SELECT_OVERRIDE}
          WHERE o.school_id = $1
            AND ($2 = 'all' OR ($2 = 'active') = (o.expires_at IS NULL OR o.expires_at > now()))
            AND ($3::text IS NULL OR g.key = $3)
            AND ($4::text IS NULL OR strpos(lower(o.value), $4) > 0)
            AND ($5::int IS NULL OR o.id < $5)
          ORDER BY o.id DESC LIMIT $6`,
        [principalOf(request).schoolId, status, groupKey ?? null, search?.trim().toLowerCase() ?? null, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(overrideOf), limit, (o) => [o.id]);
    },
  );

  app.get(
    '/api/overrides/:id',
    { config: { access }, schema: { tags: ['overrides'], summary: 'One override', params: IdParams, response: { 200: Override } } },
    async (request) => findOverride(pool, principalOf(request).schoolId, request.params.id),
  );

  app.post(
    '/api/overrides',
    {
      config: { access },
      schema: {
        tags: ['overrides'],
        summary: 'Allow or block a domain or url prefix',
        description: 'decidedBy is the signed-in admin. An allow for a site on an illegal-content list is refused with 409.',
        body: CreateBody,
        response: { 201: Override },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const created = await inTransaction(pool, (client) => createOverride(client, principal, request.body));
      return reply.code(201).send(created);
    },
  );

  app.post(
    '/api/overrides/:id/expire',
    {
      config: { access },
      schema: { tags: ['overrides'], summary: 'Expire an override now; it stays in the filtering record', params: IdParams, response: { 200: Override } },
    },
    async (request) => {
      const principal = principalOf(request);
      return inTransaction(pool, async (client) => {
        const before = await findOverride(client, principal.schoolId, request.params.id, true);
        if (!before.active) return before;
        await client.query('UPDATE overrides SET expires_at = now() WHERE id = $1', [before.id]);
        const after = await findOverride(client, principal.schoolId, before.id);
        await audit(client, principal, 'override.expire', after, { previousExpiresAt: before.expiresAt });
        return after;
      });
    },
  );

  app.delete(
    '/api/overrides/:id',
    {
      config: { access },
      schema: {
        tags: ['overrides'],
        summary: 'Delete an override (it leaves the filtering record; the audit log keeps it). To end one but keep the record, expire it.',
        params: IdParams,
        response: { 204: NoContent },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await inTransaction(pool, async (client) => {
        const before = await findOverride(client, principal.schoolId, request.params.id, true);
        await client.query('DELETE FROM overrides WHERE id = $1', [before.id]);
        await audit(client, principal, 'override.delete', before);
      });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/api/filtering-record',
    {
      config: { access },
      schema: {
        tags: ['overrides'],
        summary: 'What is blocked or allowed and why: every override and group rule with its reason, decider and time',
        description: 'Streamed. CSV (default) with a header row, or JSON {generatedAt, items}.',
        querystring: RecordQuery,
        response: {
          200: {
            description: 'the filtering record',
            // Typed as the stream the handler sends; the schemas document what it carries.
            content: {
              'text/csv': { schema: Type.Unsafe<Readable>(Type.String()) },
              'application/json': {
                schema: Type.Unsafe<Readable>(Type.Object({ generatedAt: Type.String({ format: 'date-time' }), items: Type.Array(RecordItem) })),
              },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const format = request.query.format ?? 'csv';
      const items = filteringRecord(pool, principalOf(request).schoolId);
      const day = new Date().toISOString().slice(0, 10);
      return reply
        .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
        .header('content-disposition', `attachment; filename="filtering-record-${day}.${format}"`)
        .send(Readable.from(format === 'csv' ? recordAsCsv(items) : recordAsJson(items)));
    },
  );
};
