// Bearer API tokens for scripts and scrapers (Authorization: Bearer pct_...).
// The token is shown once when it is made; only its SHA-256 is stored.
import { querier, type Pool, type PoolClient } from '../../core/db.js';
import { principalFromRow, type Principal, type PrincipalRow } from './principal.js';
import { newToken, sha256 } from './secrets.js';

const TOUCH_AFTER_MS = 60 * 1000;

export interface ApiTokenInfo {
  id: number;
  name: string;
  createdAt: string;
  expiresAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

interface ApiTokenRow {
  id: number;
  name: string;
  created_at: Date;
  expires_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

function infoOf(row: ApiTokenRow): ApiTokenInfo {
  return {
    id: row.id,
    name: row.name,
    createdAt: row.created_at.toISOString(),
    expiresAt: row.expires_at.toISOString(),
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null,
  };
}

const COLUMNS = 'id, name, created_at, expires_at, last_used_at, revoked_at';

export async function createApiToken(
  client: PoolClient,
  owner: Principal,
  name: string,
  expiresInDays: number,
): Promise<{ token: string; info: ApiTokenInfo }> {
  const token = newToken('pct_');
  const { rows } = await client.query<ApiTokenRow>(
    `INSERT INTO api_tokens (school_id, user_id, name, token_hash, expires_at)
     VALUES ($1, $2, $3, $4, now() + $5 * interval '1 day') RETURNING ${COLUMNS}`,
    [owner.schoolId, owner.userId, name, sha256(token), expiresInDays],
  );
  return { token, info: infoOf(rows[0]) };
}

export async function listApiTokens(pool: Pool, userId: number): Promise<ApiTokenInfo[]> {
  const { rows } = await pool.query<ApiTokenRow>(`SELECT ${COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id`, [userId]);
  return rows.map(infoOf);
}

/** Revokes one of the user's own live tokens; null when there is none by that id. */
export async function revokeApiToken(client: PoolClient, userId: number, id: number): Promise<ApiTokenInfo | null> {
  const { rows } = await client.query<ApiTokenRow>(
    `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING ${COLUMNS}`,
    [id, userId],
  );
  return rows[0] ? infoOf(rows[0]) : null;
}

/** Revokes all of a user's live tokens (the account is being disabled). */
export async function revokeApiTokensOfUser(client: PoolClient, userId: number): Promise<number> {
  const result = await client.query('UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL', [userId]);
  return result.rowCount ?? 0;
}

interface TokenPrincipalRow extends PrincipalRow {
  token_id: number;
  expires_at: Date;
  idle_ms: number | null;
}

export interface LiveToken {
  principal: Principal;
  expiresAt: Date;
}

/** The principal of a live token of an enabled user, else null; with `timeoutMs`, each query within that (queryWithin). */
export async function findApiToken(pool: Pool, token: string, timeoutMs?: number): Promise<LiveToken | null> {
  const query = querier(pool, timeoutMs);
  const { rows } = await query<TokenPrincipalRow>(
    `SELECT t.id AS token_id, t.expires_at, t.school_id, u.id AS user_id, u.username, u.display_name, g.key AS group_key, u.roles,
            (extract(epoch FROM now() - t.last_used_at) * 1000)::float8 AS idle_ms
       FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN groups g ON g.id = u.group_id
      WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now() AND NOT u.disabled`,
    [sha256(token)],
  );
  const row = rows[0];
  if (!row) return null;
  if (row.idle_ms === null || row.idle_ms > TOUCH_AFTER_MS) {
    await query('UPDATE api_tokens SET last_used_at = now() WHERE id = $1', [row.token_id]);
  }
  return { principal: principalFromRow(row, 'token'), expiresAt: row.expires_at };
}
