import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../core/migrate.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

describe('migrations', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it('creates the core tables and applies each migration once', async () => {
    const tables = await db.pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    const names = tables.rows.map((r) => r.table_name);
    expect(names).toEqual(expect.arrayContaining(['schools', 'groups', 'users', 'categories', 'list_entries', 'overrides', 'group_rules']));
    expect(await migrate(db.pool)).toEqual([]);
  });

  it('announces policy changes on the portcullis_policy channel with the table name', async () => {
    const client = await db.pool.connect();
    const received: string[] = [];
    client.on('notification', (n) => received.push(n.payload ?? ''));
    await client.query('LISTEN portcullis_policy');
    await db.pool.query("INSERT INTO schools (name) VALUES ('Notify School')");
    await new Promise((r) => setTimeout(r, 200));
    client.release();
    expect(received).toContain('schools');
  });
});
