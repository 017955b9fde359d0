import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blocklistsCommand } from '../../cli/blocklists.js';
import type { CliContext } from '../../cli/context.js';
import { loadConfig } from '../../core/config.js';
import { createLogger } from '../../core/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let db: TestDatabase;
let tmp: string;

beforeAll(async () => {
  db = await createTestDatabase();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'portcullis-blocklists-cli-'));
});

afterAll(async () => {
  await db.drop();
  await rm(tmp, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(args: string[], options: { env?: Record<string, string>; tty?: boolean } = {}): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = Object.assign(new PassThrough(), { isTTY: options.tty ?? false });
  const out: string[] = [];
  const err: string[] = [];
  stdout.on('data', (c: Buffer) => out.push(c.toString()));
  stderr.on('data', (c: Buffer) => err.push(c.toString()));
  const ctx: CliContext = {
    config: loadConfig({ DATA_DIR: path.join(tmp, 'data'), ...options.env }),
    log: createLogger('silent'),
    pool: db.pool,
    schoolId: 1,
    stdin: new PassThrough(),
    stdout,
    stderr,
  };
  const code = await blocklistsCommand(args, ctx);
  return { code, stdout: out.join(''), stderr: err.join('') };
}

async function writeLists(root: string, lists: Record<string, Record<string, string>>): Promise<string> {
  for (const [category, files] of Object.entries(lists)) {
    await mkdir(path.join(root, category), { recursive: true });
    for (const [name, content] of Object.entries(files)) await writeFile(path.join(root, category, name), content);
  }
  return root;
}

async function entryCount(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM list_entries');
  return rows[0].n;
}

describe('portcullis blocklists', () => {
  it('imports a folder, with plain progress lines on a non-terminal stderr and the counts on stdout', async () => {
    const dir = await writeLists(path.join(tmp, 'good'), {
      gambling: { domains: 'bet.example\ncasino.example\n', urls: 'example.com/poker/\n' },
      warez: { domains: 'warez.example\n' },
    });
    const result = await run(['import', dir]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      'category  domains  urls\n' +
        'gambling        2     1\n' +
        'warez           1     0\n' +
        `imported 2 categories, 3 domains, 1 URLs in ${/in (\d+\.\d) s/.exec(result.stdout)?.[1]} s\n`,
    );
    expect(result.stderr).toMatch(/^importing: +\d+%, 1 entries, gambling\n/);
    expect(result.stderr).not.toContain('\r');
    expect(await entryCount()).toBe(4);
  });

  it('draws a progress bar when stderr is a terminal', async () => {
    const result = await run(['import', path.join(tmp, 'good')], { tty: true });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^\r\x1b\[Kimporting \[[#-]{30}\] +\d+% 1 entries, gambling/);
    expect(result.stderr.endsWith('\n')).toBe(true);
  });

  it('names the file and line of a malformed entry, exits 1 and leaves the lists as they were', async () => {
    const before = await entryCount();
    const dir = await writeLists(path.join(tmp, 'bad'), {
      gambling: { domains: 'only.example\n' },
      games: { domains: 'ok.example\n\nbad entry.example\n' },
    });
    const result = await run(['import', dir]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(
      'portcullis blocklists: games/domains line 3: "bad entry.example" contains a space or control character\n' +
        'Nothing was imported; the lists in service are unchanged.\n',
    );
    expect(await entryCount()).toBe(before);
  });

  it('reports a missing source', async () => {
    const result = await run(['import', path.join(tmp, 'does-not-exist')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('does-not-exist: no such file or folder');
  });

  it('shows each category with its counts, and the last import', async () => {
    const result = await run(['status']);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^category +severity +usage +domains +urls +local$/);
    expect(lines.find((l) => l.startsWith('gambling '))).toMatch(/^gambling +high +black +2 +1 +0$/);
    expect(lines.find((l) => l.startsWith('iwf'))).toMatch(/^iwf \(illegal\) +critical +black +0 +0 +0$/);
    expect(result.stdout).toMatch(/last import: \d{4}-\d\d-\d\dT[\d:.]+Z from .*good: 2 categories, 3 domains, 1 URLs \(\d+\.\d s\)\n$/);
  });

  it('updates from BLOCKLIST_URL, or from a URL given on the command line', async () => {
    const tree = await writeLists(path.join(tmp, 'served', 'blacklists'), { drogue: { domains: 'drugs.example\n' } });
    const archive = path.join(tmp, 'served.tar.gz');
    await tar.create({ gzip: true, file: archive, cwd: path.dirname(tree), portable: true }, ['blacklists']);
    const body = await readFile(archive);
    const server = http.createServer((req, res) => {
      if (req.url === '/lists.tar.gz') res.writeHead(200, { 'content-length': body.length }).end(body);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const configured = await run(['update'], { env: { BLOCKLIST_URL: `${base}/lists.tar.gz` } });
      expect(configured.code).toBe(0);
      expect(configured.stdout).toMatch(/^drogue +1 +0$/m);
      expect(configured.stderr).toMatch(/^downloading: 100%, /m);

      const missing = await run(['update', `${base}/gone.tar.gz`]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`download of ${base}/gone.tar.gz failed: the server answered 404 Not Found`);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('asks for a URL when none is given or configured, and explains its usage', async () => {
    const noUrl = await run(['update']);
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toBe('portcullis blocklists update: no URL given and BLOCKLIST_URL is not set\n');
    for (const args of [[], ['import'], ['import', 'a', 'b'], ['frobnicate']]) {
      const result = await run(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/^Usage: portcullis blocklists/);
    }
  });
});
