// Sessions borrowed from the pool are handed back fit for the next borrower:
// one whose query timed out is closed, not returned with the query still
// running in Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, inTransaction, type Pool } from '../../core/db.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

describe('inTransaction', () => {
  let db: TestDatabase;
  let pool: Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    pool = createPool(db.url, undefined, 2, 300);
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  it('closes a session whose query timed out, and the next transaction gets a fresh one', async () => {
    await expect(inTransaction(pool, (client) => client.query('SELECT pg_sleep(3)'))).rejects.toThrow('Query read timeout');
    expect(pool.totalCount).toBe(0);
    const began = performance.now();
    const { rows } = await inTransaction(pool, (client) => client.query<{ one: number }>('SELECT 1 AS one'));
    expect(rows).toEqual([{ one: 1 }]);
    expect(performance.now() - began).toBeLessThan(300);
  });

  it('rolls back and keeps the session after an error Postgres answered with', async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS kept (n int)');
    await expect(
      inTransaction(pool, async (client) => {
        await client.query('INSERT INTO kept VALUES (1)');
        await client.query('SELECT no_such_column FROM kept');
      }),
    ).rejects.toThrow('no_such_column');
    expect(pool.totalCount).toBe(1);
    expect(pool.idleCount).toBe(1);
    expect((await pool.query('SELECT count(*)::int AS n FROM kept')).rows).toEqual([{ n: 0 }]);
  });
});
