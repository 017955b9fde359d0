// Groups (it_admin): list, create, rename, set the default action. Every
// change is audited in the same transaction; the groups table's trigger
// tells the proxies to rebuild their policy.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf } from '../auth/principal.js';
import { conflict, notFound } from '../problem.js';
import { IdParams, Text } from '../schemas.js';

const DefaultAction = Type.Enum(['allow', 'block'], { description: 'what happens to a request no rule decides' });

const Group = Type.Object({
  id: Type.Integer(),
  key: Type.String(),
  name: Type.String(),
  defaultAction: DefaultAction,
  isDefault: Type.Boolean({ description: 'the group of people the proxy cannot identify' }),
  members: Type.Integer(),
});
type Group = Static<typeof Group>;

const GroupName = Text({ minLength: 1, maxLength: 100 });

const CreateGroupBody = Type.Object(
  {
    key: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}$', description: 'lower-case letters, digits, _ and -; cannot change later' }),
    name: GroupName,
    defaultAction: Type.Optional(DefaultAction),
  },
  { additionalProperties: false },
);

const UpdateGroupBody = Type.Object(
  { name: Type.Optional(GroupName), defaultAction: Type.Optional(DefaultAction) },
  { additionalProperties: false, minProperties: 1 },
);

interface GroupRow {
  id: number;
  key: string;
  name: string;
  default_action: Group['defaultAction'];
  is_default: boolean;
  members: number;
}

const SELECT_GROUP = `SELECT g.id, g.key, g.name, g.default_action, g.is_default,
                             (SELECT count(*)::int FROM users u WHERE u.group_id = g.id) AS members
                        FROM groups g`;

function groupOf(row: GroupRow): Group {
  return { id: row.id, key: row.key, name: row.name, defaultAction: row.default_action, isDefault: row.is_default, members: row.members };
}

async function findGroup(client: PoolClient, schoolId: number, id: number): Promise<Group> {
  const { rows } = await client.query<GroupRow>(`${SELECT_GROUP} WHERE g.school_id = $1 AND g.id = $2`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no group ${id}`);
  return groupOf(rows[0]);
}

export const groupRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['it_admin'] as const;

  app.get(
    '/api/groups',
    {
      config: { access },
      // A school has a handful of groups, so the whole list comes at once.
      schema: { tags: ['groups'], summary: 'All groups, by key', response: { 200: Type.Object({ items: Type.Array(Group) }) } },
    },
    async (request) => {
      const { rows } = await pool.query<GroupRow>(`${SELECT_GROUP} WHERE g.school_id = $1 ORDER BY g.key`, [principalOf(request).schoolId]);
      return { items: rows.map(groupOf) };
    },
  );

  app.post(
    '/api/groups',
    {
      config: { access },
      schema: { tags: ['groups'], summary: 'Create a group', body: CreateGroupBody, response: { 201: Group } },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { key, defaultAction = 'allow' } = request.body;
      const name = request.body.name.trim();
      const group = await inTransaction(pool, async (client) => {
        const inserted = await client.query<{ id: number }>(
          `INSERT INTO groups (school_id, key, name, default_action) VALUES ($1, $2, $3, $4)
           ON CONFLICT (school_id, key) DO NOTHING RETURNING id`,
          [principal.schoolId, key, name, defaultAction],
        );
        if (!inserted.rows[0]) throw conflict(`group "${key}" already exists`);
        const created = await findGroup(client, principal.schoolId, inserted.rows[0].id);
        await appendAudit(client, {
          schoolId: principal.schoolId,
          actor: actorOf(principal),
          action: 'group.create',
          target: `group:${key}`,
          detail: { groupId: created.id, name, defaultAction },
        });
        return created;
      });
      return reply.code(201).send(group);
    },
  );

  app.patch(
    '/api/groups/:id',
    {
      config: { access },
      schema: {
        tags: ['groups'],
        summary: "Rename a group or change its default action",
        params: IdParams,
        body: UpdateGroupBody,
        response: { 200: Group },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return inTransaction(pool, async (client) => {
        const locked = await client.query('SELECT 1 FROM groups WHERE school_id = $1 AND id = $2 FOR UPDATE', [principal.schoolId, request.params.id]);
        if (locked.rowCount === 0) throw notFound(`no group ${request.params.id}`);
        const before = await findGroup(client, principal.schoolId, request.params.id);
        const changes: Record<string, { from: unknown; to: unknown }> = {};
        const name = request.body.name?.trim();
        if (name !== undefined && name !== before.name) changes.name = { from: before.name, to: name };
        const defaultAction = request.body.defaultAction;
        if (defaultAction !== undefined && defaultAction !== before.defaultAction) {
          changes.defaultAction = { from: before.defaultAction, to: defaultAction };
        }
        if (Object.keys(changes).length === 0) return before;
        await client.query('UPDATE groups SET name = coalesce($2, name), default_action = coalesce($3, default_action) WHERE id = $1', [
          before.id,
          name ?? null,
          defaultAction ?? null,
        ]);
        await appendAudit(client, {
          schoolId: principal.schoolId,
          actor: actorOf(principal),
          action: 'group.update',
          target: `group:${before.key}`,
          detail: { groupId: before.id, changes },
        });
        return findGroup(client, principal.schoolId, before.id);
      });
    },
  );
};
