// Categories: what each list means and how many entries it holds (any
// signed-in admin role), and, per group, whether the category is filtered
// (it_admin), which is the group's rule for it (group-rules-store.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { inTransaction, type Pool } from '../../core/db.js';
import { principalOf } from '../auth/principal.js';
import { Category, CategoryKey, listCategories } from '../category-catalogue.js';
import { GroupRule, RuleReason, setGroupRule } from '../group-rules-store.js';
import { IdParams } from '../schemas.js';

const CategoryGroupParams = Type.Object({ key: CategoryKey, id: IdParams.properties.id });

const FilterBody = Type.Object(
  {
    enabled: Type.Boolean({ description: "true: the group's rule blocks the category; false: it allows it" }),
    reason: RuleReason,
  },
  { additionalProperties: false },
);

export const categoryRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  app.get(
    '/api/categories',
    {
      config: { access: ['it_admin', 'dsl', 'headteacher'] },
      // About a hundred categories: the whole list comes at once.
      schema: { tags: ['categories'], summary: 'All categories, by key, with entry counts', response: { 200: Type.Object({ items: Type.Array(Category) }) } },
    },
    async () => ({ items: await listCategories(pool) }),
  );

  app.put(
    '/api/categories/:key/groups/:id',
    {
      config: { access: ['it_admin'] },
      schema: {
        tags: ['categories'],
        summary: 'Turn filtering of a category on or off for a group (sets the group rule to block or allow)',
        description: 'Illegal categories are always blocked: turning one off is refused with 409.',
        params: CategoryGroupParams,
        body: FilterBody,
        response: { 200: GroupRule },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { key, id } = request.params;
      const { enabled, reason } = request.body;
      return inTransaction(pool, (client) =>
        setGroupRule(client, principal, { groupId: id, categoryKey: key, action: enabled ? 'block' : 'allow', reason }),
      );
    },
  );
};
