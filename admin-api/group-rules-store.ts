// Setting and removing a group's rule for a category: shared by the
// group-rules routes and the categories routes' per-group enable/disable.
// Each runs inside the caller's transaction, checks what the database's
// constraints would otherwise turn into a 500, compiles the resulting policy
// (policy-check.ts) and audits the change.
import { Type, type Static } from 'typebox';
import type { Pool, PoolClient } from '../core/db.js';
import type { RuleAction } from '../core/policy/types.js';
import { appendAudit } from './audit.js';
import { actorOf, type Principal } from './auth/principal.js';
import { assertPolicyCompiles } from './policy-check.js';
import { badRequest, conflict, notFound } from './problem.js';
import { Text } from './schemas.js';

export const RuleActionSchema = Type.Enum(['allow', 'block', 'block_during', 'monitor'], {
  description: 'block_during: blocked while its schedule is active; monitor: allowed and flagged for the DSL',
});

export const RuleReason = Text({ minLength: 1, maxLength: 1000, description: 'why: kept in the filtering record' });

export const GroupRule = Type.Object({
  id: Type.Integer(),
  groupId: Type.Integer(),
  groupKey: Type.String(),
  category: Type.String(),
  categoryName: Type.String(),
  action: RuleActionSchema,
  schedule: Type.Union([Type.String(), Type.Null()], { description: 'the schedule key of a block_during rule' }),
  reason: Type.String(),
  decidedBy: Type.String(),
  decidedAt: Type.String({ format: 'date-time' }),
});
export type GroupRule = Static<typeof GroupRule>;

interface GroupRuleRow {
  id: number;
  group_id: number;
  group_key: string;
  category: string;
  category_name: string;
  action: RuleAction;
  schedule: string | null;
  reason: string;
  decided_by: string;
  decided_at: Date;
}

const SELECT_RULE = `SELECT r.id, r.group_id, g.key AS group_key, c.key AS category, c.name AS category_name, r.action,
                            s.key AS schedule, r.reason, r.decided_by, r.decided_at
                       FROM group_rules r
                       JOIN groups g ON g.id = r.group_id
                       JOIN categories c ON c.id = r.category_id
                       LEFT JOIN schedules s ON s.id = r.schedule_id`;

function ruleOf(row: GroupRuleRow): GroupRule {
  return {
    id: row.id,
    groupId: row.group_id,
    groupKey: row.group_key,
    category: row.category,
    categoryName: row.category_name,
    action: row.action,
    schedule: row.schedule,
    reason: row.reason,
    decidedBy: row.decided_by,
    decidedAt: row.decided_at.toISOString(),
  };
}

export async function findGroup(db: Pool | PoolClient, schoolId: number, groupId: number): Promise<{ id: number; key: string }> {
  const { rows } = await db.query<{ id: number; key: string }>('SELECT id, key FROM groups WHERE school_id = $1 AND id = $2', [
    schoolId,
    groupId,
  ]);
  if (!rows[0]) throw notFound(`no group ${groupId}`);
  return rows[0];
}

/** The group's rules, by category key. */
export async function listGroupRules(db: Pool | PoolClient, schoolId: number, groupId: number): Promise<GroupRule[]> {
  const { rows } = await db.query<GroupRuleRow>(`${SELECT_RULE} WHERE r.school_id = $1 AND r.group_id = $2 ORDER BY c.key`, [
    schoolId,
    groupId,
  ]);
  return rows.map(ruleOf);
}

async function findRule(client: PoolClient, groupId: number, categoryId: number): Promise<GroupRule | undefined> {
  const { rows } = await client.query<GroupRuleRow>(`${SELECT_RULE} WHERE r.group_id = $1 AND r.category_id = $2`, [groupId, categoryId]);
  return rows[0] && ruleOf(rows[0]);
}

async function findCategory(client: PoolClient, key: string): Promise<{ id: number; key: string; name: string; illegal: boolean }> {
  const { rows } = await client.query<{ id: number; key: string; name: string; illegal: boolean }>(
    'SELECT id, key, name, illegal FROM categories WHERE key = $1',
    [key],
  );
  if (!rows[0]) throw notFound(`no category "${key}"`);
  return rows[0];
}

export interface RuleChange {
  groupId: number;
  categoryKey: string;
  action: RuleAction;
  /** The schedule key; required for block_during, refused otherwise. */
  scheduleKey?: string;
  reason: string;
}

/** Creates or replaces the group's rule for the category. */
export async function setGroupRule(client: PoolClient, principal: Principal, change: RuleChange): Promise<GroupRule> {
  const { schoolId } = principal;
  const group = await findGroup(client, schoolId, change.groupId);
  const category = await findCategory(client, change.categoryKey);
  if (category.illegal && change.action !== 'block') {
    throw conflict(`${category.name} is illegal content: it is always blocked, for everyone, and no rule can change that`);
  }
  let scheduleId: number | null = null;
  if (change.action === 'block_during') {
    if (change.scheduleKey === undefined) {
      throw badRequest('a block_during rule needs a schedule', [{ name: 'body/schedule', reason: 'is required for block_during' }]);
    }
    const { rows } = await client.query<{ id: number }>('SELECT id FROM schedules WHERE school_id = $1 AND key = $2', [
      schoolId,
      change.scheduleKey,
    ]);
    if (!rows[0]) throw badRequest(`there is no schedule "${change.scheduleKey}"`, [{ name: 'body/schedule', reason: 'no such schedule' }]);
    scheduleId = rows[0].id;
  } else if (change.scheduleKey !== undefined) {
    throw badRequest(`only a block_during rule takes a schedule, not ${change.action}`, [
      { name: 'body/schedule', reason: `not allowed with ${change.action}` },
    ]);
  }
  const before = await findRule(client, group.id, category.id);
  const reason = change.reason.trim();
  await client.query(
    `INSERT INTO group_rules (school_id, group_id, category_id, action, schedule_id, reason, decided_by, decided_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, now())
     ON CONFLICT (group_id, category_id)
     DO UPDATE SET action = EXCLUDED.action, schedule_id = EXCLUDED.schedule_id, reason = EXCLUDED.reason,
                   decided_by = EXCLUDED.decided_by, decided_at = EXCLUDED.decided_at`,
    [schoolId, group.id, category.id, change.action, scheduleId, reason, principal.username],
  );
  await assertPolicyCompiles(client, schoolId);
  const after = (await findRule(client, group.id, category.id)) as GroupRule;
  await appendAudit(client, {
    schoolId,
    actor: actorOf(principal),
    action: 'group_rule.set',
    target: `group_rule:${group.key}/${category.key}`,
    detail: {
      ruleId: after.id,
      action: after.action,
      schedule: after.schedule,
      reason,
      previous: before ? { action: before.action, schedule: before.schedule, reason: before.reason, decidedBy: before.decidedBy } : null,
    },
  });
  return after;
}

/** Removes the group's rule for the category: the group's default action applies to it again. */
export async function deleteGroupRule(client: PoolClient, principal: Principal, groupId: number, categoryKey: string): Promise<void> {
  const group = await findGroup(client, principal.schoolId, groupId);
  const category = await findCategory(client, categoryKey);
  const before = await findRule(client, group.id, category.id);
  if (!before) throw notFound(`group "${group.key}" has no rule for "${category.key}"`);
  await client.query('DELETE FROM group_rules WHERE id = $1', [before.id]);
  await assertPolicyCompiles(client, principal.schoolId);
  await appendAudit(client, {
    schoolId: principal.schoolId,
    actor: actorOf(principal),
    action: 'group_rule.delete',
    target: `group_rule:${group.key}/${category.key}`,
    detail: { ruleId: before.id, action: before.action, schedule: before.schedule, reason: before.reason, decidedBy: before.decidedBy },
  });
}
