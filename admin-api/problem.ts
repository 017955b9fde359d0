// Errors as RFC 9457 problem details (application/problem+json). Routes throw
// a Problem; the error handler turns everything else — validation failures,
// oversized or malformed bodies, rate limits — into one too, so a client
// never sees fastify's own error shape and bad input never becomes a 500.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { isDatabaseUnavailable } from '../core/db.js';
import { UserError } from '../core/users.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
const TYPE_BASE = 'https://portcullis.invalid/problems/';

export const InvalidParam = Type.Object({
  name: Type.String({ description: 'where the bad value is, e.g. body/username or query/limit' }),
  reason: Type.String(),
});
export type InvalidParam = Static<typeof InvalidParam>;

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    'invalid-params': Type.Optional(Type.Array(InvalidParam)),
  },
  { title: 'Problem', description: 'RFC 9457 problem details' },
);
export type ProblemBody = Static<typeof ProblemSchema>;

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Not signed in',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  406: 'Not acceptable',
  409: 'Conflict',
  413: 'Request body too large',
  415: 'Unsupported media type',
  429: 'Too many requests',
  500: 'Internal server error',
  503: 'Service unavailable',
};

/** Thrown by routes for any expected failure; `slug` names the problem type. */
export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly detail: string,
    readonly invalidParams?: InvalidParam[],
  ) {
    super(detail);
    this.name = 'Problem';
  }
}

export const badRequest = (detail: string, invalidParams?: InvalidParam[]) =>
  new Problem(400, 'bad-request', detail, invalidParams);
export const notFound = (detail: string) => new Problem(404, 'not-found', detail);
export const conflict = (detail: string) => new Problem(409, 'conflict', detail);

const DATABASE_UNAVAILABLE = 'database-unavailable';
/** Seconds a client is asked to wait before trying again while the database is away. */
export const DATABASE_RETRY_AFTER_SECONDS = 10;

// Whether a change that was under way when the connection went was saved is
// not known here, so the detail does not promise either way.
const databaseUnavailable = (reason: string) =>
  new Problem(
    503,
    DATABASE_UNAVAILABLE,
    `the database could not be reached (${reason}); try again shortly. The proxy goes on filtering and recording visits meanwhile`,
  );

export function problemBody(status: number, slug: string, detail: string, invalidParams?: InvalidParam[]): ProblemBody {
  return {
    type: TYPE_BASE + slug,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    ...(invalidParams && invalidParams.length > 0 ? { 'invalid-params': invalidParams } : {}),
  };
}

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problemBody(problem.status, problem.slug, problem.detail, problem.invalidParams));
}

interface SchemaError {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** One entry per offending field, named as `body/username`, `query/limit`, ... */
export function invalidParamsOf(context: string, errors: readonly SchemaError[]): InvalidParam[] {
  const seen = new Map<string, string>();
  for (const e of errors) {
    const path = (e.instancePath ?? '').split('/').filter(Boolean);
    const names: string[] = [];
    const missing = e.params?.requiredProperties ?? e.params?.missingProperty;
    const extra = e.params?.additionalProperties;
    if (Array.isArray(missing) || typeof missing === 'string') {
      for (const m of [missing].flat()) names.push([context, ...path, String(m)].join('/'));
      for (const n of names) if (!seen.has(n)) seen.set(n, 'is required');
      continue;
    }
    if (Array.isArray(extra)) {
      for (const x of extra) {
        const n = [context, ...path, String(x)].join('/');
        if (!seen.has(n)) seen.set(n, 'is not a known field');
      }
      continue;
    }
    // TypeBox also reports each additional property as "schema is false"; the entry above says it better.
    if (e.message === 'schema is false') continue;
    const n = [context, ...path].join('/');
    if (!seen.has(n)) seen.set(n, e.message ?? 'is invalid');
  }
  return [...seen].map(([name, reason]) => ({ name, reason }));
}

// Postgres refuses some input only when it arrives (a NUL character in text,
// a number out of range); that is the client's mistake, not ours.
const POSTGRES_INPUT_ERRORS = new Set(['22021', '22P05', '22003', '22001', '22P02', '54000']);

function asProblem(err: FastifyError & { validation?: SchemaError[]; validationContext?: string }): Problem | undefined {
  if (err instanceof Problem) return err;
  if (err instanceof UserError) return badRequest(err.message);
  if (err.validation) {
    // fastify calls the query string "querystring"; clients know it as the query.
    const context = err.validationContext === 'querystring' ? 'query' : (err.validationContext ?? 'request');
    const params = invalidParamsOf(context, err.validation);
    const fields = params.map((p) => p.name).join(', ');
    return new Problem(400, 'invalid-params', `invalid ${fields || context}`, params);
  }
  if (isDatabaseUnavailable(err)) return databaseUnavailable(err.message);
  const pgCode = (err as { code?: unknown }).code;
  if (typeof pgCode === 'string' && POSTGRES_INPUT_ERRORS.has(pgCode)) {
    return badRequest(`the database refused a value: ${err.message}`);
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new Problem(413, 'body-too-large', err.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new Problem(err.statusCode ?? 415, 'unsupported-media-type', err.message);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return badRequest('the body is empty but the content type says JSON');
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new Problem(400, 'malformed-json', `the body is not valid JSON: ${err.message}`);
  }
  const status = err.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new Problem(status, status === 429 ? 'rate-limited' : 'bad-request', err.message);
  }
  return undefined;
}

export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const problem = asProblem(err);
    if (problem) {
      if (problem.status >= 500) request.log.error({ err }, 'request failed');
      if (problem.slug === DATABASE_UNAVAILABLE) reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
      return sendProblem(reply, problem);
    }
    request.log.error({ err }, 'unexpected error');
    return sendProblem(reply, new Problem(500, 'internal', 'something went wrong on our side; it has been logged'));
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, notFound(`no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}
