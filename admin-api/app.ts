// The admin API's fastify application. Routes live one resource per file in
// routes/; this file only assembles them with what they need, in an order
// that matters: error handling and conventions first, then who is asking
// (authentication), whether they may (access), whether the change is theirs
// (CSRF), and only then the routes.
//
// A new route file: declare `config: { access: ... }` (auth/roles.ts) and a
// TypeBox schema for params, querystring, body and responses on every route,
// throw a Problem (problem.ts) for anything the client got wrong, audit every
// change with appendAudit(client, ...) in the change's transaction (audit.ts),
// and page lists with pagination.ts.
import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../core/config.js';
import { connectionStringOf, createPool, type Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import type { Explainer } from '../core/policy/explain.js';
import { installAuthentication } from './auth/authenticate.js';
import { installCsrfProtection } from './auth/csrf.js';
import { DEFAULT_LOGIN_RATE_LIMIT, type LoginRateLimit } from './auth/login-limit.js';
import { installAccessControl } from './auth/roles.js';
import { installOpenApi } from './openapi.js';
import { installProblemHandlers } from './problem.js';
import { alertRoutes } from './routes/alerts.js';
import { auditRoutes } from './routes/audit.js';
import { blocklistRoutes, DEFAULT_UPLOAD_LIMIT_BYTES } from './routes/blocklists.js';
import { caseRoutes } from './routes/cases.js';
import { categoryRoutes } from './routes/categories.js';
import { groupRuleRoutes } from './routes/group-rules.js';
import { groupRoutes } from './routes/groups.js';
import { incidentReportRoutes } from './routes/incident-reports.js';
import { healthRoutes, type PolicyStatus } from './routes/health.js';
import { historyRoutes } from './routes/history.js';
import { investigationRoutes } from './routes/investigations.js';
import { listEntryRoutes } from './routes/list-entries.js';
import { metricsRoutes } from './routes/metrics.js';
import { overrideRoutes } from './routes/overrides.js';
import { proxyPacRoutes } from './routes/proxy-pac.js';
import { reportPageRoutes } from './routes/report-pages.js';
import { reportRoutes } from './routes/reports.js';
import { scheduleRoutes } from './routes/schedules.js';
import { searchTermRoutes } from './routes/search-terms.js';
import { sessionRoutes } from './routes/session.js';
import { tokenRoutes } from './routes/tokens.js';
import { unblockRequestRoutes } from './routes/unblock-requests.js';
import { userRoutes } from './routes/users.js';
import { whyRoutes } from './routes/why.js';
import { validatorCompiler } from './validation.js';

export interface AdminAppOptions {
  config: Config;
  /** For work in the background (blocklist imports); requests get a pool of their own to it, with a query timeout. */
  pool: Pool;
  /** Longest a request's query may take; default ADMIN_QUERY_TIMEOUT_MS. */
  queryTimeoutMs?: number;
  log: Logger;
  /** The policy the proxy has in service; undefined while no proxy has one (every worker restarting). */
  policyStatus: () => PolicyStatus | undefined;
  /** Prometheus text exposition of the running process's counters. */
  metrics: () => Promise<string>;
  /** Sign-in attempts allowed per client address and per username; default 10 per 15 minutes. */
  loginRateLimit?: LoginRateLimit;
  /** Asks the running proxy "why is this blocked?"; without it the answer comes from a policy compiled from the database. */
  explainOnProxy?: Explainer;
  /** Largest blocklist archive an admin may upload; default 200 MiB. */
  blocklistUploadLimitBytes?: number;
}

export const BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * Longest a query made for a request may take. A Postgres that hangs rather
 * than refuses (a stalled disk) would otherwise leave every page waiting for
 * as long as it hangs, each holding one of the pool's sessions; with this,
 * the request gets a 503 and the session is closed (endSession in
 * core/db.ts). Generous: a request's queries take milliseconds, a search
 * over a day without its index some seconds.
 */
export const ADMIN_QUERY_TIMEOUT_MS = 30_000;
// As many sessions as the admin API had when it shared the proxy's pool: a
// history download holds one for as long as the browser takes to read it.
const REQUEST_POOL_SIZE = 10;

export async function buildAdminApp(options: AdminAppOptions): Promise<FastifyInstance> {
  // pino's own Logger type and fastify's view of it differ only in generics.
  const loggerInstance = options.log.child({ component: 'admin-api' }) as FastifyBaseLogger;
  const app = Fastify({ loggerInstance, bodyLimit: BODY_LIMIT_BYTES });
  const pool = createPool(connectionStringOf(options.pool), options.log, REQUEST_POOL_SIZE, options.queryTimeoutMs ?? ADMIN_QUERY_TIMEOUT_MS);
  app.addHook('onClose', () => pool.end());
  app.setValidatorCompiler(validatorCompiler);
  installProblemHandlers(app);
  await installOpenApi(app);
  await app.register(cookie);
  await app.register(rateLimit, { global: false });
  installAuthentication(app, pool);
  installAccessControl(app);
  installCsrfProtection(app);

  await app.register(healthRoutes, { pool, policyStatus: options.policyStatus });
  await app.register(proxyPacRoutes, { config: options.config });
  await app.register(metricsRoutes, { metrics: options.metrics });
  await app.register(sessionRoutes, { pool, loginRateLimit: options.loginRateLimit ?? DEFAULT_LOGIN_RATE_LIMIT });
  await app.register(tokenRoutes, { pool });
  await app.register(userRoutes, { pool });
  await app.register(groupRoutes, { pool });
  await app.register(auditRoutes, { pool });
  await app.register(categoryRoutes, { pool });
  await app.register(groupRuleRoutes, { pool });
  await app.register(listEntryRoutes, { pool });
  await app.register(overrideRoutes, { pool });
  await app.register(scheduleRoutes, { pool });
  await app.register(blocklistRoutes, {
    pool,
    importPool: options.pool,
    config: options.config,
    log: options.log,
    uploadLimitBytes: options.blocklistUploadLimitBytes ?? DEFAULT_UPLOAD_LIMIT_BYTES,
  });
  await app.register(whyRoutes, { pool, explainOnProxy: options.explainOnProxy });
  await app.register(reportRoutes, { pool });
  await app.register(historyRoutes, { pool });
  await app.register(investigationRoutes, { pool });
  await app.register(incidentReportRoutes, { pool, selfReportWindowMinutes: options.config.selfReportWindowMinutes });
  await app.register(unblockRequestRoutes, { pool });
  await app.register(reportPageRoutes, { pool });
  await app.register(alertRoutes, { pool });
  await app.register(caseRoutes, { pool });
  await app.register(searchTermRoutes, { pool });
  return app;
}
