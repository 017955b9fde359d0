// One person's browsing history: a page at a time (newest first) or as a
// streamed CSV export, filtered by time, host, category and action. Who may
// read whose history is decided in history-access.ts; every read and every
// refusal is written to the audit log. A page's audit row commits in the same
// transaction as the read; an export's commits before the first row leaves,
// so a download cut short is still on record (an export begun before an
// investigation expires or closes runs to its end).
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { endSession, inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import type { Role } from '../../core/users.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { csvLine } from '../csv.js';
import { decideHistoryAccess, type HistoryGrant, type HistorySubject } from '../history-access.js';
import { assertOrdered, DateTime } from '../instants.js';
import { decodeCursor, type CursorKey, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { notFound, Problem } from '../problem.js';
import { IdParams } from '../schemas.js';

const EXPORT_BATCH = 1000;

const HistoryFilters = {
  from: Type.Optional(DateTime('earliest time, inclusive (RFC 3339 with an offset)')),
  to: Type.Optional(DateTime('latest time, exclusive')),
  host: Type.Optional(
    Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9._:-]+$', description: 'part of the host name (see hostMatch)' }),
  ),
  hostMatch: Type.Optional(Type.Enum(['contains', 'prefix'], { description: 'how host matches; default contains' })),
  category: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,64}$', description: 'a category key the request fell in' })),
  action: Type.Optional(Type.Enum(['allowed', 'blocked', 'monitored'])),
  investigationId: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'the approved investigation to read under, where one is needed' }),
  ),
};
const HistoryQuery = Type.Object({ ...PageQuery, ...HistoryFilters });
const ExportQuery = Type.Object(HistoryFilters);
type Filters = Static<typeof ExportQuery>;

const HistoryEntry = Type.Object({
  id: Type.String({ format: 'uuid' }),
  time: Type.String({ format: 'date-time' }),
  clientIp: Type.String(),
  method: Type.String(),
  scheme: Type.String(),
  host: Type.String(),
  port: Type.Integer(),
  path: Type.Union([Type.String(), Type.Null()]),
  categories: Type.Array(Type.String()),
  category: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  rule: Type.String(),
  status: Type.Integer(),
  bytesIn: Type.Integer(),
  bytesOut: Type.Integer(),
  durationMs: Type.Integer(),
  blockRef: Type.Union([Type.String(), Type.Null()]),
});
type HistoryEntry = Static<typeof HistoryEntry>;

const Access = Type.Object(
  {
    basis: Type.Enum(['self', 'pupil', 'investigation']),
    investigationId: Type.Optional(Type.Integer()),
    windowStart: Type.Optional(Type.String({ format: 'date-time', description: 'rows before this are never returned' })),
    windowEnd: Type.Optional(Type.String({ format: 'date-time', description: 'rows from this on are never returned' })),
    expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { description: 'why this history may be read, and the limits that come with it' },
);

const HistoryPage = Type.Object({
  subject: Type.Object({ id: Type.Integer(), username: Type.String() }),
  access: Access,
  items: Type.Array(HistoryEntry),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
});

// The time is carried at full (microsecond) precision so that no row is skipped or repeated between pages.
const Cursor = Type.Tuple([Type.String({ format: 'date-time' }), Type.String({ format: 'uuid' })]);

interface HistoryRow {
  id: string;
  time: Date;
  time_key: string;
  client_ip: string;
  method: string;
  scheme: string;
  host: string;
  port: number;
  path: string | null;
  categories: string[];
  category: string | null;
  action: string;
  rule: string;
  status: number;
  bytes_in: string;
  bytes_out: string;
  duration_ms: number;
  block_ref: string | null;
}

function entryOf(row: HistoryRow): HistoryEntry {
  return {
    id: row.id,
    time: row.time.toISOString(),
    clientIp: row.client_ip,
    method: row.method,
    scheme: row.scheme,
    host: row.host,
    port: row.port,
    path: row.path,
    categories: row.categories,
    category: row.category,
    action: row.action,
    rule: row.rule,
    status: row.status,
    bytesIn: Number(row.bytes_in),
    bytesOut: Number(row.bytes_out),
    durationMs: row.duration_ms,
    blockRef: row.block_ref,
  };
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * The rows of one person's history that match, newest first, after `after`.
 * Only the conditions in use are written into the query (each value a
 * parameter), so the planner can skip the day partitions outside the range.
 */
async function historyRows(
  db: PoolClient,
  scope: { schoolId: number; subjectId: number; grant: HistoryGrant },
  filters: Filters,
  after: CursorKey | undefined,
  limit: number,
): Promise<HistoryRow[]> {
  const params: unknown[] = [scope.schoolId, scope.subjectId];
  const where = ['l.school_id = $1', 'l.user_id = $2'];
  const add = (condition: (p: string) => string, value: unknown) => {
    params.push(value);
    where.push(condition(`$${params.length}`));
  };
  if (filters.from !== undefined) add((p) => `l.time >= ${p}::timestamptz`, filters.from);
  if (filters.to !== undefined) add((p) => `l.time < ${p}::timestamptz`, filters.to);
  if (scope.grant.basis === 'investigation') {
    add((p) => `l.time >= ${p}::timestamptz`, scope.grant.windowStart);
    add((p) => `l.time < ${p}::timestamptz`, scope.grant.windowEnd);
  }
  if (filters.host !== undefined) {
    const host = escapeLike(filters.host.toLowerCase());
    add((p) => `l.host LIKE ${p}`, filters.hostMatch === 'prefix' ? `${host}%` : `%${host}%`);
  }
  if (filters.category !== undefined) add((p) => `l.categories @> ARRAY[${p}::text]`, filters.category);
  if (filters.action !== undefined) add((p) => `l.action = ${p}`, filters.action);
  if (after !== undefined) {
    params.push(after[0], after[1]);
    where.push(`(l.time, l.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
  }
  params.push(limit);
  const { rows } = await db.query<HistoryRow>(
    `SELECT l.id, l.time, to_char(l.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time_key,
            host(l.client_ip) AS client_ip, l.method, l.scheme, l.host, l.port, l.path, l.categories, l.category,
            l.action, l.rule, l.status, l.bytes_in, l.bytes_out, l.duration_ms, l.block_ref
       FROM access_log l
      WHERE ${where.join(' AND ')}
      ORDER BY l.time DESC, l.id DESC
      LIMIT $${params.length}`,
    params,
  );
  return rows;
}

async function findSubject(db: PoolClient, schoolId: number, id: number): Promise<HistorySubject | undefined> {
  const { rows } = await db.query<{ id: number; username: string; group_key: string; roles: Role[] }>(
    'SELECT u.id, u.username, g.key AS group_key, u.roles FROM users u JOIN groups g ON g.id = u.group_id WHERE u.school_id = $1 AND u.id = $2',
    [schoolId, id],
  );
  const row = rows[0];
  return row && { id: row.id, username: row.username, groupKey: row.group_key, roles: row.roles };
}

function accessOf(grant: HistoryGrant): Static<typeof Access> {
  if (grant.basis !== 'investigation') return { basis: grant.basis };
  return {
    basis: grant.basis,
    investigationId: grant.investigationId,
    windowStart: grant.windowStart.toISOString(),
    windowEnd: grant.windowEnd.toISOString(),
    expiresAt: grant.expiresAt.toISOString(),
  };
}

type Authorised = { subject: HistorySubject; grant: HistoryGrant } | { refused: Problem };

/**
 * Decides whether `principal` may read user `subjectId`'s history; a refusal
 * is audited (on `client`, whose transaction must then commit) and returned,
 * not thrown, so the caller can commit the audit row before answering.
 */
async function authorise(client: PoolClient, principal: Principal, subjectId: number, filters: Filters): Promise<Authorised> {
  const audit = (target: string, detail: Record<string, unknown>) =>
    appendAudit(client, { schoolId: principal.schoolId, actor: actorOf(principal), action: 'history.refused', target, detail });
  const subject = await findSubject(client, principal.schoolId, subjectId);
  if (!subject) {
    await audit(`user-id:${subjectId}`, { userId: subjectId, filters, investigationId: filters.investigationId ?? null, reason: 'no such user' });
    return { refused: notFound(`no user ${subjectId}`) };
  }
  const decision = await decideHistoryAccess(client, principal, subject, filters.investigationId);
  if (!decision.granted) {
    await audit(`user:${subject.username}`, {
      userId: subject.id,
      filters,
      investigationId: filters.investigationId ?? null,
      reason: decision.auditReason,
    });
    return { refused: new Problem(403, 'history-refused', decision.reason) };
  }
  return { subject, grant: decision.grant };
}

function auditRead(
  client: PoolClient,
  principal: Principal,
  action: 'history.read' | 'history.export',
  authorised: { subject: HistorySubject; grant: HistoryGrant },
  detail: Record<string, unknown>,
) {
  const { subject, grant } = authorised;
  return appendAudit(client, {
    schoolId: principal.schoolId,
    actor: actorOf(principal),
    action,
    target: `user:${subject.username}`,
    detail: {
      userId: subject.id,
      basis: grant.basis,
      investigationId: grant.basis === 'investigation' ? grant.investigationId : null,
      ...detail,
    },
  });
}

function checkFilters(filters: Filters): void {
  if (filters.from !== undefined && filters.to !== undefined) {
    assertOrdered({ name: 'query/from', value: filters.from }, { name: 'query/to', value: filters.to });
  }
}

const CSV_COLUMNS = [
  'time', 'username', 'clientIp', 'method', 'scheme', 'host', 'port', 'path', 'categories', 'category', 'action', 'rule',
  'status', 'bytesIn', 'bytesOut', 'durationMs', 'blockRef',
] as const;

function csvRow(username: string, e: HistoryEntry): string {
  return csvLine([
    e.time, username, e.clientIp, e.method, e.scheme, e.host, e.port, e.path, e.categories.join(' '), e.category, e.action, e.rule,
    e.status, e.bytesIn, e.bytesOut, e.durationMs, e.blockRef,
  ]);
}

/**
 * The whole matching history as CSV, a batch at a time from one consistent
 * snapshot. Read with a high-water mark of one, at most a batch waits in
 * memory while the client catches up.
 */
async function* historyCsv(
  pool: Pool,
  scope: { schoolId: number; subjectId: number; grant: HistoryGrant },
  username: string,
  filters: Filters,
): AsyncGenerator<string> {
  yield csvLine(CSV_COLUMNS);
  const client = await pool.connect();
  let committed = false;
  let failure: unknown;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    let after: CursorKey | undefined;
    for (;;) {
      const rows = await historyRows(client, scope, filters, after, EXPORT_BATCH);
      if (rows.length > 0) yield rows.map((row) => csvRow(username, entryOf(row))).join('');
      if (rows.length < EXPORT_BATCH) break;
      const last = rows[rows.length - 1];
      after = [last.time_key, last.id];
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

export const historyRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  // Signed-in is only the door: history-access.ts decides for each subject, and audits refusals.
  const access = 'signed-in' as const;

  app.get(
    '/api/users/:id/history',
    {
      config: { access },
      schema: {
        tags: ['history'],
        summary: "One person's browsing history, newest first (audited)",
        description:
          "Your own; a pupil's, for the DSL; a member of staff's, for the headteacher, under an approved investigation " +
          "(investigationId) and within its time window; a headteacher's, for governors, likewise. Every read and refusal is audited.",
        params: IdParams,
        querystring: HistoryQuery,
        response: { 200: HistoryPage },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { limit: requestedLimit, cursor, ...filters } = request.query;
      checkFilters(filters);
      const limit = pageLimit({ limit: requestedLimit });
      const after = decodeCursor(cursor, Cursor);
      const outcome = await inTransaction(pool, async (client) => {
        const authorised = await authorise(client, principal, request.params.id, filters);
        if ('refused' in authorised) return authorised;
        const scope = { schoolId: principal.schoolId, subjectId: authorised.subject.id, grant: authorised.grant };
        const rows = await historyRows(client, scope, filters, after, limit + 1);
        const page = pageOf(rows, limit, (row) => [row.time_key, row.id]);
        await auditRead(client, principal, 'history.read', authorised, {
          filters,
          cursor: cursor ?? null,
          rows: page.items.length,
        });
        return {
          subject: { id: authorised.subject.id, username: authorised.subject.username },
          access: accessOf(authorised.grant),
          items: page.items.map(entryOf),
          nextCursor: page.nextCursor,
        };
      });
      if ('refused' in outcome) throw outcome.refused;
      return outcome;
    },
  );

  app.get(
    '/api/users/:id/history/export',
    {
      config: { access },
      schema: {
        tags: ['history'],
        summary: "One person's browsing history as CSV, streamed (audited)",
        description: 'The same rules and filters as the history pages. Cells that would start a spreadsheet formula are prefixed with a quote.',
        params: IdParams,
        querystring: ExportQuery,
        response: {
          200: {
            description: 'CSV with a header row',
            // Typed as the stream the handler sends; the schema documents what it carries.
            content: { 'text/csv': { schema: Type.Unsafe<Readable>(Type.String()) } },
          },
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const filters = request.query;
      checkFilters(filters);
      const outcome = await inTransaction(pool, async (client) => {
        const authorised = await authorise(client, principal, request.params.id, filters);
        if ('refused' in authorised) return authorised;
        await auditRead(client, principal, 'history.export', authorised, { filters });
        return authorised;
      });
      if ('refused' in outcome) throw outcome.refused;
      const scope = { schoolId: principal.schoolId, subjectId: outcome.subject.id, grant: outcome.grant };
      const day = new Date().toISOString().slice(0, 10);
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="history-${outcome.subject.username}-${day}.csv"`)
        .send(Readable.from(historyCsv(pool, scope, outcome.subject.username, filters), { highWaterMark: 1 }));
    },
  );
};
