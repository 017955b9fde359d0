// Local user accounts: creation, passwords (argon2id), disabling. Shared by
// the CLI, the admin API and the first-run admin account.
import { Algorithm, hash, verify } from '@node-rs/argon2';
import type { Pool } from './db.js';

export const ROLES = ['staff', 'it_admin', 'dsl', 'headteacher', 'governor'] as const;
export type Role = (typeof ROLES)[number];

export const MIN_PASSWORD_LENGTH = 8;
const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._@-]{0,127}$/;
// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
const ARGON2_OPTIONS = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export interface NewUser {
  schoolId: number;
  username: string;
  groupKey: string;
  /** Omitted: the account cannot log in with a password (IP-mapped or directory users). */
  password?: string;
  roles?: string[];
  displayName?: string;
}

export interface UserSummary {
  id: number;
  username: string;
  displayName: string;
  groupKey: string;
  roles: Role[];
  hasPassword: boolean;
  disabled: boolean;
}

/** Lower-cases and checks a username; throws a UserError saying what is allowed. */
export function normaliseUsername(username: string): string {
  const name = username.trim().toLowerCase();
  if (!USERNAME_PATTERN.test(name)) {
    throw new UserError(
      `"${username}" is not a valid username: 1–128 characters, letters, digits and . _ @ -, starting with a letter or digit`,
    );
  }
  return name;
}

export function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new UserError(`the password must be at least ${MIN_PASSWORD_LENGTH} characters long`);
  }
}

export function hashPassword(password: string): Promise<string> {
  checkPassword(password);
  return hash(password, ARGON2_OPTIONS);
}

/** False (never an exception) for a wrong password or a hash argon2 cannot read. */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

function checkRoles(roles: readonly string[]): Role[] {
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (unknown.length > 0) throw new UserError(`unknown role ${unknown.map((r) => `"${r}"`).join(', ')}; roles are ${ROLES.join(', ')}`);
  return [...new Set(roles)] as Role[];
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

export async function addUser(pool: Pool, user: NewUser): Promise<{ id: number; username: string }> {
  const username = normaliseUsername(user.username);
  const roles = checkRoles(user.roles ?? []);
  const passwordHash = user.password === undefined ? null : await hashPassword(user.password);
  const group = await pool.query<{ id: number }>('SELECT id FROM groups WHERE school_id = $1 AND key = $2', [user.schoolId, user.groupKey]);
  if (group.rows.length === 0) {
    const known = await pool.query<{ key: string }>('SELECT key FROM groups WHERE school_id = $1 ORDER BY key', [user.schoolId]);
    throw new UserError(`unknown group "${user.groupKey}"; groups are ${known.rows.map((r) => r.key).join(', ') || '(none)'}`);
  }
  try {
    const created = await pool.query<{ id: number }>(
      `INSERT INTO users (school_id, username, display_name, group_id, roles, password_hash)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
      [user.schoolId, username, user.displayName?.trim() ?? '', group.rows[0].id, roles, passwordHash],
    );
    return { id: created.rows[0].id, username };
  } catch (err) {
    if (isUniqueViolation(err)) throw new UserError(`user "${username}" already exists`);
    throw err;
  }
}

export async function setPassword(pool: Pool, schoolId: number, username: string, password: string): Promise<void> {
  const name = normaliseUsername(username);
  const passwordHash = await hashPassword(password);
  const updated = await pool.query('UPDATE users SET password_hash = $3 WHERE school_id = $1 AND username = $2', [
    schoolId,
    name,
    passwordHash,
  ]);
  if (updated.rowCount === 0) throw new UserError(`no user "${name}"`);
}

export async function disableUser(pool: Pool, schoolId: number, username: string): Promise<void> {
  const name = normaliseUsername(username);
  const updated = await pool.query('UPDATE users SET disabled = true WHERE school_id = $1 AND username = $2', [schoolId, name]);
  if (updated.rowCount === 0) throw new UserError(`no user "${name}"`);
}

export async function listUsers(pool: Pool, schoolId: number): Promise<UserSummary[]> {
  const { rows } = await pool.query<UserSummary>(
    `SELECT u.id, u.username, u.display_name AS "displayName", g.key AS "groupKey", u.roles,
            u.password_hash IS NOT NULL AS "hasPassword", u.disabled
       FROM users u JOIN groups g ON g.id = u.group_id
      WHERE u.school_id = $1
      ORDER BY u.username`,
    [schoolId],
  );
  return rows;
}
