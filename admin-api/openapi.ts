// The OpenAPI document (/docs/json) and its browser UI (/docs), both public.
// Each route's entry also says who may call it and how errors look, taken
// from its access declaration, so route files only declare what is theirs.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { describeAccess } from './auth/roles.js';
import { SESSION_COOKIE } from './auth/sessions.js';
import { ProblemSchema } from './problem.js';

export const DOCS_PREFIX = '/docs';

const PROBLEM_RESPONSE = {
  description: 'Problem details (RFC 9457)',
  content: { 'application/problem+json': { schema: ProblemSchema } },
};

function documentConventions(app: FastifyInstance): void {
  // A GET route's automatic HEAD twin shares its schema object: decorate it once.
  const decorated = new WeakSet<object>();
  app.addHook('onRoute', (route) => {
    const schema = route.schema;
    if (!schema || schema.hide || decorated.has(schema)) return;
    decorated.add(schema);
    const access = route.config?.access;
    schema.description = [schema.description, describeAccess(access)].filter(Boolean).join('\n\n');
    schema.security = access === 'public' ? [] : [{ session: [] }, { bearer: [] }];
    const response = (schema.response ?? {}) as Record<string, unknown>;
    schema.response = { ...response, '4xx': response['4xx'] ?? PROBLEM_RESPONSE, '5xx': response['5xx'] ?? PROBLEM_RESPONSE };
  });
}

// Plugin routes (the UI's pages and assets) are documentation, open to all.
const publicDocsUi: FastifyPluginAsync = async (app) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, access: 'public' };
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, staticCSP: true });
};

export async function installOpenApi(app: FastifyInstance): Promise<void> {
  documentConventions(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Portcullis admin API',
        version: '1',
        description:
          'Errors are application/problem+json (RFC 9457). Sign in with POST /api/login (session cookie; send the ' +
          'returned csrfToken as X-CSRF-Token on every change) or use a bearer token from POST /api/tokens.',
      },
      components: {
        securitySchemes: {
          session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE },
          bearer: { type: 'http', scheme: 'bearer' },
        },
      },
    },
  });
  await app.register(publicDocsUi);
}
