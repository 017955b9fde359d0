// The first IT admin account, so that a new installation can be managed:
// from ADMIN_PASSWORD when set, else a generated password shown once.
import { randomBytes } from 'node:crypto';
import type { Pool } from './db.js';
import { addUser } from './users.js';

export const FIRST_ADMIN_USERNAME = 'admin';

export interface FirstAdmin {
  username: string;
  /** Set only when this call created the account with a generated password. */
  generatedPassword?: string;
}

export async function ensureFirstAdmin(pool: Pool, schoolId: number, adminPassword?: string): Promise<FirstAdmin> {
  const existing = await pool.query(
    "SELECT 1 FROM users WHERE school_id = $1 AND 'it_admin' = ANY(roles) LIMIT 1",
    [schoolId],
  );
  if (existing.rowCount) return { username: FIRST_ADMIN_USERNAME };
  const password = adminPassword ?? randomBytes(12).toString('base64url');
  await addUser(pool, {
    schoolId,
    username: FIRST_ADMIN_USERNAME,
    displayName: 'IT administrator',
    groupKey: 'staff',
    roles: ['staff', 'it_admin'],
    password,
  });
  return adminPassword ? { username: FIRST_ADMIN_USERNAME } : { username: FIRST_ADMIN_USERNAME, generatedPassword: password };
}
