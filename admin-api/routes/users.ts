// User accounts (it_admin): list and search, create, change group, roles and
// display name, disable and enable, set a password. Every change is audited
// in the same transaction as the change itself.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { hashPassword, MIN_PASSWORD_LENGTH, normaliseUsername, type Role } from '../../core/users.js';
import { appendAudit } from '../audit.js';
import { revokeApiTokensOfUser } from '../auth/api-tokens.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { deleteSessionsOfUser } from '../auth/sessions.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { badRequest, conflict, notFound } from '../problem.js';
import { IdParams, RoleSchema, Text } from '../schemas.js';

const User = Type.Object({
  id: Type.Integer(),
  username: Type.String(),
  displayName: Type.String(),
  groupKey: Type.String(),
  roles: Type.Array(RoleSchema),
  hasPassword: Type.Boolean({ description: 'false: the account cannot sign in with a password' }),
  disabled: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
});
type User = Static<typeof User>;

const GroupKey = Type.String({ minLength: 1, maxLength: 64 });
const DisplayName = Text({ maxLength: 200 });
const Roles = Type.Array(RoleSchema, { maxItems: 10 });
const Password = Type.String({ minLength: MIN_PASSWORD_LENGTH, maxLength: 1024 });

const CreateUserBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 128, description: 'letters, digits and . _ @ -; stored in lower case' }),
    displayName: Type.Optional(DisplayName),
    groupKey: GroupKey,
    roles: Type.Optional(Roles),
    password: Type.Optional(Password),
  },
  { additionalProperties: false },
);

const UpdateUserBody = Type.Object(
  { displayName: Type.Optional(DisplayName), groupKey: Type.Optional(GroupKey), roles: Type.Optional(Roles) },
  { additionalProperties: false, minProperties: 1 },
);

const ListUsersQuery = Type.Object({
  ...PageQuery,
  search: Type.Optional(Text({ minLength: 1, maxLength: 128, description: 'part of the username or display name' })),
  groupKey: Type.Optional(GroupKey),
});

interface UserRow {
  id: number;
  username: string;
  display_name: string;
  group_key: string;
  roles: Role[];
  has_password: boolean;
  disabled: boolean;
  created_at: Date;
}

const SELECT_USER = `SELECT u.id, u.username, u.display_name, g.key AS group_key, u.roles,
                            u.password_hash IS NOT NULL AS has_password, u.disabled, u.created_at
                       FROM users u JOIN groups g ON g.id = u.group_id`;

function userOf(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    groupKey: row.group_key,
    roles: row.roles,
    hasPassword: row.has_password,
    disabled: row.disabled,
    createdAt: row.created_at.toISOString(),
  };
}

/** The user, locked for the rest of the transaction when `forUpdate`. */
async function findUser(db: Pool | PoolClient, schoolId: number, id: number, forUpdate = false): Promise<User> {
  const { rows } = await db.query<UserRow>(`${SELECT_USER} WHERE u.school_id = $1 AND u.id = $2 ${forUpdate ? 'FOR UPDATE OF u' : ''}`, [
    schoolId,
    id,
  ]);
  if (!rows[0]) throw notFound(`no user ${id}`);
  return userOf(rows[0]);
}

async function groupIdOf(client: PoolClient, schoolId: number, key: string): Promise<number> {
  const { rows } = await client.query<{ id: number }>('SELECT id FROM groups WHERE school_id = $1 AND key = $2', [schoolId, key]);
  if (!rows[0]) throw badRequest(`there is no group "${key}"`, [{ name: 'body/groupKey', reason: 'no such group' }]);
  return rows[0].id;
}

// A school must keep someone who can manage it. Locking the enabled IT
// admins first makes two concurrent demotions queue, so the second sees the first.
async function lockEnabledAdmins(client: PoolClient, schoolId: number): Promise<void> {
  await client.query("SELECT id FROM users WHERE school_id = $1 AND 'it_admin' = ANY(roles) AND NOT disabled FOR UPDATE", [schoolId]);
}

async function assertAnAdminRemains(client: PoolClient, schoolId: number): Promise<void> {
  const { rows } = await client.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM users WHERE school_id = $1 AND 'it_admin' = ANY(roles) AND NOT disabled",
    [schoolId],
  );
  if (rows[0].n === 0) throw conflict('that would leave the school with no enabled it_admin account');
}

function audit(client: PoolClient, principal: Principal, action: string, user: { username: string }, detail: Record<string, unknown>) {
  return appendAudit(client, { schoolId: principal.schoolId, actor: actorOf(principal), action, target: `user:${user.username}`, detail });
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);
const sameRoles = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((r) => b.includes(r));

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

export const userRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['it_admin'] as const;

  app.get(
    '/api/users',
    {
      config: { access },
      schema: { tags: ['users'], summary: 'Users, by username', querystring: ListUsersQuery, response: { 200: Page(User) } },
    },
    async (request) => {
      const { search, groupKey, cursor } = request.query;
      const limit = pageLimit(request.query);
      const after = decodeCursor(cursor, Type.Tuple([Type.String()]));
      const { rows } = await pool.query<UserRow>(
        `${SELECT_USER}
          WHERE u.school_id = $1
            AND ($2::text IS NULL OR u.username ILIKE $2 OR u.display_name ILIKE $2)
            AND ($3::text IS NULL OR g.key = $3)
            AND ($4::text IS NULL OR u.username > $4)
          ORDER BY u.username LIMIT $5`,
        [principalOf(request).schoolId, search === undefined ? null : `%${escapeLike(search)}%`, groupKey ?? null, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(userOf), limit, (user) => [user.username]);
    },
  );

  app.get(
    '/api/users/:id',
    { config: { access }, schema: { tags: ['users'], summary: 'One user', params: IdParams, response: { 200: User } } },
    async (request) => findUser(pool, principalOf(request).schoolId, request.params.id),
  );

  app.post(
    '/api/users',
    {
      config: { access },
      schema: { tags: ['users'], summary: 'Create a user', body: CreateUserBody, response: { 201: User } },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const username = normaliseUsername(body.username);
      const roles = [...new Set(body.roles ?? [])];
      const passwordHash = body.password === undefined ? null : await hashPassword(body.password);
      const created = await inTransaction(pool, async (client) => {
        const groupId = await groupIdOf(client, principal.schoolId, body.groupKey);
        let id: number;
        try {
          const insert = await client.query<{ id: number }>(
            `INSERT INTO users (school_id, username, display_name, group_id, roles, password_hash)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
            [principal.schoolId, username, body.displayName?.trim() ?? '', groupId, roles, passwordHash],
          );
          id = insert.rows[0].id;
        } catch (err) {
          if (isUniqueViolation(err)) throw conflict(`user "${username}" already exists`);
          throw err;
        }
        const user = await findUser(client, principal.schoolId, id);
        await audit(client, principal, 'user.create', user, {
          userId: id,
          displayName: user.displayName,
          groupKey: user.groupKey,
          roles,
          hasPassword: user.hasPassword,
        });
        return user;
      });
      return reply.code(201).send(created);
    },
  );

  app.patch(
    '/api/users/:id',
    {
      config: { access },
      schema: {
        tags: ['users'],
        summary: "Change a user's display name, group or roles",
        params: IdParams,
        body: UpdateUserBody,
        response: { 200: User },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const body = request.body;
      return inTransaction(pool, async (client) => {
        if (body.roles !== undefined) await lockEnabledAdmins(client, principal.schoolId);
        const before = await findUser(client, principal.schoolId, request.params.id, true);
        const changes: Record<string, { from: unknown; to: unknown }> = {};
        const displayName = body.displayName?.trim();
        if (displayName !== undefined && displayName !== before.displayName) {
          await client.query('UPDATE users SET display_name = $2 WHERE id = $1', [before.id, displayName]);
          changes.displayName = { from: before.displayName, to: displayName };
        }
        if (body.groupKey !== undefined && body.groupKey !== before.groupKey) {
          const groupId = await groupIdOf(client, principal.schoolId, body.groupKey);
          await client.query('UPDATE users SET group_id = $2 WHERE id = $1', [before.id, groupId]);
          changes.groupKey = { from: before.groupKey, to: body.groupKey };
        }
        const roles = body.roles === undefined ? undefined : [...new Set(body.roles)];
        if (roles !== undefined && !sameRoles(roles, before.roles)) {
          await client.query('UPDATE users SET roles = $2 WHERE id = $1', [before.id, roles]);
          await assertAnAdminRemains(client, principal.schoolId);
          changes.roles = { from: before.roles, to: roles };
        }
        if (Object.keys(changes).length > 0) await audit(client, principal, 'user.update', before, { userId: before.id, changes });
        return findUser(client, principal.schoolId, before.id);
      });
    },
  );

  app.post(
    '/api/users/:id/disable',
    {
      config: { access },
      schema: {
        tags: ['users'],
        summary: 'Disable a user: no sign-in, no proxy use; their sessions and API tokens end at once',
        params: IdParams,
        response: { 200: User },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      return inTransaction(pool, async (client) => {
        await lockEnabledAdmins(client, principal.schoolId);
        const before = await findUser(client, principal.schoolId, request.params.id, true);
        if (before.disabled) return before;
        await client.query('UPDATE users SET disabled = true WHERE id = $1', [before.id]);
        await assertAnAdminRemains(client, principal.schoolId);
        const sessionsEnded = await deleteSessionsOfUser(client, before.id);
        const tokensRevoked = await revokeApiTokensOfUser(client, before.id);
        await audit(client, principal, 'user.disable', before, { userId: before.id, sessionsEnded, tokensRevoked });
        return findUser(client, principal.schoolId, before.id);
      });
    },
  );

  app.post(
    '/api/users/:id/enable',
    {
      config: { access },
      schema: { tags: ['users'], summary: 'Enable a disabled user', params: IdParams, response: { 200: User } },
    },
    async (request) => {
      const principal = principalOf(request);
      return inTransaction(pool, async (client) => {
        const before = await findUser(client, principal.schoolId, request.params.id, true);
        if (!before.disabled) return before;
        await client.query('UPDATE users SET disabled = false WHERE id = $1', [before.id]);
        await audit(client, principal, 'user.enable', before, { userId: before.id });
        return findUser(client, principal.schoolId, before.id);
      });
    },
  );

  app.put(
    '/api/users/:id/password',
    {
      config: { access },
      schema: {
        tags: ['users'],
        summary: "Set a user's password; signs them out everywhere else",
        params: IdParams,
        body: Type.Object({ password: Password }, { additionalProperties: false }),
        response: { 200: User },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const passwordHash = await hashPassword(request.body.password);
      return inTransaction(pool, async (client) => {
        const user = await findUser(client, principal.schoolId, request.params.id, true);
        await client.query('UPDATE users SET password_hash = $2 WHERE id = $1', [user.id, passwordHash]);
        // Your own current session survives your own password change.
        const keep = user.id === principal.userId ? principal.sessionToken : undefined;
        const sessionsEnded = await deleteSessionsOfUser(client, user.id, keep);
        await audit(client, principal, 'user.set_password', user, { userId: user.id, sessionsEnded });
        return findUser(client, principal.schoolId, user.id);
      });
    },
  );
};
