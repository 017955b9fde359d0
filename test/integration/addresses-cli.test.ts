// `portcullis addresses`: assigning client addresses to people and groups,
// as the proxy's identification then sees them.
import path from 'node:path';
import os from 'node:os';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertCategoryMetadata } from '../../blocklists/categories.js';
import { MatcherBuilder } from '../../blocklists/matcher.js';
import { addressesCommand } from '../../cli/addresses.js';
import type { CliContext } from '../../cli/context.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { seedDefaultPolicy } from '../../core/policy/default-policy.js';
import { PolicyStore } from '../../core/policy/store.js';
import { addUser } from '../../core/users.js';
import { createIdentifier } from '../../proxy/identify.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { untilPolicy } from '../support/policy-reload.js';

const log = createLogger('silent');
let db: TestDatabase;
let schoolId: number;
let store: PolicyStore;

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [stdout, stderr] = [new PassThrough(), new PassThrough()];
  const out: string[] = [];
  const err: string[] = [];
  stdout.on('data', (c: Buffer) => out.push(c.toString()));
  stderr.on('data', (c: Buffer) => err.push(c.toString()));
  const ctx: CliContext = {
    config: loadConfig({ DATA_DIR: path.join(os.tmpdir(), 'portcullis-addresses') }),
    log,
    pool: db.pool,
    schoolId,
    stdin: new PassThrough(),
    stdout,
    stderr,
  };
  const code = await addressesCommand(args, ctx);
  return { code, stdout: out.join(''), stderr: err.join('') };
}

beforeAll(async () => {
  db = await createTestDatabase();
  await upsertCategoryMetadata(db.pool);
  schoolId = (await db.pool.query<{ id: number }>("INSERT INTO schools (name) VALUES ('Test School') RETURNING id")).rows[0].id;
  await seedDefaultPolicy(db.pool, schoolId);
  await addUser(db.pool, { schoolId, username: 'jsmith', groupKey: 'staff' });
  store = await PolicyStore.start({ pool: db.pool, schoolId, log, buildLists: async () => new MatcherBuilder().build() });
});

afterAll(async () => {
  await store.close();
  await db.drop();
});

describe('portcullis addresses', () => {
  it('assigns a suite to a group and a laptop to a person, and the proxy identifies them by address', async () => {
    expect(await run('assign', '10.20.0.0/16', '--group', 'pupils', '--note', 'ICT suite')).toMatchObject({ code: 0 });
    expect(await run('assign', '10.20.5.7', '--user', 'JSmith')).toMatchObject({ code: 0 });
    await untilPolicy(store, (snapshot) => snapshot.ipAssignments.lookup('10.20.5.7') !== undefined, 'the laptop assigned');

    const identify = createIdentifier({ pool: db.pool, mode: 'optional', snapshotSource: () => store.current, log }).identify;
    expect(await identify('10.20.5.7', undefined)).toMatchObject({ ok: true, identity: { username: 'jsmith', groupKey: 'staff' } });
    expect(await identify('10.20.9.9', undefined)).toMatchObject({ ok: true, identity: { username: null, groupKey: 'pupils' } });
    expect(await identify('10.99.0.1', undefined)).toMatchObject({ ok: true, identity: { groupKey: 'guests', source: 'default' } });

    const listed = await run('list');
    expect(listed.stdout).toContain('10.20.0.0/16');
    expect(listed.stdout).toContain('group pupils  (ICT suite)');
    expect(listed.stdout).toContain('10.20.5.7/32');
    expect(listed.stdout).toContain('user jsmith');
  });

  it('stores a range by its network address and removes it again', async () => {
    expect(await run('assign', '192.168.7.99/24', '--group', 'staff')).toMatchObject({ code: 0 });
    expect((await run('list')).stdout).toContain('192.168.7.0/24');
    expect(await run('remove', '192.168.7.0/24')).toMatchObject({ code: 0, stdout: 'removed 192.168.7.0/24\n' });
    expect((await run('list')).stdout).not.toContain('192.168.7.0/24');
  });

  it('explains what is wrong and changes nothing', async () => {
    const before = (await run('list')).stdout;
    expect(await run('assign', 'not-an-address', '--group', 'staff')).toMatchObject({
      code: 1,
      stderr: 'portcullis addresses: "not-an-address" is not an IP address or CIDR range\n',
    });
    expect(await run('assign', '10.30.0.0/16', '--group', 'nobody')).toMatchObject({ code: 1, stderr: expect.stringContaining('no group "nobody"') });
    expect(await run('assign', '10.30.0.0/16', '--user', 'ghost')).toMatchObject({ code: 1, stderr: expect.stringContaining('no user "ghost"') });
    expect(await run('assign', '10.30.0.0/16')).toMatchObject({ code: 2, stderr: expect.stringContaining('Usage') });
    expect(await run('remove', '10.31.0.0/16')).toMatchObject({ code: 1, stderr: expect.stringContaining('nothing is assigned') });
    expect((await run('list')).stdout).toBe(before);
  });
});
