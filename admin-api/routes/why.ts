// "Why is this blocked?": the decision the proxy makes for a URL, a person or
// group, and a time, computed by the proxy's own decide() on the snapshot the
// proxy has in service (asked over the cluster channel when the proxy runs in
// workers), or on one compiled from the database (compiled-policy.ts), with
// every category the URL falls in and the sentence of the rule that decided.
// Any admin role may ask about anyone; everyone else may ask about themselves
// only.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { normaliseHost, splitHostPort } from '../../blocklists/host.js';
import type { Pool } from '../../core/db.js';
import { explain, type ExplainOutcome, type Explainer, type WhyQuestion, type WhyWho } from '../../core/policy/explain.js';
import type { RequestTarget } from '../../core/policy/types.js';
import type { Role } from '../../core/users.js';
import { principalOf, type Principal } from '../auth/principal.js';
import { CompiledPolicySource } from '../compiled-policy.js';
import { badRequest, Problem } from '../problem.js';
import { Text } from '../schemas.js';

const ADMIN_ROLES: readonly Role[] = ['it_admin', 'dsl', 'headteacher'];

const WhyBody = Type.Object(
  {
    url: Text({
      minLength: 1,
      maxLength: 4096,
      description:
        'a bare host (example.com), host/path, or a full http(s) URL. Without a path the answer is the one for an HTTPS site the proxy does not intercept (host only).',
    }),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'a username: decide as that person (their group)' })),
    group: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'a group key: decide as a member of that group' })),
    at: Type.Optional(Type.String({ format: 'date-time', description: 'when; default now (schedules depend on it)' })),
  },
  { additionalProperties: false },
);

const NamedCategory = Type.Object({ key: Type.String(), name: Type.String() });

const WhyAnswer = Type.Object({
  host: Type.String({ description: 'the host as the proxy normalises it' }),
  path: Type.Union([Type.String(), Type.Null()]),
  user: Type.Union([Type.String(), Type.Null()]),
  group: Type.String(),
  at: Type.String({ format: 'date-time' }),
  action: Type.Enum(['allow', 'block', 'monitor']),
  categories: Type.Array(NamedCategory, { description: 'every category the URL falls in, most severe first' }),
  category: Type.Union([NamedCategory, Type.Null()], { description: 'the category that decided, where one did' }),
  rule: Type.String({ description: 'the deciding rule, as a sentence' }),
  ruleKind: Type.Enum(['illegal', 'override', 'group_rule', 'default', 'safety']),
  ruleId: Type.Union([Type.Integer(), Type.Null()], { description: 'the override or group rule id' }),
  policy: Type.Enum(['running', 'compiled'], { description: "running: the proxy's snapshot in service; compiled: built from the database just now" }),
});

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/** The request the proxy would see for `text`; a 400 naming what is wrong otherwise. */
function requestTargetOf(text: string): RequestTarget {
  const invalid = (reason: string) => badRequest(`"${text}" ${reason}`, [{ name: 'body/url', reason }]);
  let rest = text.trim();
  let scheme = 'http';
  const m = SCHEME.exec(rest);
  if (m) {
    scheme = m[1].toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') throw invalid('is not an http or https URL');
    rest = rest.slice(m[0].length);
  }
  const end = rest.search(/[/?#]/);
  // As browsers read it, anything up to the last @ is user information, not the host.
  const authority = (end === -1 ? rest : rest.slice(0, end)).split('@').pop() as string;
  const split = splitHostPort(authority, scheme === 'https' ? 443 : 80);
  if (!split) throw invalid('has no valid host (and port)');
  const host = normaliseHost(split.host);
  if (host === undefined) throw invalid('has no valid host');
  const tail = end === -1 ? '' : rest.slice(end).replace(/#.*$/, '');
  const path = tail === '' ? undefined : tail.startsWith('?') ? `/${tail}` : tail;
  return path === undefined ? { host, port: split.port } : { host, port: split.port, path };
}

/** Whom the question is about: a 403 for a non-admin asking about someone else, a 400 for no such user. */
async function whoOf(pool: Pool, principal: Principal, body: { user?: string; group?: string }): Promise<WhyWho> {
  const isAdmin = principal.roles.some((role) => ADMIN_ROLES.includes(role));
  const user = body.user?.trim().toLowerCase();
  if (user !== undefined && body.group !== undefined) {
    throw badRequest('give a user or a group, not both', [{ name: 'body/group', reason: 'not with user' }]);
  }
  if (!isAdmin && (body.group !== undefined || (user !== undefined && user !== principal.username))) {
    throw new Problem(403, 'forbidden', 'you may ask about your own access only');
  }
  if (user === undefined && body.group !== undefined) return { kind: 'group', key: body.group };
  if (user === undefined && isAdmin) return { kind: 'default' };
  const username = user ?? principal.username;
  const { rows } = await pool.query<{ id: number; group_key: string }>(
    'SELECT u.id, g.key AS group_key FROM users u JOIN groups g ON g.id = u.group_id WHERE u.school_id = $1 AND u.username = $2',
    [principal.schoolId, username],
  );
  if (!rows[0]) throw badRequest(`there is no user "${username}"`, [{ name: 'body/user', reason: 'no such user' }]);
  return { kind: 'user', userId: rows[0].id, username, groupKey: rows[0].group_key };
}

export const whyRoutes: FastifyPluginAsyncTypebox<{ pool: Pool; explainOnProxy?: Explainer }> = async (app, { pool, explainOnProxy }) => {
  const compiled = new CompiledPolicySource(pool);

  /** The running proxy's answer where it serves this school; otherwise one from a policy compiled here. */
  async function answer(question: WhyQuestion): Promise<{ outcome: Exclude<ExplainOutcome, { kind: 'other-school' }>; policy: 'running' | 'compiled' }> {
    if (explainOnProxy) {
      let outcome: ExplainOutcome;
      try {
        outcome = await explainOnProxy(question);
      } catch (err) {
        throw new Problem(503, 'proxy-unavailable', `the proxy could not answer just now (${(err as Error).message}); ask again in a moment`);
      }
      if (outcome.kind !== 'other-school') return { outcome, policy: 'running' };
    }
    const outcome = explain(await compiled.forSchool(question.schoolId), question);
    if (outcome.kind === 'other-school') throw new Error(`the policy compiled for school #${question.schoolId} is another school's`);
    return { outcome, policy: 'compiled' };
  }

  app.post(
    '/api/why',
    {
      config: { access: 'signed-in' },
      schema: {
        tags: ['why'],
        summary: 'Why is this blocked (or allowed)? The decision the proxy makes, and the rule that makes it',
        description: 'Admin roles (it_admin, dsl, headteacher) may ask about any user or group (default: the unidentified); others about themselves only.',
        body: WhyBody,
        response: { 200: WhyAnswer },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const body = request.body;
      const target = requestTargetOf(body.url);
      const at = body.at === undefined ? new Date() : new Date(body.at);
      const who = await whoOf(pool, principal, body);
      const { outcome, policy } = await answer({ schoolId: principal.schoolId, target, at: at.toISOString(), who });
      if (outcome.kind === 'unknown-group') {
        const field = who.kind === 'group' ? 'body/group' : 'body/user';
        throw badRequest(`there is no group "${outcome.key}"`, [{ name: field, reason: 'no such group' }]);
      }
      return { ...outcome.explanation, policy };
    },
  );
};
