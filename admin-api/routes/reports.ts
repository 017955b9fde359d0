// Aggregate reports for every admin role: requests allowed, blocked and
// monitored by category, by group or by day, from the daily rollup
// (access_log_daily), and the most-blocked hosts, from the access log over a
// bounded range. Reports count, they never name: no usernames, no user ids.
// Days are the school's local days (schools.timezone), as in the rollup.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { Pool } from '../../core/db.js';
import { principalOf } from '../auth/principal.js';
import { daysBetween, Day } from '../instants.js';
import { badRequest } from '../problem.js';

const MAX_REPORT_DAYS = 366;
const MAX_TOP_HOSTS_DAYS = 31;

const Range = {
  from: Day('first day, inclusive (YYYY-MM-DD, school local time)'),
  to: Day('last day, inclusive'),
};

const RequestsQuery = Type.Object({
  ...Range,
  by: Type.Optional(Type.Enum(['category', 'group', 'day'], { description: 'default category' })),
});

const RequestsRow = Type.Object({
  key: Type.Union([Type.String(), Type.Null()], {
    description: 'category key, group key or day; null for uncategorised requests or a group since deleted',
  }),
  name: Type.String(),
  allowed: Type.Integer(),
  blocked: Type.Integer(),
  monitored: Type.Integer(),
  bytes: Type.Integer(),
});

const RequestsReport = Type.Object({
  from: Type.String(),
  to: Type.String(),
  by: Type.Enum(['category', 'group', 'day']),
  rows: Type.Array(RequestsRow),
});

const TopHostsQuery = Type.Object({
  ...Range,
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'default 20' })),
});

const TopHostsReport = Type.Object({
  from: Type.String(),
  to: Type.String(),
  rows: Type.Array(
    Type.Object({
      host: Type.String(),
      blocked: Type.Integer(),
      category: Type.Union([Type.String(), Type.Null()], { description: 'the category that blocked it most often' }),
    }),
  ),
});

// Each dimension as: the key and name selected, the join that supplies the
// name, and the grouping. The rollup names an uncategorised request's
// category '' (access-log/rollup.ts UNCATEGORISED).
const DIMENSIONS = {
  category: {
    select: "NULLIF(d.category, '') AS key, CASE WHEN d.category = '' THEN 'Uncategorised' ELSE COALESCE(c.name, d.category) END AS name",
    join: 'LEFT JOIN categories c ON c.key = d.category',
    group: 'd.category, c.name',
    order: 'blocked DESC, allowed DESC, key NULLS LAST',
  },
  group: {
    select: "g.key AS key, COALESCE(g.name, 'Deleted group') AS name",
    join: 'LEFT JOIN groups g ON g.id = d.group_id',
    group: 'd.group_id, g.key, g.name',
    order: 'blocked DESC, allowed DESC, key NULLS LAST',
  },
} as const;

const TOTALS = `COALESCE(sum(d.requests) FILTER (WHERE d.action = 'allowed'), 0) AS allowed,
                COALESCE(sum(d.requests) FILTER (WHERE d.action = 'blocked'), 0) AS blocked,
                COALESCE(sum(d.requests) FILTER (WHERE d.action = 'monitored'), 0) AS monitored,
                COALESCE(sum(d.bytes), 0) AS bytes`;

interface TotalsRow {
  key: string | null;
  name: string;
  allowed: string;
  blocked: string;
  monitored: string;
  bytes: string;
}

function checkRange(range: { from: string; to: string }, maxDays: number): void {
  const days = daysBetween(range.from, range.to) + 1;
  if (days < 1) throw badRequest('to must not be before from', [{ name: 'query/to', reason: 'is before from' }]);
  if (days > maxDays) {
    throw badRequest(`a report covers at most ${maxDays} days`, [{ name: 'query/from', reason: `range longer than ${maxDays} days` }]);
  }
}

function requestsSql(by: Static<typeof RequestsReport>['by']): string {
  if (by === 'day') {
    // Every day of the range, quiet ones too, so a chart has no gaps.
    return `SELECT to_char(days.day, 'YYYY-MM-DD') AS key, to_char(days.day, 'YYYY-MM-DD') AS name, ${TOTALS}
              FROM generate_series($2::date, $3::date, interval '1 day') AS days(day)
              LEFT JOIN access_log_daily d ON d.school_id = $1 AND d.day = days.day::date
             GROUP BY days.day ORDER BY days.day`;
  }
  const dimension = DIMENSIONS[by];
  return `SELECT ${dimension.select}, ${TOTALS}
            FROM access_log_daily d ${dimension.join}
           WHERE d.school_id = $1 AND d.day BETWEEN $2::date AND $3::date
           GROUP BY ${dimension.group} ORDER BY ${dimension.order}`;
}

export const reportRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['it_admin', 'dsl', 'headteacher', 'governor'] as const;

  app.get(
    '/api/reports/requests',
    {
      config: { access },
      schema: {
        tags: ['reports'],
        summary: 'Requests allowed, blocked and monitored by category, group or day (from the daily rollup)',
        description:
          'Counted from the daily rollup, which counts a request once in each of its categories: by category, that is the ' +
          'number of requests that fell in it; by group or day, a request in several categories counts once per category. ' +
          `At most ${MAX_REPORT_DAYS} days; days not yet rolled up count as none.`,
        querystring: RequestsQuery,
        response: { 200: RequestsReport },
      },
    },
    async (request) => {
      const { from, to } = request.query;
      const by = request.query.by ?? 'category';
      checkRange(request.query, MAX_REPORT_DAYS);
      const { rows } = await pool.query<TotalsRow>(requestsSql(by), [principalOf(request).schoolId, from, to]);
      return {
        from,
        to,
        by,
        rows: rows.map((row) => ({
          key: row.key,
          name: row.name,
          allowed: Number(row.allowed),
          blocked: Number(row.blocked),
          monitored: Number(row.monitored),
          bytes: Number(row.bytes),
        })),
      };
    },
  );

  app.get(
    '/api/reports/top-blocked-hosts',
    {
      config: { access },
      schema: {
        tags: ['reports'],
        summary: 'The hosts blocked most often (from the access log)',
        description: `At most ${MAX_TOP_HOSTS_DAYS} days, since it reads the access log itself.`,
        querystring: TopHostsQuery,
        response: { 200: TopHostsReport },
      },
    },
    async (request) => {
      const { from, to } = request.query;
      checkRange(request.query, MAX_TOP_HOSTS_DAYS);
      const schoolId = principalOf(request).schoolId;
      // The school's local days as instants first, so the planner sees constant bounds and reads only those partitions.
      const bounds = await pool.query<{ start: Date; end: Date }>(
        `SELECT $2::date::timestamp AT TIME ZONE timezone AS start, ($3::date + 1)::timestamp AT TIME ZONE timezone AS end
           FROM schools WHERE id = $1`,
        [schoolId, from, to],
      );
      const { start, end } = bounds.rows[0];
      const { rows } = await pool.query<{ host: string; blocked: string; category: string | null }>(
        `SELECT l.host, count(*) AS blocked, mode() WITHIN GROUP (ORDER BY l.category) AS category
           FROM access_log l
          WHERE l.school_id = $1 AND l.action = 'blocked' AND l.time >= $2 AND l.time < $3
          GROUP BY l.host ORDER BY blocked DESC, l.host LIMIT $4`,
        [schoolId, start, end, request.query.limit ?? 20],
      );
      return { from, to, rows: rows.map((row) => ({ host: row.host, blocked: Number(row.blocked), category: row.category })) };
    },
  );
};
