import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATEGORY_METADATA } from '../../blocklists/categories.js';
import { DownloadError } from '../../blocklists/download.js';
import { importBlocklists, updateBlocklists, type ImportProgress, type ImportSummary } from '../../blocklists/import.js';
import { loadListEntries } from '../../blocklists/load.js';
import { ListFormatError, ListSourceError, readUt1, type ListEntry } from '../../blocklists/ut1-reader.js';
import { defaultListsFile } from '../../core/paths.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

const UT1 = '/work/shared/ut1';
const SLOW = 180_000;

let db: TestDatabase;
let tmp: string;

beforeAll(async () => {
  db = await createTestDatabase();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'portcullis-blocklists-'));
});

afterAll(async () => {
  await db.drop();
  await rm(tmp, { recursive: true, force: true });
});

// --- helpers ---------------------------------------------------------------

/** The entries a UT1 list file holds, counted the simple way: non-blank lines not starting with #. */
async function listLines(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

type Counts = Record<string, { domains: number; urls: number }>;

/** Per-category line counts of the UT1 folder `dir` (only the categories named, or all of them). */
async function countFolder(dir: string, only?: string[]): Promise<Counts> {
  const counts: Counts = {};
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || (only && !only.includes(entry.name))) continue;
    counts[entry.name] = {
      domains: (await listLines(path.join(dir, entry.name, 'domains'))).length,
      urls: (await listLines(path.join(dir, entry.name, 'urls'))).length,
    };
  }
  return counts;
}

function summaryCounts(summary: ImportSummary): Counts {
  return Object.fromEntries(summary.perCategory.map((c) => [c.category, { domains: c.domains, urls: c.urls }]));
}

/** What is in service: rows per category, kind and source, plus the number of recorded imports. */
async function databaseState(): Promise<{ rows: Record<string, number>; imports: number }> {
  const { rows } = await db.pool.query<{ key: string; kind: string; source: string; n: number }>(
    `SELECT c.key, e.kind, e.source, count(*)::int AS n
     FROM list_entries e JOIN categories c ON c.id = e.category_id GROUP BY 1, 2, 3`,
  );
  const imports = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM list_imports');
  return { rows: Object.fromEntries(rows.map((r) => [`${r.key}/${r.kind}/${r.source}`, r.n])), imports: imports.rows[0].n };
}

async function importedCounts(categories: string[]): Promise<Counts> {
  const state = await databaseState();
  return Object.fromEntries(
    categories.map((c) => [
      c,
      { domains: state.rows[`${c}/domain/import`] ?? 0, urls: state.rows[`${c}/url/import`] ?? 0 },
    ]),
  );
}

async function readAll(source: string): Promise<ListEntry[]> {
  const entries: ListEntry[] = [];
  for await (const entry of readUt1(source)) entries.push(entry);
  return entries;
}

async function readError(source: string): Promise<unknown> {
  try {
    await readAll(source);
  } catch (err) {
    return err;
  }
  throw new Error(`reading ${source} succeeded`);
}

/** Writes a UT1 folder: { category: { domains?: text, urls?: text } }. */
async function writeLists(root: string, lists: Record<string, Record<string, string | Buffer>>): Promise<string> {
  for (const [category, files] of Object.entries(lists)) {
    await mkdir(path.join(root, category), { recursive: true });
    for (const [name, content] of Object.entries(files)) await writeFile(path.join(root, category, name), content);
  }
  return root;
}

/** A .tar.gz of real UT1 categories under a top-level blacklists/ folder, as upstream ships it. */
async function buildArchive(name: string, categories: string[], edit?: (category: string, file: string, text: string) => string) {
  const root = path.join(tmp, `${name}-tree`);
  await mkdir(path.join(root, 'blacklists'), { recursive: true });
  for (const category of categories) {
    const dir = path.join(root, 'blacklists', category);
    await mkdir(dir, { recursive: true });
    for (const file of ['domains', 'urls', 'usage']) {
      const text = await readFile(path.join(UT1, category, file), 'utf8').catch(() => undefined);
      if (text !== undefined) await writeFile(path.join(dir, file), edit ? edit(category, file, text) : text);
    }
  }
  // Upstream ships aliases as symbolic links; the reader must pass over them.
  await symlink(categories[0], path.join(root, 'blacklists', 'alias-link'));
  const archive = path.join(tmp, `${name}.tar.gz`);
  await tar.create({ gzip: true, file: archive, cwd: root, portable: true }, ['blacklists']);
  return archive;
}

// --- reading ---------------------------------------------------------------

describe('reading UT1 lists', () => {
  it(
    'reads the real snapshot without errors, one entry per list line',
    async () => {
      const expected = await countFolder(UT1);
      const seen: Counts = {};
      const started = performance.now();
      for await (const entry of readUt1(UT1)) {
        seen[entry.category] ??= { domains: 0, urls: 0 };
        seen[entry.category][entry.kind === 'domain' ? 'domains' : 'urls']++;
      }
      console.log(`read the UT1 snapshot folder in ${Math.round(performance.now() - started)} ms`);
      for (const [category, counts] of Object.entries(expected)) {
        if (counts.domains + counts.urls > 0) expect(seen[category], category).toEqual(counts);
      }
      expect(Object.keys(seen).length).toBeGreaterThan(60);
    },
    SLOW,
  );

  it(
    'reads the bundled default archive, which holds the whole snapshot and its licence',
    async () => {
      const [fromFolder, fromBundle] = await Promise.all([readAll(UT1), readAll(defaultListsFile)]);
      expect(fromBundle.length).toBe(fromFolder.length);
      expect(fromBundle[0].file).toMatch(/^ut1\/[a-z0-9_-]+\/(domains|urls)$/);
      const size = (await readFile(defaultListsFile)).length;
      expect(size).toBeLessThan(8 * 1024 * 1024);
      const names: string[] = [];
      await tar.list({ file: defaultListsFile, onReadEntry: (e) => names.push(e.path) });
      expect(names).toContain('ut1/LICENSE-UT1.md');
      expect(names).toContain('ut1/README.md');
    },
    SLOW,
  );

  it('normalises entries and skips blank lines and comments, with CRLF, a BOM and a leading dot', async () => {
    const dir = await writeLists(path.join(tmp, 'tolerant'), {
      games: {
        domains: '\uFEFF# a comment\r\nExample.COM.\r\n\r\n   \r\n.sub.example.org\r\nxn--bcher-kva.example\r\n10.0.0.1\r\nlast_one.example.net',
        urls: 'Example.com/Path/To?q=1\nexample.com/a\\b\n',
      },
    });
    const entries = await readAll(dir);
    expect(entries.map((e) => [e.kind, e.value, e.file, e.line])).toEqual([
      ['domain', 'example.com', 'games/domains', 2],
      ['domain', 'sub.example.org', 'games/domains', 5],
      ['domain', 'xn--bcher-kva.example', 'games/domains', 6],
      ['domain', '10.0.0.1', 'games/domains', 7],
      ['domain', 'last_one.example.net', 'games/domains', 8],
      ['url', 'example.com/Path/To?q=1', 'games/urls', 1],
      ['url', 'example.com/a\\b', 'games/urls', 2],
    ]);
    // A single category folder given as the source reads the same.
    expect((await readAll(path.join(dir, 'games'))).map((e) => e.file)).toContain('games/urls');
  });

  const good = 'one.example\ntwo.example\nthree.example\nfour.example\n';
  it.each([
    ['domains', `${good}bad host.example\n`, 5, /"bad host\.example" contains a space/],
    ['domains', `${good}exa$mple.com\n`, 5, /"exa\$mple\.com" is not a valid domain/],
    ['domains', `${good}a..b.example\n`, 5, /is not a valid domain/],
    ['urls', 'example.com/ok\nexample.com\n', 2, /"example\.com" is not a URL: it has no path/],
    ['urls', 'http://example.com/x\n', 1, /has a scheme/],
    ['urls', 'bad_host!/x\n', 1, /"bad_host!" is not a valid host/],
    ['domains', Buffer.concat([Buffer.from(good), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x66, 0x72, 0x0a])]), 5, /not valid UTF-8/],
  ])('rejects a malformed line in %s, naming the file and line', async (file, content, line, message) => {
    const dir = await writeLists(await mkdtemp(path.join(tmp, 'bad-')), { games: { [file]: content } });
    const err = await readError(dir);
    expect(err).toBeInstanceOf(ListFormatError);
    expect(err).toMatchObject({ file: `games/${file}`, line });
    expect((err as Error).message).toMatch(new RegExp(`^games/${file} line ${line}: `));
    expect((err as Error).message).toMatch(message);
  });

  it('rejects a category folder whose name is not a valid key', async () => {
    const dir = await writeLists(await mkdtemp(path.join(tmp, 'badname-')), { 'Jeux Vidéo': { domains: good } });
    const err = await readError(dir);
    expect(err).toBeInstanceOf(ListFormatError);
    expect((err as Error).message).toMatch(/"Jeux Vidéo" is not a valid category name/);
  });

  it('reports a source with no categories, and one that does not exist', async () => {
    const empty = await mkdtemp(path.join(tmp, 'empty-'));
    await writeFile(path.join(empty, 'README.md'), 'nothing here');
    expect(await readError(empty)).toBeInstanceOf(ListSourceError);
    expect(String(await readError(empty))).toMatch(/holds no UT1 categories/);
    expect(String(await readError(path.join(tmp, 'nowhere')))).toMatch(/no such file or folder/);
  });

  it('reports truncated and corrupt archives', async () => {
    const archive = await buildArchive('to-truncate', ['gambling', 'drogue']);
    const bytes = await readFile(archive);
    const truncated = path.join(tmp, 'truncated.tar.gz');
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const corrupt = path.join(tmp, 'corrupt.tar.gz');
    const flipped = Buffer.from(bytes);
    for (let i = 1000; i < 1100; i++) flipped[i] ^= 0xff;
    await writeFile(corrupt, flipped);
    const notAnArchive = path.join(tmp, 'not-an-archive.tar.gz');
    await writeFile(notAnArchive, 'this is plain text, not a tar.gz\n'.repeat(100));
    for (const file of [truncated, corrupt, notAnArchive]) {
      const err = await readError(file);
      expect(err, file).toBeInstanceOf(ListSourceError);
      expect((err as Error).message).toMatch(new RegExp(`^${file}: the archive is corrupt or truncated \\(.+\\)$`));
    }
  });
});

// --- importing -----------------------------------------------------------------

describe('importing into Postgres', () => {
  let snapshotCounts: Counts;

  it(
    'imports the real snapshot: every category, every line, and a record of the import',
    async () => {
      snapshotCounts = await countFolder(UT1);
      const progress: ImportProgress[] = [];
      const summary = await importBlocklists(db.pool, UT1, { onProgress: (p) => progress.push(p) });
      console.log(
        `imported the UT1 snapshot folder: ${summary.domains} domains, ${summary.urls} urls, ` +
          `${summary.categories} categories in ${summary.durationMs} ms`,
      );
      expect(summaryCounts(summary)).toEqual(snapshotCounts);
      expect(summary.categories).toBe(Object.keys(snapshotCounts).length);
      expect(await importedCounts(Object.keys(snapshotCounts))).toEqual(snapshotCounts);
      const last = progress[progress.length - 1];
      expect(last.entries).toBe(summary.domains + summary.urls);
      expect(last.bytesRead).toBe(last.bytesTotal);

      const record = await db.pool.query('SELECT source, categories, domains, urls FROM list_imports');
      expect(record.rows).toEqual([{ source: UT1, categories: summary.categories, domains: summary.domains, urls: summary.urls }]);
      const categories = await db.pool.query<{ key: string; illegal: boolean; source: string }>(
        'SELECT key, illegal, source FROM categories',
      );
      expect(categories.rows.map((r) => r.key).sort()).toEqual(CATEGORY_METADATA.map((m) => m.key).sort());
      expect(categories.rows.filter((r) => r.illegal).map((r) => r.key).sort()).toEqual(['ctiru', 'iwf']);
    },
    SLOW,
  );

  it(
    'streams every row back out for the matcher',
    async () => {
      // A value COPY must escape, added by hand, to check it comes back intact.
      await db.pool.query(
        `INSERT INTO list_entries (category_id, kind, value, source)
         SELECT id, 'url', 'escape.example/a\\b', 'local' FROM categories WHERE key = 'webmail'`,
      );
      const loaded = new Set<string>();
      const counts = await loadListEntries(db.pool, (kind, value, categoryId) => loaded.add(`${categoryId} ${kind} ${value}`));
      const { rows } = await db.pool.query<{ row: string }>(
        `SELECT category_id || ' ' || kind || ' ' || value AS row FROM list_entries`,
      );
      expect(loaded.size).toBe(rows.length);
      expect(counts.domains + counts.urls).toBe(rows.length);
      for (const { row } of rows) if (!loaded.has(row)) throw new Error(`${row} was not loaded`);
      expect(loaded.has(`${rows.find((r) => r.row.includes('escape.example'))?.row.split(' ')[0]} url escape.example/a\\b`)).toBe(true);
    },
    SLOW,
  );

  it(
    'replaces the imported rows of the categories an archive holds, keeps local rows, leaves other categories alone',
    async () => {
      const before = await databaseState();
      const gamblingLines = await listLines(path.join(UT1, 'gambling', 'domains'));
      // A local row the next import no longer lists, and one only the school has.
      await db.pool.query(
        `INSERT INTO list_entries (category_id, kind, value, source)
         SELECT id, 'domain', v, 'local' FROM categories, unnest($1::text[]) AS v WHERE key = 'gambling'
         ON CONFLICT (category_id, kind, value) DO UPDATE SET source = 'local'`,
        [[gamblingLines[5000], 'school-only-casino.example']],
      );
      const archive = await buildArchive('partial', ['gambling', 'drogue', 'warez'], (category, file, text) =>
        category === 'gambling' && file === 'domains' ? text.split('\n').slice(0, 1000).join('\n') : text,
      );
      const summary = await importBlocklists(db.pool, archive);
      const expected = { ...(await countFolder(UT1, ['drogue', 'warez'])), gambling: { domains: 1000, urls: snapshotCounts.gambling.urls } };
      expect(summaryCounts(summary)).toEqual(expected);
      expect(await importedCounts(['gambling', 'drogue', 'warez'])).toEqual(expected);

      const after = await databaseState();
      expect(after.rows['gambling/domain/local']).toBe(2);
      for (const [key, n] of Object.entries(before.rows)) {
        if (!/^(gambling|drogue|warez)\//.test(key)) expect(after.rows[key], key).toBe(n);
      }
      expect(after.rows['alias-link/domain/import']).toBeUndefined();
      expect(after.imports).toBe(before.imports + 1);
    },
    SLOW,
  );

  it('de-duplicates an import, adds unknown categories, and empties a category whose list is now empty', async () => {
    const dir = await writeLists(path.join(tmp, 'dupes'), {
      drogue: { domains: '# emptied upstream\n' },
      'school-extra': { domains: 'dup.example\nDUP.example.\n.dup.example\nother.example\n', urls: 'dup.example/x\ndup.example/x\n' },
    });
    // Upstream's aliases are symbolic links to category folders; they must not import twice.
    await symlink('school-extra', path.join(dir, 'extra-alias'));
    const summary = await importBlocklists(db.pool, dir);
    expect(summaryCounts(summary)).toEqual({ drogue: { domains: 0, urls: 0 }, 'school-extra': { domains: 2, urls: 1 } });
    expect(await importedCounts(['drogue', 'school-extra'])).toEqual(summaryCounts(summary));
    const extra = await db.pool.query('SELECT name, severity, illegal FROM categories WHERE key = $1', ['school-extra']);
    expect(extra.rows).toEqual([{ name: 'school-extra', severity: 'low', illegal: false }]);
  });

  it('rejects a malformed line with its file and line, and leaves the lists in service untouched', async () => {
    const before = await databaseState();
    // gambling reads first and is valid: it must not be replaced either.
    const dir = await writeLists(path.join(tmp, 'malformed'), {
      gambling: { domains: 'only-this.example\n' },
      games: { domains: 'one.example\n# comment\n\ntwo.example\nnot a domain\nthree.example\n' },
    });
    const err = await importBlocklists(db.pool, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListFormatError);
    expect(err).toMatchObject({ file: 'games/domains', line: 5 });
    expect((err as Error).message).toBe('games/domains line 5: "not a domain" contains a space or control character');
    expect(await databaseState()).toEqual(before);
  });

  it('rejects a truncated archive and leaves the lists in service untouched', async () => {
    const before = await databaseState();
    const bytes = await readFile(path.join(tmp, 'partial.tar.gz'));
    const truncated = path.join(tmp, 'partial-truncated.tar.gz');
    await writeFile(truncated, bytes.subarray(0, bytes.length - 5000));
    const err = await importBlocklists(db.pool, truncated).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListSourceError);
    expect((err as Error).message).toMatch(/partial-truncated\.tar\.gz: the archive is corrupt or truncated/);
    expect(await databaseState()).toEqual(before);
  });
});

// --- updating over HTTP ----------------------------------------------------------

describe('updating from a URL', () => {
  let server: http.Server;
  let base: string;
  let archive: Buffer;
  const dataDir = () => path.join(tmp, 'data');

  beforeAll(async () => {
    archive = await readFile(
      await buildArchive('served', ['gambling', 'warez'], (category, file, text) =>
        category === 'gambling' && file === 'domains' ? text.split('\n').slice(0, 500).join('\n') : text,
      ),
    );
    server = http.createServer((req, res) => {
      if (req.url === '/lists.tar.gz') {
        res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': archive.length });
        res.end(archive);
      } else if (req.url === '/moved') {
        res.writeHead(302, { location: '/lists.tar.gz' });
        res.end();
      } else if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'application/gzip' }); // no length announced
        res.end(archive);
      } else if (req.url === '/html') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html><body>Please log in</body></html>');
      } else if (req.url === '/stalls') {
        res.writeHead(200, { 'content-type': 'application/gzip' });
        res.write(archive.subarray(0, 100)); // and never finishes
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('downloads, imports and removes the downloaded file', async () => {
    const downloaded: number[] = [];
    const summary = await updateBlocklists(db.pool, `${base}/moved`, dataDir(), {
      onDownloadProgress: (bytes) => downloaded.push(bytes),
    });
    expect(downloaded[downloaded.length - 1]).toBe(archive.length);
    const real = await countFolder(UT1, ['gambling', 'warez']);
    expect(summaryCounts(summary)).toEqual({ ...real, gambling: { domains: 500, urls: real.gambling.urls } });
    expect(await importedCounts(['gambling'])).toEqual({ gambling: summaryCounts(summary).gambling });
    const record = await db.pool.query('SELECT source FROM list_imports ORDER BY id DESC LIMIT 1');
    expect(record.rows[0].source).toBe(`${base}/moved`);
    expect(await readdir(dataDir())).toEqual([]);
  });

  it.each([
    ['/missing', {}, /failed: the server answered 404 Not Found/],
    ['/html', {}, /failed: the server did not send a gzip archive \(it sent text\/html\)/],
    ['/stalls', { timeoutMs: 500 }, /failed: no complete answer within 0.5 s/],
    ['/lists.tar.gz', { maxBytes: 1000 }, /failed: the archive is \d+ bytes, more than the limit of 1000/],
    ['/chunked', { maxBytes: 1000 }, /failed: the archive exceeds the limit of 1000 bytes/],
  ])('refuses %s with a clear error and changes nothing', async (route, options, message) => {
    const before = await databaseState();
    const err = await updateBlocklists(db.pool, `${base}${route}`, dataDir(), options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain(`download of ${base}${route}`);
    expect(await databaseState()).toEqual(before);
    expect(await readdir(dataDir())).toEqual([]);
  });

  it('reports a server that cannot be reached', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = await updateBlocklists(db.pool, `http://127.0.0.1:${port}/lists.tar.gz`, dataDir()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('downloads through the parent proxy (UPSTREAM_PROXY), following redirects there too', async () => {
    const seen: string[] = [];
    // The school's parent proxy, for the test: every absolute-URI request goes on to the archive server.
    const parent = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['proxy-authorization'] ?? '(no credentials)'}`);
      const target = new URL(req.url ?? '');
      const onward = http.request(`${base}${target.pathname}${target.search}`, { method: req.method }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      onward.on('error', () => res.destroy());
      onward.end();
    });
    await new Promise<void>((resolve) => parent.listen(0, '127.0.0.1', resolve));
    // Credentials in UPSTREAM_PROXY go to the parent proxy, as the proxy's own traffic sends them.
    const proxy = new URL(`http://fetcher:s3cret@127.0.0.1:${(parent.address() as AddressInfo).port}`);
    const credentials = `Basic ${Buffer.from('fetcher:s3cret').toString('base64')}`;
    try {
      // A .invalid name never resolves (RFC 6761): only the parent proxy can have fetched it.
      const summary = await updateBlocklists(db.pool, 'http://lists.invalid/moved', dataDir(), { proxy });
      expect(summaryCounts(summary).gambling.domains).toBe(500);
      expect(seen).toEqual([`GET http://lists.invalid/moved ${credentials}`, `GET http://lists.invalid/lists.tar.gz ${credentials}`]);
      expect(await readdir(dataDir())).toEqual([]);
    } finally {
      parent.closeAllConnections();
      await new Promise((resolve) => parent.close(resolve));
    }
  });

  it('says which parent proxy could not be reached, and changes nothing', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const before = await databaseState();
    const proxy = new URL(`http://127.0.0.1:${port}`);
    const err = await updateBlocklists(db.pool, 'http://lists.invalid/lists.tar.gz', dataDir(), { proxy }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toMatch(new RegExp(`ECONNREFUSED.*through the parent proxy 127\\.0\\.0\\.1:${port}`));
    expect(await databaseState()).toEqual(before);
    expect(await readdir(dataDir())).toEqual([]);
  });
});
