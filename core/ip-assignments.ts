// Client addresses that identify a person (a staff laptop with a fixed
// address) or a group (a pupil ICT suite). The proxy's identification reads
// them from the policy snapshot; the most specific range wins.
import { parseCidr } from './cidr.js';
import type { Pool } from './db.js';

export class IpAssignmentError extends Error {}

export interface IpAssignment {
  cidr: string;
  username: string | null;
  groupKey: string | null;
  note: string;
}

export type AssignTo = { username: string } | { groupKey: string };

export async function assignAddresses(pool: Pool, schoolId: number, cidrText: string, to: AssignTo, note = ''): Promise<void> {
  const cidr = parseCidr(cidrText);
  if (!cidr) throw new IpAssignmentError(`"${cidrText}" is not an IP address or CIDR range`);
  const owner =
    'username' in to
      ? await pool.query<{ id: number }>('SELECT id FROM users WHERE school_id = $1 AND username = $2', [schoolId, to.username.toLowerCase()])
      : await pool.query<{ id: number }>('SELECT id FROM groups WHERE school_id = $1 AND key = $2', [schoolId, to.groupKey]);
  const ownerId = owner.rows[0]?.id;
  if (ownerId === undefined) {
    throw new IpAssignmentError('username' in to ? `there is no user "${to.username}"` : `there is no group "${to.groupKey}"`);
  }
  // Postgres's cidr type refuses host bits under the mask (10.0.0.1/8): use the network address.
  await pool.query(
    `INSERT INTO ip_assignments (school_id, cidr, user_id, group_id, note)
     VALUES ($1, network($2::inet), $3, $4, $5)
     ON CONFLICT (school_id, cidr) DO UPDATE SET user_id = EXCLUDED.user_id, group_id = EXCLUDED.group_id, note = EXCLUDED.note`,
    [schoolId, `${cidr.address}/${cidr.prefix}`, 'username' in to ? ownerId : null, 'groupKey' in to ? ownerId : null, note],
  );
}

export async function listAddressAssignments(pool: Pool, schoolId: number): Promise<IpAssignment[]> {
  const { rows } = await pool.query<IpAssignment>(
    `SELECT a.cidr::text AS cidr, u.username AS "username", g.key AS "groupKey", a.note
       FROM ip_assignments a LEFT JOIN users u ON u.id = a.user_id LEFT JOIN groups g ON g.id = a.group_id
      WHERE a.school_id = $1 ORDER BY a.cidr`,
    [schoolId],
  );
  return rows;
}

export async function removeAddressAssignment(pool: Pool, schoolId: number, cidrText: string): Promise<void> {
  const cidr = parseCidr(cidrText);
  if (!cidr) throw new IpAssignmentError(`"${cidrText}" is not an IP address or CIDR range`);
  const { rowCount } = await pool.query('DELETE FROM ip_assignments WHERE school_id = $1 AND cidr = network($2::inet)', [
    schoolId,
    `${cidr.address}/${cidr.prefix}`,
  ]);
  if (!rowCount) throw new IpAssignmentError(`nothing is assigned to ${cidrText}`);
}
