// Schedules (weekly windows in the school's time zone, optionally on term
// days only) and the calendar of term dates and holidays (it_admin). Windows
// are checked by compileSchedule, the proxies' own parser, and every change
// by compiling the whole policy before it commits (policy-check.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { compileSchedule, ScheduleError, SchoolClock, type CalendarPeriod as CalendarPeriodInput } from '../../core/schedule.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf, type Principal } from '../auth/principal.js';
import { assertPolicyCompiles } from '../policy-check.js';
import { badRequest, conflict, notFound } from '../problem.js';
import { IdParams, NoContent, Text } from '../schemas.js';

const Time = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$', description: 'HH:MM local time; 24:00 for the end of the day' });

const Window = Type.Object(
  {
    days: Type.Array(Type.Integer({ minimum: 1, maximum: 7 }), { minItems: 1, maxItems: 7, description: 'ISO weekdays, 1 = Monday … 7 = Sunday' }),
    start: Time,
    end: Time,
  },
  { additionalProperties: false },
);

const Windows = Type.Array(Window, { minItems: 1, maxItems: 50, description: 'end is exclusive and after start; split a window that crosses midnight' });

const Schedule = Type.Object({
  id: Type.Integer(),
  key: Type.String(),
  name: Type.String(),
  windows: Windows,
  termTimeOnly: Type.Boolean({ description: 'the windows apply on term days only' }),
  description: Type.String({ description: 'as rule sentences show it' }),
  rules: Type.Integer({ description: 'block_during rules that use it' }),
});
type Schedule = Static<typeof Schedule>;

const ScheduleName = Text({ minLength: 1, maxLength: 100 });

const CreateScheduleBody = Type.Object(
  {
    key: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}$', description: 'lower-case letters, digits, _ and -; cannot change later' }),
    name: ScheduleName,
    windows: Windows,
    termTimeOnly: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const UpdateScheduleBody = Type.Object(
  { name: Type.Optional(ScheduleName), windows: Type.Optional(Windows), termTimeOnly: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);

const PeriodKind = Type.Enum(['term', 'holiday']);
const LocalDate = Type.String({ format: 'date', description: 'YYYY-MM-DD, inclusive' });

const CalendarPeriod = Type.Object({
  id: Type.Integer(),
  kind: PeriodKind,
  name: Type.String(),
  startsOn: LocalDate,
  endsOn: LocalDate,
});
type CalendarPeriod = Static<typeof CalendarPeriod>;

const PeriodName = Text({ minLength: 1, maxLength: 100 });

const CreatePeriodBody = Type.Object(
  { kind: PeriodKind, name: PeriodName, startsOn: LocalDate, endsOn: LocalDate },
  { additionalProperties: false },
);

const UpdatePeriodBody = Type.Object(
  { kind: Type.Optional(PeriodKind), name: Type.Optional(PeriodName), startsOn: Type.Optional(LocalDate), endsOn: Type.Optional(LocalDate) },
  { additionalProperties: false, minProperties: 1 },
);

interface ScheduleRow {
  id: number;
  key: string;
  name: string;
  windows: unknown;
  term_time_only: boolean;
  rules: number;
}

const SELECT_SCHEDULE = `SELECT s.id, s.key, s.name, s.windows, s.term_time_only,
                                (SELECT count(*)::int FROM group_rules r WHERE r.schedule_id = s.id) AS rules
                           FROM schedules s`;

/** The stored schedule checked and described by the proxies' parser; a 400 naming the bad window otherwise. */
function compiled(row: Omit<ScheduleRow, 'rules'>, timeZone: string) {
  try {
    return compileSchedule({ id: row.id, key: row.key, name: row.name, windows: row.windows, termTimeOnly: row.term_time_only }, new SchoolClock(timeZone, []));
  } catch (err) {
    if (err instanceof ScheduleError) throw badRequest(err.message, [{ name: 'body/windows', reason: err.message }]);
    throw err;
  }
}

async function schoolTimeZone(db: Pool | PoolClient, schoolId: number): Promise<string> {
  const { rows } = await db.query<{ timezone: string }>('SELECT timezone FROM schools WHERE id = $1', [schoolId]);
  return rows[0].timezone;
}

function scheduleOf(row: ScheduleRow, timeZone: string): Schedule {
  let description: string;
  try {
    description = compiled(row, timeZone).description;
  } catch (err) {
    // Only a row written past the API can fail here; show it rather than fail the whole list.
    description = `invalid: ${(err as Error).message}`;
  }
  return {
    id: row.id,
    key: row.key,
    name: row.name,
    windows: row.windows as Schedule['windows'],
    termTimeOnly: row.term_time_only,
    description,
    rules: row.rules,
  };
}

async function findSchedule(db: Pool | PoolClient, schoolId: number, id: number, forUpdate = false): Promise<ScheduleRow> {
  const { rows } = await db.query<ScheduleRow>(`${SELECT_SCHEDULE} WHERE s.school_id = $1 AND s.id = $2 ${forUpdate ? 'FOR UPDATE' : ''}`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no schedule ${id}`);
  return rows[0];
}

interface PeriodRow {
  id: number;
  kind: 'term' | 'holiday';
  name: string;
  starts_on: string;
  ends_on: string;
}

// Dates as text: pg would otherwise turn them into Dates at local midnight.
const SELECT_PERIOD = 'SELECT id, kind, name, starts_on::text AS starts_on, ends_on::text AS ends_on FROM calendar_periods';

function periodOf(row: PeriodRow): CalendarPeriod {
  return { id: row.id, kind: row.kind, name: row.name, startsOn: row.starts_on, endsOn: row.ends_on };
}

async function findPeriod(db: Pool | PoolClient, schoolId: number, id: number): Promise<PeriodRow> {
  const { rows } = await db.query<PeriodRow>(`${SELECT_PERIOD} WHERE school_id = $1 AND id = $2`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no calendar period ${id}`);
  return rows[0];
}

function checkPeriod(period: CalendarPeriodInput): void {
  if (period.endsOn < period.startsOn) {
    throw badRequest(`"${period.name}" ends (${period.endsOn}) before it starts (${period.startsOn})`, [{ name: 'body/endsOn', reason: 'is before startsOn' }]);
  }
}

function audit(client: PoolClient, principal: Principal, action: string, target: string, detail: Record<string, unknown>) {
  return appendAudit(client, { schoolId: principal.schoolId, actor: actorOf(principal), action, target, detail });
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

export const scheduleRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['it_admin'] as const;

  app.get(
    '/api/schedules',
    {
      config: { access },
      // A school has a handful of schedules: the whole list comes at once.
      schema: { tags: ['schedules'], summary: 'All schedules, by key', response: { 200: Type.Object({ items: Type.Array(Schedule) }) } },
    },
    async (request) => {
      const { schoolId } = principalOf(request);
      const timeZone = await schoolTimeZone(pool, schoolId);
      const { rows } = await pool.query<ScheduleRow>(`${SELECT_SCHEDULE} WHERE s.school_id = $1 ORDER BY s.key`, [schoolId]);
      return { items: rows.map((row) => scheduleOf(row, timeZone)) };
    },
  );

  app.post(
    '/api/schedules',
    { config: { access }, schema: { tags: ['schedules'], summary: 'Create a schedule', body: CreateScheduleBody, response: { 201: Schedule } } },
    async (request, reply) => {
      const principal = principalOf(request);
      const body = request.body;
      const row = { id: 0, key: body.key, name: body.name.trim(), windows: body.windows, term_time_only: body.termTimeOnly ?? false };
      const created = await inTransaction(pool, async (client) => {
        const timeZone = await schoolTimeZone(client, principal.schoolId);
        compiled(row, timeZone);
        let id: number;
        try {
          const insert = await client.query<{ id: number }>(
            'INSERT INTO schedules (school_id, key, name, windows, term_time_only) VALUES ($1, $2, $3, $4, $5) RETURNING id',
            [principal.schoolId, row.key, row.name, JSON.stringify(row.windows), row.term_time_only],
          );
          id = insert.rows[0].id;
        } catch (err) {
          if (isUniqueViolation(err)) throw conflict(`schedule "${row.key}" already exists`);
          throw err;
        }
        await assertPolicyCompiles(client, principal.schoolId);
        await audit(client, principal, 'schedule.create', `schedule:${row.key}`, { scheduleId: id, name: row.name, windows: row.windows, termTimeOnly: row.term_time_only });
        return scheduleOf(await findSchedule(client, principal.schoolId, id), timeZone);
      });
      return reply.code(201).send(created);
    },
  );

  app.patch(
    '/api/schedules/:id',
    {
      config: { access },
      schema: { tags: ['schedules'], summary: "Change a schedule's name, windows or term-time flag", params: IdParams, body: UpdateScheduleBody, response: { 200: Schedule } },
    },
    async (request) => {
      const principal = principalOf(request);
      const body = request.body;
      return inTransaction(pool, async (client) => {
        const timeZone = await schoolTimeZone(client, principal.schoolId);
        const before = await findSchedule(client, principal.schoolId, request.params.id, true);
        const after = {
          ...before,
          name: body.name?.trim() ?? before.name,
          windows: body.windows ?? before.windows,
          term_time_only: body.termTimeOnly ?? before.term_time_only,
        };
        compiled(after, timeZone);
        await client.query('UPDATE schedules SET name = $2, windows = $3, term_time_only = $4 WHERE id = $1', [
          before.id,
          after.name,
          JSON.stringify(after.windows),
          after.term_time_only,
        ]);
        await assertPolicyCompiles(client, principal.schoolId);
        await audit(client, principal, 'schedule.update', `schedule:${before.key}`, {
          scheduleId: before.id,
          from: { name: before.name, windows: before.windows, termTimeOnly: before.term_time_only },
          to: { name: after.name, windows: after.windows, termTimeOnly: after.term_time_only },
        });
        return scheduleOf(await findSchedule(client, principal.schoolId, before.id), timeZone);
      });
    },
  );

  app.delete(
    '/api/schedules/:id',
    {
      config: { access },
      schema: { tags: ['schedules'], summary: 'Delete a schedule no rule uses (409 otherwise)', params: IdParams, response: { 204: NoContent } },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await inTransaction(pool, async (client) => {
        const before = await findSchedule(client, principal.schoolId, request.params.id, true);
        // Locks the rules that use it, so none can be added meanwhile unnoticed.
        const users = await client.query<{ rule: string }>(
          `SELECT g.key || '/' || c.key AS rule FROM group_rules r JOIN groups g ON g.id = r.group_id JOIN categories c ON c.id = r.category_id
            WHERE r.schedule_id = $1 ORDER BY 1 FOR UPDATE OF r`,
          [before.id],
        );
        if (users.rows.length > 0) {
          throw conflict(`schedule "${before.key}" is used by the rules ${users.rows.map((r) => r.rule).join(', ')}; change those first`);
        }
        await client.query('DELETE FROM schedules WHERE id = $1', [before.id]);
        await audit(client, principal, 'schedule.delete', `schedule:${before.key}`, {
          scheduleId: before.id,
          name: before.name,
          windows: before.windows,
          termTimeOnly: before.term_time_only,
        });
      });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/api/calendar',
    {
      config: { access },
      // A few periods a year: the whole list comes at once.
      schema: { tags: ['schedules'], summary: 'Term dates and holidays, by start date', response: { 200: Type.Object({ items: Type.Array(CalendarPeriod) }) } },
    },
    async (request) => {
      const { rows } = await pool.query<PeriodRow>(`${SELECT_PERIOD} WHERE school_id = $1 ORDER BY starts_on, id`, [principalOf(request).schoolId]);
      return { items: rows.map(periodOf) };
    },
  );

  app.post(
    '/api/calendar',
    {
      config: { access },
      schema: {
        tags: ['schedules'],
        summary: 'Add a term or a holiday',
        description: 'A day is a term day when some term covers it and no holiday does; with no terms recorded, every day is.',
        body: CreatePeriodBody,
        response: { 201: CalendarPeriod },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const period = { ...request.body, name: request.body.name.trim() };
      checkPeriod(period);
      const created = await inTransaction(pool, async (client) => {
        const { rows } = await client.query<{ id: number }>(
          'INSERT INTO calendar_periods (school_id, kind, name, starts_on, ends_on) VALUES ($1, $2, $3, $4, $5) RETURNING id',
          [principal.schoolId, period.kind, period.name, period.startsOn, period.endsOn],
        );
        await assertPolicyCompiles(client, principal.schoolId);
        await audit(client, principal, 'calendar_period.create', `calendar_period:${rows[0].id}`, { ...period });
        return periodOf(await findPeriod(client, principal.schoolId, rows[0].id));
      });
      return reply.code(201).send(created);
    },
  );

  app.patch(
    '/api/calendar/:id',
    {
      config: { access },
      schema: { tags: ['schedules'], summary: 'Change a term or holiday', params: IdParams, body: UpdatePeriodBody, response: { 200: CalendarPeriod } },
    },
    async (request) => {
      const principal = principalOf(request);
      const body = request.body;
      return inTransaction(pool, async (client) => {
        const before = periodOf(await findPeriod(client, principal.schoolId, request.params.id));
        const after = {
          kind: body.kind ?? before.kind,
          name: body.name?.trim() ?? before.name,
          startsOn: body.startsOn ?? before.startsOn,
          endsOn: body.endsOn ?? before.endsOn,
        };
        checkPeriod(after);
        await client.query('UPDATE calendar_periods SET kind = $2, name = $3, starts_on = $4, ends_on = $5 WHERE id = $1', [
          before.id,
          after.kind,
          after.name,
          after.startsOn,
          after.endsOn,
        ]);
        await assertPolicyCompiles(client, principal.schoolId);
        const { id, ...from } = before;
        await audit(client, principal, 'calendar_period.update', `calendar_period:${id}`, { from, to: after });
        return periodOf(await findPeriod(client, principal.schoolId, id));
      });
    },
  );

  app.delete(
    '/api/calendar/:id',
    { config: { access }, schema: { tags: ['schedules'], summary: 'Delete a term or holiday', params: IdParams, response: { 204: NoContent } } },
    async (request, reply) => {
      const principal = principalOf(request);
      await inTransaction(pool, async (client) => {
        const { id, ...period } = periodOf(await findPeriod(client, principal.schoolId, request.params.id));
        await client.query('DELETE FROM calendar_periods WHERE id = $1', [id]);
        await audit(client, principal, 'calendar_period.delete', `calendar_period:${id}`, period);
      });
      return reply.code(204).send(null);
    },
  );
};
