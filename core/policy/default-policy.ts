// The policy a new school starts with, in line with UK schools' acceptable
// use policies (and the UK Safer Internet Centre's "appropriate filtering"
// content classes): staff are kept from harmful and distracting content,
// with social media and webmail off during lessons; pupils and the
// unidentified (guests) are kept from all of that and from the ways round a
// filter (VPNs, proxies, redirectors, DNS over HTTPS, remote control).
// Illegal categories (IWF, CTIRU) need no rule: they are always blocked.
import { inTransaction, type Pool } from '../db.js';

const SCHOOL_HOURS = {
  key: 'school-hours',
  name: 'School hours',
  windows: [{ days: [1, 2, 3, 4, 5], start: '08:30', end: '15:30' }],
  termTimeOnly: true,
};

const STAFF_BLOCKED = [
  'adult',
  'mixed_adult',
  'gambling',
  'arjel',
  'agressif', // hate and discrimination
  'drogue', // drugs
  'dangerous_material',
  'hacking',
  'ddos',
  'malware',
  'cryptojacking',
  'phishing',
  'stalkerware',
  'warez',
  'dating',
  'games',
];
const STAFF_BLOCKED_IN_SCHOOL_HOURS = ['social_networks', 'chat', 'webmail', 'forums'];

const PUPIL_BLOCKED = [
  ...STAFF_BLOCKED,
  'social_networks',
  'chat',
  'webmail',
  'vpn',
  'residential-proxies',
  'redirector',
  'strict_redirector',
  'strong_redirector',
  'doh',
  'lingerie',
  'remote-control',
];
const PUPIL_BLOCKED_IN_SCHOOL_HOURS = ['forums'];

export interface GroupSeed {
  key: string;
  name: string;
  isDefault: boolean;
  blocked: string[];
  blockedInSchoolHours: string[];
}

export const DEFAULT_GROUPS: readonly GroupSeed[] = [
  { key: 'staff', name: 'Staff', isDefault: false, blocked: STAFF_BLOCKED, blockedInSchoolHours: STAFF_BLOCKED_IN_SCHOOL_HOURS },
  { key: 'pupils', name: 'Pupils', isDefault: false, blocked: PUPIL_BLOCKED, blockedInSchoolHours: PUPIL_BLOCKED_IN_SCHOOL_HOURS },
  // The unidentified get the pupils' rules: on a school network, assume a child.
  { key: 'guests', name: 'Guests (unidentified)', isDefault: true, blocked: PUPIL_BLOCKED, blockedInSchoolHours: PUPIL_BLOCKED_IN_SCHOOL_HOURS },
];

/**
 * Creates the default groups, schedule and rules for a school that has no
 * groups yet, in one transaction. Returns false (and changes nothing) when
 * the school already has groups. Throws when a category the rules name is
 * missing from the categories table.
 */
export async function seedDefaultPolicy(pool: Pool, schoolId: number): Promise<boolean> {
  return inTransaction(pool, async (client) => {
    // Serialises concurrent seeds of the same school.
    const school = await client.query('SELECT id FROM schools WHERE id = $1 FOR UPDATE', [schoolId]);
    if (school.rowCount === 0) throw new Error(`cannot seed the default policy: school #${schoolId} does not exist`);
    const existing = await client.query('SELECT 1 FROM groups WHERE school_id = $1 LIMIT 1', [schoolId]);
    if (existing.rowCount) return false;

    const wanted = [...new Set(DEFAULT_GROUPS.flatMap((g) => [...g.blocked, ...g.blockedInSchoolHours]))];
    const found = await client.query<{ id: number; key: string }>('SELECT id, key FROM categories WHERE key = ANY($1)', [wanted]);
    const categoryId = new Map(found.rows.map((r) => [r.key, r.id]));
    const missing = wanted.filter((key) => !categoryId.has(key));
    if (missing.length > 0) {
      throw new Error(
        `cannot seed the default policy: categories missing from the categories table: ${missing.join(', ')} ` +
          '(load the category metadata first)',
      );
    }

    const schedule = await client.query<{ id: number }>(
      `INSERT INTO schedules (school_id, key, name, windows, term_time_only) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
      [schoolId, SCHOOL_HOURS.key, SCHOOL_HOURS.name, JSON.stringify(SCHOOL_HOURS.windows), SCHOOL_HOURS.termTimeOnly],
    );
    const scheduleId = schedule.rows[0].id;

    for (const g of DEFAULT_GROUPS) {
      const group = await client.query<{ id: number }>(
        `INSERT INTO groups (school_id, key, name, default_action, is_default) VALUES ($1, $2, $3, 'allow', $4) RETURNING id`,
        [schoolId, g.key, g.name, g.isDefault],
      );
      const blocked = [...new Set(g.blocked)];
      await client.query(
        `INSERT INTO group_rules (school_id, group_id, category_id, action, schedule_id)
         SELECT $1, $2, unnest($3::smallint[]), 'block', NULL`,
        [schoolId, group.rows[0].id, blocked.map((key) => categoryId.get(key))],
      );
      await client.query(
        `INSERT INTO group_rules (school_id, group_id, category_id, action, schedule_id)
         SELECT $1, $2, unnest($3::smallint[]), 'block_during', $4`,
        [schoolId, group.rows[0].id, g.blockedInSchoolHours.map((key) => categoryId.get(key)), scheduleId],
      );
    }
    return true;
  });
}
