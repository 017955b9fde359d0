// GET /healthz: is the database reachable and is a policy in service? With
// the proxy in several workers, the policy reported is the oldest in service.
import type { FastifyPluginAsync } from 'fastify';
import { DATABASE_CHECK_MS, queryWithin, type Pool } from '../../core/db.js';

export interface PolicyStatus {
  version: number;
  loadedAt: string;
  domains: number;
  urls: number;
}

const healthResponse = {
  type: 'object',
  required: ['status', 'database'],
  properties: {
    status: { type: 'string', enum: ['ok', 'degraded'] },
    database: { type: 'string' },
    policy: {
      type: 'object',
      properties: {
        version: { type: 'integer' },
        loadedAt: { type: 'string' },
        domains: { type: 'integer' },
        urls: { type: 'integer' },
      },
    },
  },
} as const;

export const healthRoutes: FastifyPluginAsync<{ pool: Pool; policyStatus: () => PolicyStatus | undefined }> = async (app, opts) => {
  app.get('/healthz', { config: { access: 'public' }, schema: { tags: ['system'], summary: 'Is the database reachable and a policy in service?', response: { 200: healthResponse, 503: healthResponse } } }, async (_req, reply) => {
    const database = await databaseState(opts.pool);
    // The proxy keeps filtering from its in-memory policy while the database
    // is away, so that is "degraded", not down.
    const policy = opts.policyStatus();
    const status = database === 'ok' && policy !== undefined ? 'ok' : 'degraded';
    return reply.code(status === 'ok' ? 200 : 503).send({ status, database, ...(policy && { policy }) });
  });
};

/** 'ok', or why the database did not answer within DATABASE_CHECK_MS. */
async function databaseState(pool: Pool): Promise<string> {
  try {
    await queryWithin(pool, 'SELECT 1', [], DATABASE_CHECK_MS);
    return 'ok';
  } catch (err) {
    return `unreachable: ${(err as Error).message}`;
  }
}
