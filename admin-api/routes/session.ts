// Signing in and out: POST /api/login, POST /api/logout, GET /api/me, GET /api/csrf.
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { Pool } from '../../core/db.js';
import { hashPassword, verifyPassword, type Role } from '../../core/users.js';
import { csrfTokenFor } from '../auth/csrf.js';
import { loginRateLimiter, type LoginRateLimit } from '../auth/login-limit.js';
import { principalOf, type Principal } from '../auth/principal.js';
import { clearSessionCookie, createSession, deleteSession, SESSION_COOKIE, setSessionCookie } from '../auth/sessions.js';
import { badRequest, Problem } from '../problem.js';
import { NoContent, RoleSchema } from '../schemas.js';

const Me = Type.Object({
  id: Type.Integer(),
  username: Type.String(),
  displayName: Type.String(),
  groupKey: Type.String(),
  roles: Type.Array(RoleSchema),
  via: Type.Enum(['session', 'token']),
});
type Me = Static<typeof Me>;

const LoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 256 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    schoolId: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'only when several schools share this username' })),
  },
  { additionalProperties: false },
);

const CsrfToken = Type.Object({ csrfToken: Type.String({ description: 'send as X-CSRF-Token on every change made with the session cookie' }) });

function meOf(p: Principal): Me {
  return { id: p.userId, username: p.username, displayName: p.displayName, groupKey: p.groupKey, roles: p.roles, via: p.via };
}

interface LoginCandidate {
  id: number;
  school_id: number;
  username: string;
  display_name: string;
  group_key: string;
  roles: Role[];
  password_hash: string | null;
  disabled: boolean;
}

const invalidCredentials = () => new Problem(401, 'invalid-credentials', 'the username or password is wrong, or the account is disabled');

export const sessionRoutes: FastifyPluginAsyncTypebox<{ pool: Pool; loginRateLimit: LoginRateLimit }> = async (app, opts) => {
  const { pool } = opts;
  // Unknown usernames are checked against this, so they take as long as real ones.
  const dummyHash = await hashPassword(randomBytes(16).toString('hex'));

  app.post(
    '/api/login',
    {
      config: { access: 'public' },
      preHandler: loginRateLimiter(app, opts.loginRateLimit),
      schema: {
        tags: ['session'],
        summary: 'Sign in; sets the session cookie',
        body: LoginBody,
        response: { 200: Type.Object({ user: Me, csrfToken: Type.String() }) },
      },
    },
    async (request, reply) => {
      const { username, password, schoolId } = request.body;
      const { rows } = await pool.query<LoginCandidate>(
        `SELECT u.id, u.school_id, u.username, u.display_name, g.key AS group_key, u.roles, u.password_hash, u.disabled
           FROM users u JOIN groups g ON g.id = u.group_id
          WHERE u.username = $1 AND ($2::int IS NULL OR u.school_id = $2)
          LIMIT 2`,
        [username.trim().toLowerCase(), schoolId ?? null],
      );
      if (rows.length > 1) throw badRequest('several schools have this username; say which with schoolId');
      const user = rows[0];
      const passwordOk = await verifyPassword(user?.password_hash ?? dummyHash, password);
      if (!user || !user.password_hash || !passwordOk || user.disabled) {
        request.log.info({ username: username.slice(0, 128) }, 'sign-in refused');
        throw invalidCredentials();
      }
      // A fresh session each time; any session this browser held before ends.
      const previous = request.cookies[SESSION_COOKIE];
      if (previous !== undefined) await deleteSession(pool, previous);
      const token = await createSession(pool, user.school_id, user.id);
      setSessionCookie(request, reply, token);
      request.log.info({ userId: user.id }, 'signed in');
      return {
        user: meOf({
          userId: user.id,
          schoolId: user.school_id,
          username: user.username,
          displayName: user.display_name,
          groupKey: user.group_key,
          roles: user.roles,
          via: 'session',
        }),
        csrfToken: csrfTokenFor(token),
      };
    },
  );

  app.post(
    '/api/logout',
    {
      config: { access: 'signed-in' },
      schema: { tags: ['session'], summary: 'Sign out: ends this session', response: { 204: NoContent } },
    },
    async (request, reply) => {
      const token = principalOf(request).sessionToken;
      if (token !== undefined) await deleteSession(pool, token);
      clearSessionCookie(request, reply);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/api/me',
    {
      config: { access: 'signed-in' },
      schema: { tags: ['session'], summary: 'Who am I signed in as', response: { 200: Me } },
    },
    async (request) => meOf(principalOf(request)),
  );

  app.get(
    '/api/csrf',
    {
      config: { access: 'signed-in' },
      schema: { tags: ['session'], summary: "This session's CSRF token", response: { 200: CsrfToken } },
    },
    async (request) => {
      const token = principalOf(request).sessionToken;
      if (token === undefined) throw badRequest('bearer-token requests need no CSRF token');
      return { csrfToken: csrfTokenFor(token) };
    },
  );
};
