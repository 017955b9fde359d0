// GET /healthz: is the database reachable and is a policy in service? With
// the proxy in several workers, the policy reported is the oldest in service.
import type { FastifyPluginAsync } from 'fastify';
import type pg from 'pg';
import type { Pool } from '../../core/db.js';

/**
 * Longest the check waits for the database. A Postgres that hangs (a stalled
 * disk, a host gone without a reset) must still get the monitor an answer,
 * and the session asking must not stay checked out of the pool: the query's
 * own timeout releases it with the error, so the pool closes it.
 */
export const DATABASE_CHECK_MS = 2_000;

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
  // query_timeout is read from the query as well as the pool's settings (node-postgres), though its types list it for the pool only.
  const check = pool.query({ text: 'SELECT 1', query_timeout: DATABASE_CHECK_MS } as pg.QueryConfig);
  check.catch(() => undefined); // once the deadline has answered, its late failure is of no interest
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${DATABASE_CHECK_MS} ms`)), DATABASE_CHECK_MS);
  });
  try {
    await Promise.race([check, deadline]);
    return 'ok';
  } catch (err) {
    return `unreachable: ${(err as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}
