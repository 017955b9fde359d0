// The DSL's safeguarding search terms (safeguarding/search-terms.ts): list,
// add, disable, enable, delete. A plain-HTTP search containing an enabled
// term raises a search_term alert; a change reaches the running proxy within
// a second (the table notifies on the policy channel).
//
// Who: the DSL manages the list (the DfE standards give the DSL lead
// responsibility for acting on monitoring); the headteacher (senior
// leadership reviews filtering and monitoring) and governors (who need
// assurance that it meets the standards) may read it. IT admins run the
// filtering, not safeguarding monitoring, so they do not see it.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { canonicalTerm, SEARCH_TERM_THEMES, TERM_MAX_CHARS, termProblem } from '../../safeguarding/search-terms.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { badRequest, conflict, notFound } from '../problem.js';
import { IdParams, NoContent, Text } from '../schemas.js';

const Theme = Type.Enum([...SEARCH_TERM_THEMES]);

const SearchTermSchema = Type.Object({
  id: Type.Integer(),
  term: Type.String({ description: 'normalised: lowercase, no accents, words of letters and digits separated by single spaces' }),
  theme: Theme,
  enabled: Type.Boolean(),
  addedBy: Type.String({ description: '"portcullis" for the terms Portcullis ships with' }),
  addedAt: Type.String({ format: 'date-time' }),
});
type SearchTermBody = Static<typeof SearchTermSchema>;

const ListQuery = Type.Object({
  ...PageQuery,
  theme: Type.Optional(Theme),
  enabled: Type.Optional(Type.Boolean({ description: 'omitted: both' })),
});

const CreateBody = Type.Object(
  {
    term: Text({
      minLength: 1,
      // Room for punctuation and accents that normalising removes; the normalised term is held to the stored limit.
      maxLength: TERM_MAX_CHARS * 2,
      description: 'a word or phrase; a phrase matches only as consecutive words, and punctuation counts as a space ("self-harm" is "self harm")',
    }),
    theme: Theme,
    enabled: Type.Optional(Type.Boolean({ description: 'default true' })),
  },
  { additionalProperties: false },
);

interface SearchTermRow {
  id: number;
  term: string;
  theme: SearchTermBody['theme'];
  enabled: boolean;
  added_by_username: string;
  added_at: Date;
}

const SELECT_TERM = 'SELECT id, term, theme, enabled, added_by_username, added_at FROM search_terms';

function searchTermOf(row: SearchTermRow): SearchTermBody {
  return { id: row.id, term: row.term, theme: row.theme, enabled: row.enabled, addedBy: row.added_by_username, addedAt: row.added_at.toISOString() };
}

async function findTerm(db: Pool | PoolClient, schoolId: number, id: number, forUpdate = false): Promise<SearchTermBody> {
  const { rows } = await db.query<SearchTermRow>(`${SELECT_TERM} WHERE school_id = $1 AND id = $2 ${forUpdate ? 'FOR UPDATE' : ''}`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no search term ${id}`);
  return searchTermOf(rows[0]);
}

function audit(client: PoolClient, principal: Principal, action: string, term: SearchTermBody) {
  return appendAudit(client, {
    schoolId: principal.schoolId,
    actor: actorOf(principal),
    action,
    target: `search_term:${term.id}`,
    detail: { term: term.term, theme: term.theme, enabled: term.enabled },
  });
}

export const searchTermRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const read = ['dsl', 'headteacher', 'governor'] as const;
  const manage = ['dsl'] as const;

  app.get(
    '/api/search-terms',
    {
      config: { access: read },
      schema: { tags: ['safeguarding'], summary: 'Safeguarding search terms, oldest first', querystring: ListQuery, response: { 200: Page(SearchTermSchema) } },
    },
    async (request) => {
      const { theme, enabled, cursor } = request.query;
      const limit = pageLimit(request.query);
      const after = decodeCursor(cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const { rows } = await pool.query<SearchTermRow>(
        `${SELECT_TERM} WHERE school_id = $1 AND ($2::text IS NULL OR theme = $2) AND ($3::boolean IS NULL OR enabled = $3)
            AND ($4::int IS NULL OR id > $4)
          ORDER BY id LIMIT $5`,
        [principalOf(request).schoolId, theme ?? null, enabled ?? null, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(searchTermOf), limit, (t) => [t.id]);
    },
  );

  app.post(
    '/api/search-terms',
    {
      config: { access: manage },
      schema: {
        tags: ['safeguarding'],
        summary: 'Add a search term; searches containing it alert the DSL',
        description:
          'Seen only in plain-HTTP searches (HTTPS searches are encrypted). Prefer phrases of intent to single words: ' +
          'a word that lessons use (PSHE, RE, science, history) alerts on every lesson search.',
        body: CreateBody,
        response: { 201: SearchTermSchema },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const term = canonicalTerm(request.body.term);
      const problem = termProblem(term);
      if (problem) throw badRequest(`the term "${term}" ${problem}`, [{ name: 'body/term', reason: problem }]);
      const created = await inTransaction(pool, async (client) => {
        const { rows } = await client.query<{ id: number }>(
          `INSERT INTO search_terms (school_id, term, theme, enabled, added_by, added_by_username)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (school_id, term) DO NOTHING RETURNING id`,
          [principal.schoolId, term, request.body.theme, request.body.enabled ?? true, principal.userId, principal.username],
        );
        if (!rows[0]) {
          const existing = await client.query<{ id: number }>('SELECT id FROM search_terms WHERE school_id = $1 AND term = $2', [principal.schoolId, term]);
          throw conflict(`"${term}" is already search term ${existing.rows[0]?.id ?? '?'}; enable or change that one instead`);
        }
        const added = await findTerm(client, principal.schoolId, rows[0].id);
        await audit(client, principal, 'search_term.add', added);
        return added;
      });
      return reply.code(201).send(created);
    },
  );

  for (const [verb, enabled] of [['disable', false], ['enable', true]] as const) {
    app.post(
      `/api/search-terms/:id/${verb}`,
      {
        config: { access: manage },
        schema: {
          tags: ['safeguarding'],
          summary: enabled ? 'Enable a search term' : 'Disable a search term: it stays listed but raises no alerts',
          params: IdParams,
          response: { 200: SearchTermSchema },
        },
      },
      async (request) => {
        const principal = principalOf(request);
        return inTransaction(pool, async (client) => {
          const before = await findTerm(client, principal.schoolId, request.params.id, true);
          if (before.enabled === enabled) return before;
          await client.query('UPDATE search_terms SET enabled = $2 WHERE id = $1', [before.id, enabled]);
          const after = { ...before, enabled };
          await audit(client, principal, `search_term.${verb}`, after);
          return after;
        });
      },
    );
  }

  app.delete(
    '/api/search-terms/:id',
    {
      config: { access: manage },
      schema: { tags: ['safeguarding'], summary: 'Delete a search term (alerts it raised stay)', params: IdParams, response: { 204: NoContent } },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await inTransaction(pool, async (client) => {
        const term = await findTerm(client, principal.schoolId, request.params.id, true);
        await client.query('DELETE FROM search_terms WHERE id = $1', [term.id]);
        await audit(client, principal, 'search_term.delete', term);
      });
      return reply.code(204).send(null);
    },
  );
};
