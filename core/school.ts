// The school this deployment serves. One school per deployment for now; the
// schema already carries school_id everywhere for trusts.
import type { Pool } from './db.js';

export async function ensureSchool(pool: Pool, name: string, timezone: string): Promise<number> {
  const existing = await pool.query<{ id: number }>('SELECT id FROM schools ORDER BY id LIMIT 1');
  if (existing.rows[0]) return existing.rows[0].id;
  const created = await pool.query<{ id: number }>(
    'INSERT INTO schools (name, timezone) VALUES ($1, $2) RETURNING id',
    [name, timezone],
  );
  return created.rows[0]!.id;
}
