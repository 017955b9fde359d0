// List entries (it_admin): search the category lists, add a local entry,
// remove an entry. Local entries (source 'local') survive list updates.
// Removing an imported entry is allowed, and audited as such, but lasts only
// until the next import lists it again: to keep a site reachable for good,
// create an allow override instead.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool } from '../../core/db.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf } from '../auth/principal.js';
import { CategoryKey } from '../category-catalogue.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { conflict, notFound, Problem } from '../problem.js';
import { NoContent, Text } from '../schemas.js';
import { normaliseTarget } from '../targets.js';

const Kind = Type.Enum(['domain', 'url'], { description: 'domain: the host and its subdomains; url: host/path prefix' });
const Source = Type.Enum(['import', 'local']);
// Long enough for any host plus a long path; list entries are not documents.
const EntryValue = Text({ minLength: 1, maxLength: 2048 });

const ListEntry = Type.Object({
  category: Type.String(),
  kind: Kind,
  value: Type.String(),
  source: Source,
});
type ListEntry = Static<typeof ListEntry>;

// A search walks list_entries in primary key order, filtering as it goes:
// with millions of rows and no index on value, a rare substring means a long
// walk, so each search runs under a time limit and gives up with a 400.
const SEARCH_TIMEOUT_MS = 5_000;

const SearchQuery = Type.Object({
  ...PageQuery,
  search: Type.Optional(
    Text({
      minLength: 1,
      maxLength: 256,
      description:
        'part of the value (case-insensitive). The lists have no index on the value, so this scans them: ' +
        `each page stops at its LIMIT, and a search that finds too little within ${SEARCH_TIMEOUT_MS / 1000} s is refused; ` +
        'narrow it by category, kind or match=prefix.',
    }),
  ),
  match: Type.Optional(Type.Enum(['substring', 'prefix'], { description: 'how search matches the value; default substring' })),
  category: Type.Optional(CategoryKey),
  kind: Type.Optional(Kind),
  source: Type.Optional(Source),
});

const AddEntryBody = Type.Object(
  {
    category: CategoryKey,
    kind: Kind,
    value: EntryValue,
    reason: Type.Optional(Text({ maxLength: 1000, description: 'kept in the audit log' })),
  },
  { additionalProperties: false },
);

const EntryQuery = Type.Object({ category: CategoryKey, kind: Kind, value: EntryValue });

interface EntryRow extends ListEntry {
  category_id: number;
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function isQueryCancelled(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '57014';
}

async function categoryOf(pool: Pool, key: string): Promise<{ id: number; key: string }> {
  const { rows } = await pool.query<{ id: number; key: string }>('SELECT id, key FROM categories WHERE key = $1', [key]);
  if (!rows[0]) throw notFound(`no category "${key}"`);
  return rows[0];
}

export const listEntryRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['it_admin'] as const;

  app.get(
    '/api/list-entries',
    {
      config: { access },
      schema: {
        tags: ['list entries'],
        summary: 'Search list entries, in category, kind, value order',
        querystring: SearchQuery,
        response: { 200: Page(ListEntry) },
      },
    },
    async (request) => {
      const query = request.query;
      const limit = pageLimit(query);
      const after = decodeCursor(query.cursor, Type.Tuple([Type.Integer({ minimum: 0 }), Kind, Type.String()]));
      const search = query.search?.trim();
      const pattern = search === undefined ? null : query.match === 'prefix' ? `${escapeLike(search)}%` : `%${escapeLike(search)}%`;
      const rows = await inTransaction(pool, async (client) => {
        await client.query(`SET LOCAL statement_timeout = ${SEARCH_TIMEOUT_MS}`);
        try {
          const result = await client.query<EntryRow>(
            `SELECT e.category_id, c.key AS category, e.kind, e.value, e.source
               FROM list_entries e JOIN categories c ON c.id = e.category_id
              WHERE ($1::text IS NULL OR e.value ILIKE $1)
                AND ($2::text IS NULL OR c.key = $2)
                AND ($3::text IS NULL OR e.kind = $3)
                AND ($4::text IS NULL OR e.source = $4)
                AND ($5::int IS NULL OR (e.category_id, e.kind, e.value) > ($5::smallint, $6::text, $7::text))
              ORDER BY e.category_id, e.kind, e.value
              LIMIT $8`,
            [pattern, query.category ?? null, query.kind ?? null, query.source ?? null, after?.[0] ?? null, after?.[1] ?? null, after?.[2] ?? null, limit + 1],
          );
          return result.rows;
        } catch (err) {
          if (isQueryCancelled(err)) {
            throw new Problem(400, 'search-too-broad', `the search found too little within ${SEARCH_TIMEOUT_MS / 1000} s; narrow it by category, kind or match=prefix`);
          }
          throw err;
        }
      });
      const page = pageOf(rows, limit, (row) => [row.category_id, row.kind, row.value]);
      return { items: page.items.map(({ category, kind, value, source }) => ({ category, kind, value, source })), nextCursor: page.nextCursor };
    },
  );

  app.post(
    '/api/list-entries',
    {
      config: { access },
      schema: {
        tags: ['list entries'],
        summary: 'Add a local entry to a category',
        description: 'A domain is normalised (lower case, punycode, canonical IP); a url is host/path (a pasted http:// or https:// is dropped).',
        body: AddEntryBody,
        response: { 201: ListEntry },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { kind, reason } = request.body;
      const value = normaliseTarget(kind, request.body.value, 'body/value');
      const category = await categoryOf(pool, request.body.category);
      const entry: ListEntry = { category: category.key, kind, value, source: 'local' };
      await inTransaction(pool, async (client) => {
        const insert = await client.query(
          `INSERT INTO list_entries (category_id, kind, value, source) VALUES ($1, $2, $3, 'local') ON CONFLICT DO NOTHING`,
          [category.id, kind, value],
        );
        if (insert.rowCount === 0) throw conflict(`${kind} "${value}" is already in "${category.key}"`);
        await appendAudit(client, {
          schoolId: principal.schoolId,
          actor: actorOf(principal),
          action: 'list_entry.add',
          target: `list_entry:${category.key}/${kind}/${value}`,
          detail: { ...entry, reason: reason?.trim() ?? '' },
        });
      });
      return reply.code(201).send(entry);
    },
  );

  app.delete(
    '/api/list-entries',
    {
      config: { access },
      schema: {
        tags: ['list entries'],
        summary: 'Remove an entry from a category',
        description:
          'Local entries are removed for good. An imported entry can be removed too (the audit log says it was imported), ' +
          'but the next list update brings it back if the source still lists it: use an allow override to keep a site reachable.',
        querystring: EntryQuery,
        response: { 204: NoContent },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { kind } = request.query;
      const value = normaliseTarget(kind, request.query.value, 'query/value');
      const category = await categoryOf(pool, request.query.category);
      await inTransaction(pool, async (client) => {
        const removed = await client.query<{ source: 'import' | 'local' }>(
          'DELETE FROM list_entries WHERE category_id = $1 AND kind = $2 AND value = $3 RETURNING source',
          [category.id, kind, value],
        );
        if (!removed.rows[0]) throw notFound(`${kind} "${value}" is not in "${category.key}"`);
        await appendAudit(client, {
          schoolId: principal.schoolId,
          actor: actorOf(principal),
          action: 'list_entry.remove',
          target: `list_entry:${category.key}/${kind}/${value}`,
          detail: { category: category.key, kind, value, source: removed.rows[0].source },
        });
      });
      return reply.code(204).send(null);
    },
  );
};
