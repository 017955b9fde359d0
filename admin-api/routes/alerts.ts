// Alerts for the DSL (raised by safeguarding/alert-recorder.ts from the
// access-log path): list, one alert, acknowledge with a note. Each alert
// names the access-log rows that raised it and the state of its webhook
// delivery.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { inTransaction, type Pool, type PoolClient } from '../../core/db.js';
import { ALERT_KINDS } from '../../safeguarding/alert-detector.js';
import type { StoredAlertRow } from '../../safeguarding/alert-delivery.js';
import { appendAudit } from '../audit.js';
import { actorOf, principalOf } from '../auth/principal.js';
import { decodeCursor, Page, pageLimit, pageOf, PageQuery } from '../pagination.js';
import { conflict, notFound } from '../problem.js';
import { IdParams, Text } from '../schemas.js';

const Alert = Type.Object({
  id: Type.Integer(),
  kind: Type.Enum(ALERT_KINDS),
  raisedAt: Type.String({ format: 'date-time' }),
  username: Type.Union([Type.String(), Type.Null()], { description: 'null: the proxy could not identify the person' }),
  clientIp: Type.String(),
  host: Type.String(),
  category: Type.Union([Type.String(), Type.Null()]),
  summary: Type.String(),
  accessLogIds: Type.Array(Type.String({ format: 'uuid' })),
  acknowledgedBy: Type.Union([Type.String(), Type.Null()]),
  acknowledgedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  acknowledgeNote: Type.Union([Type.String(), Type.Null()]),
  webhook: Type.Object({
    state: Type.Enum(['none', 'pending', 'delivered', 'failed']),
    attempts: Type.Integer(),
    nextAttemptAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    lastError: Type.Union([Type.String(), Type.Null()]),
    deliveredAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  }),
});
type Alert = Static<typeof Alert>;

interface AlertRow extends StoredAlertRow {
  acknowledged_by: string | null;
  acknowledged_at: Date | null;
  acknowledge_note: string | null;
  webhook_state: Alert['webhook']['state'];
  webhook_attempts: number;
  webhook_next_attempt_at: Date | null;
  webhook_last_error: string | null;
  webhook_delivered_at: Date | null;
}

const SELECT_ALERT = `SELECT a.id, a.kind, a.raised_at, a.username, host(a.client_ip) AS client_ip, a.host, a.category, a.summary,
                             a.access_log_ids::text[] AS access_log_ids, k.username AS acknowledged_by, a.acknowledged_at, a.acknowledge_note,
                             a.webhook_state, a.webhook_attempts, a.webhook_next_attempt_at, a.webhook_last_error, a.webhook_delivered_at
                        FROM alerts a LEFT JOIN users k ON k.id = a.acknowledged_by`;

function alertOf(row: AlertRow): Alert {
  return {
    id: row.id,
    kind: row.kind,
    raisedAt: row.raised_at.toISOString(),
    username: row.username,
    clientIp: row.client_ip,
    host: row.host,
    category: row.category,
    summary: row.summary,
    accessLogIds: row.access_log_ids,
    acknowledgedBy: row.acknowledged_by,
    acknowledgedAt: row.acknowledged_at?.toISOString() ?? null,
    acknowledgeNote: row.acknowledge_note,
    webhook: {
      state: row.webhook_state,
      attempts: row.webhook_attempts,
      nextAttemptAt: row.webhook_next_attempt_at?.toISOString() ?? null,
      lastError: row.webhook_last_error,
      deliveredAt: row.webhook_delivered_at?.toISOString() ?? null,
    },
  };
}

async function findAlert(db: Pool | PoolClient, schoolId: number, id: number): Promise<Alert> {
  const { rows } = await db.query<AlertRow>(`${SELECT_ALERT} WHERE a.school_id = $1 AND a.id = $2`, [schoolId, id]);
  if (!rows[0]) throw notFound(`no alert ${id}`);
  return alertOf(rows[0]);
}

const ListQuery = Type.Object({
  ...PageQuery,
  acknowledged: Type.Optional(Type.Boolean({ description: 'omitted: both' })),
  kind: Type.Optional(Type.Enum(ALERT_KINDS)),
});

export const alertRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  const access = ['dsl'] as const;

  app.get(
    '/api/alerts',
    { config: { access }, schema: { tags: ['safeguarding'], summary: 'Alerts, newest first', querystring: ListQuery, response: { 200: Page(Alert) } } },
    async (request) => {
      const { acknowledged, kind, cursor } = request.query;
      const limit = pageLimit(request.query);
      const after = decodeCursor(cursor, Type.Tuple([Type.Integer({ minimum: 1 })]));
      const { rows } = await pool.query<AlertRow>(
        `${SELECT_ALERT} WHERE a.school_id = $1 AND ($2::boolean IS NULL OR (a.acknowledged_at IS NOT NULL) = $2)
            AND ($3::text IS NULL OR a.kind = $3) AND ($4::int IS NULL OR a.id < $4)
          ORDER BY a.id DESC LIMIT $5`,
        [principalOf(request).schoolId, acknowledged ?? null, kind ?? null, after?.[0] ?? null, limit + 1],
      );
      return pageOf(rows.map(alertOf), limit, (a) => [a.id]);
    },
  );

  app.get(
    '/api/alerts/:id',
    { config: { access }, schema: { tags: ['safeguarding'], summary: 'One alert', params: IdParams, response: { 200: Alert } } },
    async (request) => findAlert(pool, principalOf(request).schoolId, request.params.id),
  );

  app.post(
    '/api/alerts/:id/acknowledge',
    {
      config: { access },
      schema: {
        tags: ['safeguarding'],
        summary: 'Acknowledge an alert with a note of what was done',
        params: IdParams,
        body: Type.Object({ note: Text({ minLength: 1, maxLength: 4000 }) }, { additionalProperties: false }),
        response: { 200: Alert },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const note = request.body.note.trim();
      return inTransaction(pool, async (client) => {
        const { rows } = await client.query<{ acknowledged_at: Date | null }>(
          'SELECT acknowledged_at FROM alerts WHERE school_id = $1 AND id = $2 FOR UPDATE',
          [principal.schoolId, request.params.id],
        );
        if (!rows[0]) throw notFound(`no alert ${request.params.id}`);
        if (rows[0].acknowledged_at !== null) throw conflict(`alert ${request.params.id} is already acknowledged`);
        await client.query('UPDATE alerts SET acknowledged_by = $2, acknowledged_at = now(), acknowledge_note = $3 WHERE id = $1', [
          request.params.id,
          principal.userId,
          note,
        ]);
        await appendAudit(client, { schoolId: principal.schoolId, actor: actorOf(principal), action: 'alert.acknowledge', target: `alert:${request.params.id}`, detail: { note } });
        return findAlert(client, principal.schoolId, request.params.id);
      });
    },
  );
};
