// GET /metrics: Prometheus text exposition of the process's counters, for an
// IT admin or a scraper holding an IT admin's bearer token. The counters are
// the process's own, so a scraper is answered while Postgres is away too:
// that is when the access log's spool counters matter.
import type { FastifyPluginAsync } from 'fastify';

export const metricsRoutes: FastifyPluginAsync<{ metrics: () => Promise<string> }> = async (app, opts) => {
  app.get(
    '/metrics',
    { config: { access: ['it_admin'], answersWithoutDatabase: true }, schema: { tags: ['system'], summary: 'Prometheus metrics (text exposition format)' } },
    async (_req, reply) => reply.type('text/plain; version=0.0.4').send(await opts.metrics()),
  );
};
