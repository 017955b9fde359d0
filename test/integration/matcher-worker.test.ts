import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATEGORY_METADATA, upsertCategoryMetadata } from '../../blocklists/categories.js';
import { buildMatcherInWorker } from '../../blocklists/build-matcher.js';
import { loadListEntries } from '../../blocklists/load.js';
import { CompiledMatcher, MatcherBuilder } from '../../blocklists/matcher.js';
import { createLogger } from '../../core/logger.js';
import { packageRoot } from '../../core/paths.js';
import { seedDefaultPolicy } from '../../core/policy/default-policy.js';
import { PolicyStore } from '../../core/policy/store.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const log = createLogger('silent');
let db: TestDatabase;

async function insertEntries(rows: readonly [categoryKey: string, kind: 'domain' | 'url', value: string][]): Promise<void> {
  for (const [categoryKey, kind, value] of rows) {
    await db.pool.query('INSERT INTO list_entries (category_id, kind, value) SELECT id, $2, $3 FROM categories WHERE key = $1', [categoryKey, kind, value]);
  }
}

async function categoryId(key: string): Promise<number> {
  const { rows } = await db.pool.query<{ id: number }>('SELECT id FROM categories WHERE key = $1', [key]);
  return rows[0].id;
}

/** The same entries built on this thread, the way start.ts built them before the worker. */
async function buildHere(): Promise<CompiledMatcher> {
  const builder = new MatcherBuilder();
  await loadListEntries(db.pool, (kind, value, id) => builder.add(kind, value, id));
  return builder.build();
}

const probes: [host: string, pathAndQuery: string][] = [
  ['bet.example', '/'],
  ['www.bet.example', '/x'],
  ['casino.bet.example', '/'],
  ['a.casino.bet.example', '/'],
  ['notbet.example', '/'],
  ['chat.example', '/rooms/1'],
  ['www.chat.example', '/room'],
  ['10.1.2.3', '/'],
  ['example', '/'],
];

beforeAll(async () => {
  db = await createTestDatabase();
  await upsertCategoryMetadata(db.pool, CATEGORY_METADATA);
  await insertEntries([
    ['gambling', 'domain', 'bet.example'],
    ['adult', 'domain', 'casino.bet.example'],
    ['gambling', 'domain', 'casino.bet.example'],
    ['chat', 'url', 'chat.example/rooms'],
    ['malware', 'domain', '10.1.2.3'],
  ]);
});

afterAll(async () => {
  await db.drop();
});

describe('buildMatcherInWorker', () => {
  it('builds from the database in a worker thread, giving the same answers as a build on this thread', async () => {
    const { matcher, workerMs } = await buildMatcherInWorker(db.url);
    const here = await buildHere();
    expect(matcher).toBeInstanceOf(CompiledMatcher);
    expect([matcher.domainCount, matcher.urlCount]).toEqual([3, 1]);
    expect(workerMs).toBeGreaterThan(0);
    expect(matcher.matchHost('www.bet.example')).toEqual([await categoryId('gambling')]);
    expect(matcher.matchHost('a.casino.bet.example')).toEqual([await categoryId('adult'), await categoryId('gambling')].sort((a, b) => a - b));
    expect(matcher.matchUrl('www.chat.example', '/rooms/1')).toEqual([await categoryId('chat')]);
    for (const [host, pathAndQuery] of probes) {
      expect(matcher.matchHost(host)).toEqual(here.matchHost(host));
      expect(matcher.matchUrl(host, pathAndQuery)).toEqual(here.matchUrl(host, pathAndQuery));
    }
  });

  it('runs from the compiled dist/ too (as npm start does)', async () => {
    const compiled = path.join(packageRoot, 'dist', 'blocklists', 'build-matcher.js');
    expect(existsSync(compiled), `${compiled} is missing: run npm run build first`).toBe(true);
    const fromDist = (await import(pathToFileURL(compiled).href)) as { buildMatcherInWorker: typeof buildMatcherInWorker };
    const { matcher } = await fromDist.buildMatcherInWorker(db.url);
    expect(matcher.domainCount).toBe(3);
    expect(matcher.matchHost('www.bet.example')).toEqual([await categoryId('gambling')]);
  });

  it('rejects with the database error when the database cannot be reached', async () => {
    const unreachable = new URL(db.url);
    unreachable.port = '1'; // nothing listens on port 1 on loopback
    await expect(buildMatcherInWorker(unreachable.toString())).rejects.toThrow(/^building the category lists failed: .*ECONNREFUSED/);
  });

  it('rejects with the entry named when an entry is not a normalised host', async () => {
    await insertEntries([['gambling', 'domain', 'Not A Host.example']]);
    try {
      await expect(buildMatcherInWorker(db.url)).rejects.toThrow(
        'building the category lists failed: domain entry is not a normalised host: "Not A Host.example"',
      );
    } finally {
      await db.pool.query("DELETE FROM list_entries WHERE value = 'Not A Host.example'");
    }
  });
});

describe('the policy store reloading lists through the worker', () => {
  let store: PolicyStore;

  afterAll(async () => {
    await store?.close();
  });

  it('keeps the lists in service when a rebuild fails, and swaps in the next good one', async () => {
    const school = await db.pool.query<{ id: number }>("INSERT INTO schools (name, timezone) VALUES ('Worker Academy', 'Europe/London') RETURNING id");
    await seedDefaultPolicy(db.pool, school.rows[0].id);
    store = await PolicyStore.start({
      pool: db.pool,
      schoolId: school.rows[0].id,
      log,
      debounceMs: 10,
      buildLists: async () => (await buildMatcherInWorker(db.url)).matcher,
    });
    const first = store.current;
    const gambling = await categoryId('gambling');
    expect(first.lists.matchHost('www.bet.example')).toEqual([gambling]);

    const failed = store.nextReload();
    await insertEntries([['gambling', 'domain', 'Bad Entry.example']]);
    const failure = await failed;
    expect(failure.ok).toBe(false);
    expect(!failure.ok && failure.error.message).toMatch(/domain entry is not a normalised host: "Bad Entry\.example"/);
    expect(store.current).toBe(first);
    expect(store.status().lastError?.message).toMatch(/Bad Entry\.example/);
    expect(store.current.lists.matchHost('www.bet.example')).toEqual([gambling]);

    const fixed = store.nextReload();
    await db.pool.query("UPDATE list_entries SET value = 'newbet.example' WHERE value = 'Bad Entry.example'");
    const success = await fixed;
    expect(success.ok).toBe(true);
    expect(store.current).not.toBe(first);
    expect(store.current.lists.matchHost('m.newbet.example')).toEqual([gambling]);
    // The old snapshot still answers for whoever holds it (a lookup in flight).
    expect(first.lists.matchHost('m.newbet.example')).toEqual([]);
    expect(first.lists.matchHost('www.bet.example')).toEqual([gambling]);
  });
});
