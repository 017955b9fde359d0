// Establishes request.principal from a bearer token (Authorization header) or
// the session cookie. A bearer header that does not check out is refused
// outright rather than falling back to the cookie: the caller meant the token.
//
// A route that declares `answersWithoutDatabase` (GET /metrics) checks who
// is asking within DATABASE_CHECK_MS and, while Postgres cannot answer,
// accepts a bearer token Postgres confirmed just before (confirmed-tokens.ts).
import type { FastifyInstance } from 'fastify';
import { DATABASE_CHECK_MS, isDatabaseUnavailable, type Pool } from '../../core/db.js';
import { Problem } from '../problem.js';
import { findApiToken } from './api-tokens.js';
import { ConfirmedTokens } from './confirmed-tokens.js';
import type { Principal } from './principal.js';
import { isPublic } from './roles.js';
import { findSession, SESSION_COOKIE } from './sessions.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's own work needs no database, so a scraper's token is honoured during an outage too. */
    answersWithoutDatabase?: boolean;
  }
}

const BEARER = /^Bearer +([A-Za-z0-9_-]{1,200})$/;

export function installAuthentication(app: FastifyInstance, pool: Pool): void {
  const confirmedTokens = new ConfirmedTokens();

  async function tokenPrincipal(token: string, answersWithoutDatabase: boolean): Promise<Principal | null> {
    if (!answersWithoutDatabase) return (await findApiToken(pool, token))?.principal ?? null;
    const now = Date.now();
    try {
      const live = await findApiToken(pool, token, DATABASE_CHECK_MS);
      if (live) confirmedTokens.confirm(token, live.principal, live.expiresAt, now);
      else confirmedTokens.refuse(token, now);
      return live?.principal ?? null;
    } catch (err) {
      const remembered = isDatabaseUnavailable(err) ? confirmedTokens.recall(token, now) : undefined;
      if (remembered === undefined) throw err;
      return remembered;
    }
  }

  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request, reply) => {
    const config = request.routeOptions.config;
    if (request.is404 || isPublic(config.access)) return;
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const token = BEARER.exec(authorization)?.[1];
      request.principal = token === undefined ? null : await tokenPrincipal(token, config.answersWithoutDatabase === true);
      if (!request.principal) {
        reply.header('www-authenticate', 'Bearer');
        throw new Problem(401, 'invalid-token', 'the bearer token is malformed, unknown, expired or revoked');
      }
      return;
    }
    const cookie = request.cookies[SESSION_COOKIE];
    const checkWithin = config.answersWithoutDatabase ? DATABASE_CHECK_MS : undefined;
    if (cookie !== undefined && cookie.length <= 200) request.principal = await findSession(pool, cookie, checkWithin);
  });
}
