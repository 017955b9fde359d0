// Reads a school's policy input from Postgres in one consistent snapshot
// (a repeatable-read transaction), so a half-applied admin change is never
// compiled. Given a client already in a transaction, it reads through that
// transaction instead, so the admin API can compile a change before it commits.
import pg from 'pg';
import type { Pool, PoolClient } from '../db.js';
import type { CategoryInput, GroupInput, GroupRuleInput, IpAssignmentInput, OverrideInput, PolicyInput } from './input.js';
import type { CalendarPeriod, ScheduleDefinition } from '../schedule.js';

export async function loadPolicyInput(db: Pool | PoolClient, schoolId: number): Promise<PolicyInput> {
  if (!(db instanceof pg.Pool)) return readPolicyInput(db, schoolId);
  const client = await db.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const input = await readPolicyInput(client, schoolId);
    await client.query('COMMIT');
    return input;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function readPolicyInput(client: PoolClient, schoolId: number): Promise<PolicyInput> {
  const school = await client.query<{ timezone: string }>('SELECT timezone FROM schools WHERE id = $1', [schoolId]);
  if (school.rows.length === 0) throw new Error(`school #${schoolId} does not exist`);

  const groups = await client.query<GroupInput>(
    `SELECT id, key, name, default_action AS "defaultAction", is_default AS "isDefault"
       FROM groups WHERE school_id = $1 ORDER BY id`,
    [schoolId],
  );
  const schedules = await client.query<ScheduleDefinition>(
    `SELECT id, key, name, windows, term_time_only AS "termTimeOnly"
       FROM schedules WHERE school_id = $1 ORDER BY id`,
    [schoolId],
  );
  // Dates as text: pg would otherwise turn them into Dates at local midnight.
  const calendar = await client.query<CalendarPeriod>(
    `SELECT kind, name, starts_on::text AS "startsOn", ends_on::text AS "endsOn"
       FROM calendar_periods WHERE school_id = $1 ORDER BY starts_on, id`,
    [schoolId],
  );
  const categories = await client.query<CategoryInput>(
    'SELECT id, key, name, severity, illegal FROM categories ORDER BY id',
  );
  const rules = await client.query<GroupRuleInput>(
    `SELECT id, group_id AS "groupId", category_id AS "categoryId", action, schedule_id AS "scheduleId"
       FROM group_rules WHERE school_id = $1 ORDER BY id`,
    [schoolId],
  );
  const overrides = await client.query<OverrideInput>(
    `SELECT id, action, kind, value, group_id AS "groupId", reason, decided_by AS "decidedBy", expires_at AS "expiresAt"
       FROM overrides
      WHERE school_id = $1 AND (expires_at IS NULL OR expires_at > now())
      ORDER BY id`,
    [schoolId],
  );
  // A disabled person's laptop no longer identifies them.
  const assignments = await client.query<{
    id: number;
    cidr: string;
    groupId: number | null;
    userId: number | null;
    username: string | null;
    userGroupId: number | null;
  }>(
    `SELECT a.id, a.cidr::text AS cidr, a.group_id AS "groupId",
            u.id AS "userId", u.username, u.group_id AS "userGroupId"
       FROM ip_assignments a
       LEFT JOIN users u ON u.id = a.user_id
      WHERE a.school_id = $1 AND (a.user_id IS NULL OR NOT u.disabled)
      ORDER BY a.id`,
    [schoolId],
  );
  const digest = await client.query<{ digest: string }>(
    `SELECT md5(coalesce(string_agg(
              concat_ws(':', id, username, group_id, disabled, coalesce(password_hash, '')), ',' ORDER BY id), ''))
            AS digest
       FROM users WHERE school_id = $1`,
    [schoolId],
  );

  const ipAssignments: IpAssignmentInput[] = assignments.rows.map((a) => ({
    id: a.id,
    cidr: a.cidr,
    groupId: a.groupId,
    user:
      a.userId === null || a.username === null || a.userGroupId === null
        ? null
        : { id: a.userId, username: a.username, groupId: a.userGroupId },
  }));
  return {
    schoolId,
    timeZone: school.rows[0].timezone,
    groups: groups.rows,
    schedules: schedules.rows,
    calendar: calendar.rows,
    categories: categories.rows,
    rules: rules.rows,
    overrides: overrides.rows,
    ipAssignments,
    usersDigest: digest.rows[0].digest,
  };
}
