// Establishes request.principal from a bearer token (Authorization header) or
// the session cookie. A bearer header that does not check out is refused
// outright rather than falling back to the cookie: the caller meant the token.
import type { FastifyInstance } from 'fastify';
import type { Pool } from '../../core/db.js';
import { Problem } from '../problem.js';
import { findApiToken } from './api-tokens.js';
import { isPublic } from './roles.js';
import { findSession, SESSION_COOKIE } from './sessions.js';

const BEARER = /^Bearer +([A-Za-z0-9_-]{1,200})$/;

export function installAuthentication(app: FastifyInstance, pool: Pool): void {
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request, reply) => {
    if (request.is404 || isPublic(request.routeOptions.config.access)) return;
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const token = BEARER.exec(authorization)?.[1];
      request.principal = token === undefined ? null : await findApiToken(pool, token);
      if (!request.principal) {
        reply.header('www-authenticate', 'Bearer');
        throw new Problem(401, 'invalid-token', 'the bearer token is malformed, unknown, expired or revoked');
      }
      return;
    }
    const cookie = request.cookies[SESSION_COOKIE];
    if (cookie !== undefined && cookie.length <= 200) request.principal = await findSession(pool, cookie);
  });
}
