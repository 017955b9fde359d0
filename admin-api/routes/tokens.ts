// Your own bearer API tokens: GET/POST /api/tokens, DELETE /api/tokens/:id.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { inTransaction, type Pool } from '../../core/db.js';
import { appendAudit } from '../audit.js';
import { createApiToken, listApiTokens, revokeApiToken } from '../auth/api-tokens.js';
import { actorOf, principalOf } from '../auth/principal.js';
import { notFound, Problem } from '../problem.js';
import { IdParams, NoContent, Text } from '../schemas.js';

const DEFAULT_TOKEN_DAYS = 90;

const ApiToken = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  expiresAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

const CreateTokenBody = Type.Object(
  {
    name: Text({ minLength: 1, maxLength: 100, description: 'what the token is for, e.g. "prometheus"' }),
    expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365, description: `default ${DEFAULT_TOKEN_DAYS}` })),
  },
  { additionalProperties: false },
);

export const tokenRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  app.get(
    '/api/tokens',
    {
      config: { access: 'signed-in' },
      schema: { tags: ['tokens'], summary: 'Your API tokens', response: { 200: Type.Object({ items: Type.Array(ApiToken) }) } },
    },
    async (request) => ({ items: await listApiTokens(pool, principalOf(request).userId) }),
  );

  app.post(
    '/api/tokens',
    {
      config: { access: 'signed-in' },
      schema: {
        tags: ['tokens'],
        summary: 'Make an API token for yourself; the token is shown only in this response',
        body: CreateTokenBody,
        response: { 201: Type.Object({ ...ApiToken.properties, token: Type.String() }) },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      // A token must not be able to mint its successor and so live for ever.
      if (principal.via !== 'session') throw new Problem(403, 'forbidden', 'API tokens are made from a signed-in session, not with a token');
      const name = request.body.name.trim();
      const created = await inTransaction(pool, async (client) => {
        const made = await createApiToken(client, principal, name, request.body.expiresInDays ?? DEFAULT_TOKEN_DAYS);
        await appendAudit(client, {
          schoolId: principal.schoolId,
          actor: actorOf(principal),
          action: 'api_token.create',
          target: `api_token:${made.info.id}`,
          detail: { name, expiresAt: made.info.expiresAt },
        });
        return made;
      });
      return reply.code(201).send({ ...created.info, token: created.token });
    },
  );

  app.delete(
    '/api/tokens/:id',
    {
      config: { access: 'signed-in' },
      schema: { tags: ['tokens'], summary: 'Revoke one of your API tokens', params: IdParams, response: { 204: NoContent } },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await inTransaction(pool, async (client) => {
        const revoked = await revokeApiToken(client, principal.userId, request.params.id);
        if (!revoked) throw notFound(`you have no live API token ${request.params.id}`);
        await appendAudit(client, {
          schoolId: principal.schoolId,
          actor: actorOf(principal),
          action: 'api_token.revoke',
          target: `api_token:${revoked.id}`,
          detail: { name: revoked.name },
        });
      });
      return reply.code(204).send(null);
    },
  );
};
