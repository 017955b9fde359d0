// Sign-in sessions. The cookie holds a random token; the table holds only its
// SHA-256, so a leaked copy of the table signs nobody in.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { querier, type Pool, type PoolClient } from '../../core/db.js';
import { principalFromRow, type Principal, type PrincipalRow } from './principal.js';
import { newToken, sha256 } from './secrets.js';

export const SESSION_COOKIE = 'portcullis_session';
/** A session ends this long after sign-in, however busy. */
export const SESSION_LIFETIME_MS = 12 * 60 * 60 * 1000;
/** ... or after this long without a request. */
export const SESSION_IDLE_MS = 60 * 60 * 1000;
// Recording every request's time would be a write per request; a minute's
// precision is plenty for the idle timeout.
const TOUCH_AFTER_MS = 60 * 1000;

export async function createSession(pool: Pool, schoolId: number, userId: number): Promise<string> {
  const token = newToken('pcs_');
  // Sign-in is rare enough to sweep this user's dead sessions each time.
  await pool.query(
    `DELETE FROM sessions WHERE user_id = $1 AND (expires_at <= now() OR last_seen_at <= now() - $2 * interval '1 millisecond')`,
    [userId, SESSION_IDLE_MS],
  );
  await pool.query(
    `INSERT INTO sessions (id, school_id, user_id, expires_at) VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')`,
    [sha256(token), schoolId, userId, SESSION_LIFETIME_MS],
  );
  return token;
}

interface SessionRow extends PrincipalRow {
  idle_ms: number;
}

/** The principal of a live session of an enabled user, else null; with `timeoutMs`, each query within that (queryWithin). */
export async function findSession(pool: Pool, token: string, timeoutMs?: number): Promise<Principal | null> {
  const query = querier(pool, timeoutMs);
  const id = sha256(token);
  const { rows } = await query<SessionRow>(
    `SELECT s.school_id, u.id AS user_id, u.username, u.display_name, g.key AS group_key, u.roles,
            (extract(epoch FROM now() - s.last_seen_at) * 1000)::float8 AS idle_ms
       FROM sessions s JOIN users u ON u.id = s.user_id JOIN groups g ON g.id = u.group_id
      WHERE s.id = $1 AND s.expires_at > now() AND NOT u.disabled
        AND s.last_seen_at > now() - $2 * interval '1 millisecond'`,
    [id, SESSION_IDLE_MS],
  );
  const row = rows[0];
  if (!row) return null;
  if (row.idle_ms > TOUCH_AFTER_MS) await query('UPDATE sessions SET last_seen_at = now() WHERE id = $1', [id]);
  return principalFromRow(row, 'session', token);
}

export async function deleteSession(pool: Pool, token: string): Promise<void> {
  await pool.query('DELETE FROM sessions WHERE id = $1', [sha256(token)]);
}

/** Signs a user out everywhere, except (optionally) the session making the change. */
export async function deleteSessionsOfUser(client: PoolClient, userId: number, keepToken?: string): Promise<number> {
  const result = await client.query('DELETE FROM sessions WHERE user_id = $1 AND id IS DISTINCT FROM $2', [
    userId,
    keepToken === undefined ? null : sha256(keepToken),
  ]);
  return result.rowCount ?? 0;
}

export function setSessionCookie(request: FastifyRequest, reply: FastifyReply, token: string): void {
  reply.setCookie(SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: 'strict',
    secure: request.protocol === 'https',
    path: '/',
    maxAge: SESSION_LIFETIME_MS / 1000,
  });
}

export function clearSessionCookie(request: FastifyRequest, reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'strict', secure: request.protocol === 'https', path: '/' });
}
