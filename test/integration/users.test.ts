import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertCategoryMetadata } from '../../blocklists/categories.js';
import type { CliContext } from '../../cli/context.js';
import { usersCommand } from '../../cli/users.js';
import type { Config } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { seedDefaultPolicy } from '../../core/policy/default-policy.js';
import { addUser, disableUser, listUsers, setPassword, UserError, verifyPassword } from '../../core/users.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let db: TestDatabase;
let schoolId: number;

beforeAll(async () => {
  db = await createTestDatabase();
  await upsertCategoryMetadata(db.pool);
  schoolId = (await db.pool.query<{ id: number }>("INSERT INTO schools (name) VALUES ('Test Academy') RETURNING id")).rows[0].id;
  await seedDefaultPolicy(db.pool, schoolId);
});

afterAll(() => db.drop());

async function passwordHashOf(username: string): Promise<string | null> {
  const { rows } = await db.pool.query<{ password_hash: string | null }>('SELECT password_hash FROM users WHERE username = $1', [username]);
  return rows[0].password_hash;
}

describe('user accounts', () => {
  it('adds a user with a lower-cased name, roles and an argon2id hash', async () => {
    const user = await addUser(db.pool, { schoolId, username: 'J.Smith@School', groupKey: 'staff', roles: ['staff', 'dsl'], password: 'long enough', displayName: ' Jo Smith ' });
    expect(user.username).toBe('j.smith@school');
    const hash = await passwordHashOf('j.smith@school');
    expect(hash).toMatch(/^\$argon2id\$/);
    expect(await verifyPassword(hash as string, 'long enough')).toBe(true);
    expect(await verifyPassword(hash as string, 'long enougH')).toBe(false);
    expect((await listUsers(db.pool, schoolId)).find((u) => u.id === user.id)).toEqual({
      id: user.id,
      username: 'j.smith@school',
      displayName: 'Jo Smith',
      groupKey: 'staff',
      roles: ['staff', 'dsl'],
      hasPassword: true,
      disabled: false,
    });
  });

  it('refuses bad input with clear errors', async () => {
    const base = { schoolId, groupKey: 'pupils', password: 'long enough' };
    await expect(addUser(db.pool, { ...base, username: 'j.smith@school' })).rejects.toThrow(new UserError('user "j.smith@school" already exists'));
    await expect(addUser(db.pool, { ...base, username: 'has space' })).rejects.toThrow(/"has space" is not a valid username/);
    await expect(addUser(db.pool, { ...base, username: 'x', groupKey: 'teachers' })).rejects.toThrow(
      'unknown group "teachers"; groups are guests, pupils, staff',
    );
    await expect(addUser(db.pool, { ...base, username: 'x', roles: ['root'] })).rejects.toThrow(/unknown role "root"; roles are staff, it_admin/);
    await expect(addUser(db.pool, { ...base, username: 'x', password: 'short' })).rejects.toThrow(/at least 8 characters/);
    await expect(setPassword(db.pool, schoolId, 'nobody', 'long enough')).rejects.toThrow('no user "nobody"');
    await expect(disableUser(db.pool, schoolId, 'nobody')).rejects.toThrow('no user "nobody"');
  });

  it('changes a password and disables an account', async () => {
    await addUser(db.pool, { schoolId, username: 'temp', groupKey: 'pupils' });
    expect(await passwordHashOf('temp')).toBeNull();
    await setPassword(db.pool, schoolId, 'TEMP', 'now with one');
    expect(await verifyPassword((await passwordHashOf('temp')) as string, 'now with one')).toBe(true);
    await disableUser(db.pool, schoolId, 'temp');
    expect((await listUsers(db.pool, schoolId)).find((u) => u.username === 'temp')?.disabled).toBe(true);
  });
});

describe('portcullis users', () => {
  async function run(args: string[], stdinText = ''): Promise<{ code: number; out: string; err: string }> {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    stdin.end(stdinText);
    const ctx: CliContext = { config: {} as Config, log: createLogger('silent'), pool: db.pool, schoolId, stdin, stdout, stderr };
    const code = await usersCommand(args, ctx);
    return { code, out, err };
  }

  it('adds a user with the password from stdin', async () => {
    const result = await run(['add', 'MrsB', '--group', 'staff', '--role', 'staff', '--role=it_admin', '--display-name', 'Mrs B'], 'secret password\nignored\n');
    expect(result).toMatchObject({ code: 0, err: '' });
    expect(result.out).toMatch(/^added user "mrsb" \(#\d+\) to group staff\n$/);
    expect(await verifyPassword((await passwordHashOf('mrsb')) as string, 'secret password')).toBe(true);
  });

  it('refuses an empty or short password, and says why', async () => {
    expect(await run(['add', 'nopass', '--group', 'staff'], '')).toMatchObject({ code: 1, err: 'portcullis users: no password given on stdin\n' });
    expect(await run(['add', 'shortpass', '--group', 'staff'], 'abc\n')).toMatchObject({
      code: 1,
      err: 'portcullis users: the password must be at least 8 characters long\n',
    });
    expect((await listUsers(db.pool, schoolId)).map((u) => u.username)).not.toContain('shortpass');
  });

  it('reports usage mistakes with exit code 2', async () => {
    expect(await run(['add', 'someone'], 'long enough\n')).toMatchObject({ code: 2, err: expect.stringContaining('--group is required') });
    expect(await run(['add', 'someone', '--group', 'staff', '--colour', 'red'], 'long enough\n')).toMatchObject({
      code: 2,
      err: expect.stringContaining('unknown option --colour'),
    });
    expect(await run(['frobnicate'])).toMatchObject({ code: 2, err: expect.stringContaining('Usage: portcullis users') });
    expect(await run(['add', 'someone', '--group', 'teachers'], 'long enough\n')).toMatchObject({
      code: 1,
      err: 'portcullis users: unknown group "teachers"; groups are guests, pupils, staff\n',
    });
  });

  it('lists and disables users', async () => {
    expect(await run(['disable', 'MrsB'])).toMatchObject({ code: 0, out: 'disabled user "mrsb"\n' });
    expect(await run(['disable', 'ghost'])).toMatchObject({ code: 1, err: 'portcullis users: no user "ghost"\n' });
    const { code, out } = await run(['list']);
    expect(code).toBe(0);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^USERNAME\s+GROUP\s+ROLES\s+STATUS\s+DISPLAY NAME$/);
    expect(lines).toContainEqual(expect.stringMatching(/^mrsb\s+staff\s+staff,it_admin\s+disabled\s+Mrs B$/));
    expect(lines).toContainEqual(expect.stringMatching(/^j\.smith@school\s+staff\s+staff,dsl\s+active\s+Jo Smith$/));
  });
});
