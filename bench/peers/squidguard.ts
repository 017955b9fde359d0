// squid + squidGuard: squid (bench/peers/squid.ts) with squidGuard as its
// URL rewrite helper, loaded with every category of the UT1 lists (compiled
// to Berkeley DB files with `squidGuard -C all`, else each helper spends
// over a second reading text at start) and blocking the categories
// Portcullis blocks for an unidentified client.
//
// Block answer: squidGuard answers `OK status=302 url="…"` for a listed
// URL, and squid sends the client a 302 to that URL (http://block.test/…)
// without contacting the origin. The load counts 302s as block answers.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BlockAnswer, FilteringPeerStartOptions, RunningPeer } from './peer.js';
import { readUt1Categories, type ListCategory } from './lists.js';
import { DEFAULT_SQUID_WORKERS, startSquidWith } from './squid.js';

export interface SquidGuardOptions extends FilteringPeerStartOptions {
  /** squid SMP workers (2 by default, as for plain squid); each has its own helpers. */
  workers?: number;
  /** Rewrite helpers per squid worker; each answers one request at a time (squidGuard has no concurrency). */
  helpers?: number;
  /** Replaces the UT1 categories: for tests that need a deliberately wrong list set. */
  categories?: ListCategory[];
}

export const SQUIDGUARD_BLOCK_URL = 'http://block.test/blocked';

export const squidGuardBlockAnswer: BlockAnswer = {
  status: 302,
  description: `302 redirect to ${SQUIDGUARD_BLOCK_URL}`,
  matches: (response) => response.status === 302 && String(response.headers.location ?? '').startsWith(SQUIDGUARD_BLOCK_URL),
};

// squidGuard destination names: letters, digits and underscores.
const destName = (category: string) => category.replace(/[^A-Za-z0-9_]/g, '_');

function squidGuardConfig(dbDir: string, logDir: string, categories: ListCategory[]): string {
  const dests = categories.map((c) =>
    [
      `dest ${destName(c.name)} {`,
      ...(c.domains ? [`  domainlist ${c.name}/domains`] : []),
      ...(c.urls ? [`  urllist ${c.name}/urls`] : []),
      '}',
    ].join('\n'),
  );
  const pass = [...categories.filter((c) => c.blocked).map((c) => `!${destName(c.name)}`), 'all'].join(' ');
  return [
    `dbhome ${dbDir}`,
    `logdir ${logDir}`,
    ...dests,
    'acl {',
    '  default {',
    `    pass ${pass}`,
    `    redirect 302:${SQUIDGUARD_BLOCK_URL}?url=%u`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export async function startSquidGuard(options: SquidGuardOptions): Promise<RunningPeer> {
  const workers = options.workers ?? DEFAULT_SQUID_WORKERS;
  const helpers = options.helpers ?? 24;
  const categories = options.categories ?? readUt1Categories(options.lists);
  const dbDir = path.join(options.dir, 'db');
  const logDir = path.join(options.dir, 'squidguard-log');
  mkdirSync(logDir, { recursive: true });
  for (const c of categories) {
    mkdirSync(path.join(dbDir, c.name), { recursive: true });
    if (c.domains) copyFileSync(c.domains, path.join(dbDir, c.name, 'domains'));
    if (c.urls) copyFileSync(c.urls, path.join(dbDir, c.name, 'urls'));
  }
  const configFile = path.join(options.dir, 'squidGuard.conf');
  writeFileSync(configFile, squidGuardConfig(dbDir, logDir, categories));
  execFileSync('squidGuard', ['-c', configFile, '-C', 'all'], { stdio: 'pipe' });
  // The helpers run as squid's `proxy` user: they read the databases and append to the log the compile created.
  execFileSync('chown', ['-R', 'proxy:proxy', dbDir, logDir]);

  // A queue longer than any load's connections: when squid 5's helper queue
  // overflows it can skip the helper and pass the request unfiltered.
  const lines = [
    `url_rewrite_program /usr/bin/squidGuard -c ${configFile}`,
    `url_rewrite_children ${helpers} startup=${helpers} idle=${helpers} concurrency=0 queue-size=4096`,
    'url_rewrite_bypass off',
  ];
  const blocked = categories.filter((c) => c.blocked).length;
  const name = `squid + squidGuard (${workers} worker${workers > 1 ? 's' : ''})`;
  const peer = await startSquidWith(name, { dir: options.dir, port: options.port, workers }, { lines }, ['squid', 'squidguard']);
  return {
    ...peer,
    blockAnswer: squidGuardBlockAnswer,
    settings: [...peer.settings, `${helpers} squidGuard helpers per worker`, `${categories.length} categories loaded, ${blocked} blocked`, 'lists compiled with squidGuard -C all'],
  };
}
