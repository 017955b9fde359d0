// A group's rules by category (it_admin): list, set, delete. A category
// without a rule falls back to the group's default action. Every change is
// compiled with the proxies' own compiler before it commits, and audited.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { inTransaction, type Pool } from '../../core/db.js';
import { principalOf } from '../auth/principal.js';
import { CategoryKey } from '../category-catalogue.js';
import { deleteGroupRule, findGroup, GroupRule, listGroupRules, RuleActionSchema, RuleReason, setGroupRule } from '../group-rules-store.js';
import { IdParams, NoContent } from '../schemas.js';

const RuleParams = Type.Object({ id: IdParams.properties.id, category: CategoryKey });

const SetRuleBody = Type.Object(
  {
    action: RuleActionSchema,
    schedule: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'schedule key; required for block_during, refused otherwise' })),
    reason: RuleReason,
  },
  { additionalProperties: false },
);

export const groupRuleRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['it_admin'] as const;

  app.get(
    '/api/groups/:id/rules',
    {
      config: { access },
      // At most one rule per category: the whole list comes at once.
      schema: { tags: ['group rules'], summary: "A group's rules, by category", params: IdParams, response: { 200: Type.Object({ items: Type.Array(GroupRule) }) } },
    },
    async (request) => {
      const { schoolId } = principalOf(request);
      const group = await findGroup(pool, schoolId, request.params.id);
      return { items: await listGroupRules(pool, schoolId, group.id) };
    },
  );

  app.put(
    '/api/groups/:id/rules/:category',
    {
      config: { access },
      schema: {
        tags: ['group rules'],
        summary: "Set a group's rule for a category",
        description: 'Refused with 409 for an illegal category (anything but block) and for a change the policy compiler rejects.',
        params: RuleParams,
        body: SetRuleBody,
        response: { 200: GroupRule },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const { id, category } = request.params;
      const { action, schedule, reason } = request.body;
      return inTransaction(pool, (client) => setGroupRule(client, principal, { groupId: id, categoryKey: category, action, scheduleKey: schedule, reason }));
    },
  );

  app.delete(
    '/api/groups/:id/rules/:category',
    {
      config: { access },
      schema: {
        tags: ['group rules'],
        summary: "Delete a group's rule for a category: the group's default action applies to it again",
        params: RuleParams,
        response: { 204: NoContent },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await inTransaction(pool, (client) => deleteGroupRule(client, principal, request.params.id, request.params.category));
      return reply.code(204).send(null);
    },
  );
};
