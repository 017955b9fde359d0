// e2guardian with the UT1 lists. The configuration is Debian's as shipped
// (a copy of /etc/e2guardian in the peer's folder), which is what a school
// installing the package runs: phrase filtering of page content on (the
// package's weighted and banned phrase lists, weightedphrasemode 2,
// naughtynesslimit 50), no AV content scanner, no TLS interception. Changed
// only: where it listens and logs, its pid file, running in the foreground,
// httpworkers raised from 500 to 1,200 (a thread per connection, and the
// bench holds 1,000 idle clients), no transparent HTTPS port, and the
// blocked UT1 categories included in bannedsitelist / bannedurllist.
//
// Block answer: its HTML block page (reportinglevel 3, the ukenglish
// template), which the load counts by its status.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnPeerProcess } from './child.js';
import { readUt1Categories, type ListCategory } from './lists.js';
import { packageVersion, type BlockAnswer, type FilteringPeerStartOptions, type RunningPeer } from './peer.js';
import { treeUsage } from './proc.js';

export interface E2guardianOptions extends FilteringPeerStartOptions {
  httpWorkers?: number;
  /** Replaces the UT1 categories: for tests that need a deliberately wrong list set. */
  categories?: ListCategory[];
}

const PACKAGE_CONFIG = '/etc/e2guardian';

export const e2guardianBlockAnswer: BlockAnswer = {
  status: 200,
  description: 'its block page, status 200',
  matches: (response) => response.status === 200 && /e2guardian/i.test(response.body) && /denied|blocked|banned/i.test(response.body),
};

function lowercaseTempDir(): string {
  const dir = path.join(os.tmpdir(), `portcullis-bench-e2guardian-${randomBytes(6).toString('hex')}`);
  if (dir !== dir.toLowerCase()) throw new Error(`e2guardian needs a lowercase folder path; the temp folder ${os.tmpdir()} is not`);
  mkdirSync(dir, { mode: 0o755 });
  return dir;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    return statSync(file).isDirectory() ? filesUnder(file) : [file];
  });
}

/** Sets `key = value` in an e2guardian .conf text: replaces the live line, else adds one. */
function setOption(text: string, key: string, value: string): string {
  const line = new RegExp(`^${key}\\s*=.*$`, 'm');
  return line.test(text) ? text.replace(line, `${key} = ${value}`) : `${text}\n${key} = ${value}\n`;
}

/** Debian's configuration, copied into `dir` with the bench's changes; returns the main configuration file. */
function writeConfiguration(dir: string, port: number, categories: readonly ListCategory[], httpWorkers: number): string {
  const etc = path.join(dir, 'etc');
  const logDir = path.join(dir, 'log');
  execFileSync('cp', ['-r', PACKAGE_CONFIG, etc]);
  mkdirSync(logDir, { recursive: true });
  for (const file of filesUnder(etc)) {
    const text = readFileSync(file, 'utf8');
    if (text.includes(PACKAGE_CONFIG)) writeFileSync(file, text.split(PACKAGE_CONFIG).join(etc));
  }

  // The blocked categories' files, copied in: e2guardian lowercases the paths it includes.
  const ut1 = path.join(etc, 'lists', 'ut1');
  const copy = (category: string, file: string | undefined): string[] => {
    if (!file) return [];
    const target = path.join(ut1, category.toLowerCase(), path.basename(file));
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(file, target);
    return [`.Include<${target}>`];
  };
  const blocked = categories.filter((c) => c.blocked);
  writeFileSync(path.join(etc, 'lists', 'bannedsitelist'), `${blocked.flatMap((c) => copy(c.name, c.domains)).join('\n')}\n`);
  writeFileSync(path.join(etc, 'lists', 'bannedurllist'), `${blocked.flatMap((c) => copy(c.name, c.urls)).join('\n')}\n`);

  const mainConfig = path.join(etc, 'e2guardian.conf');
  let text = readFileSync(mainConfig, 'utf8');
  text = setOption(text, 'filterip', '127.0.0.1');
  text = setOption(text, 'filterports', String(port));
  text = setOption(text, 'nodaemon', 'on');
  text = setOption(text, 'pidfilename', `'${path.join(dir, 'e2guardian.pid')}'`);
  text = setOption(text, 'loglocation', `'${path.join(logDir, 'access.log')}'`);
  text = setOption(text, 'httpworkers', String(httpWorkers));
  text = text.replace(/^transparenthttpsport\s*=.*$/m, '');
  writeFileSync(mainConfig, text);
  // It drops to the e2guardian user: it must read the lists and write its log and pid file.
  chmodSync(dir, 0o777);
  chmodSync(logDir, 0o777);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  return mainConfig;
}

export async function startE2guardian(options: E2guardianOptions): Promise<RunningPeer> {
  const { port } = options;
  const httpWorkers = options.httpWorkers ?? 1200;
  const categories = options.categories ?? readUt1Categories(options.lists);
  // e2guardian lowercases the paths of the files it includes: its folder must have a lowercase path.
  const ownDir = options.dir.toLowerCase() === options.dir ? undefined : lowercaseTempDir();
  const removeOwnDir = () => (ownDir ? rmSync(ownDir, { recursive: true, force: true }) : undefined);
  const dir = path.join(ownDir ?? options.dir, 'e2guardian');
  let mainConfig: string;
  try {
    // It drops to the e2guardian user, who must reach its folder.
    chmodSync(ownDir ?? options.dir, 0o755);
    mkdirSync(dir);
    mainConfig = writeConfiguration(dir, port, categories, httpWorkers);
  } catch (err) {
    removeOwnDir();
    throw err;
  }

  const child = spawnPeerProcess('e2guardian', 'e2guardian', ['-N', '-c', mainConfig], path.join(dir, 'e2guardian.out'));
  const stop = async () => {
    await child.stop();
    removeOwnDir();
  };
  try {
    await child.waitForPort(port, 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name: 'e2guardian',
    version: packageVersion('e2guardian'),
    port,
    pid: child.pid,
    blockAnswer: e2guardianBlockAnswer,
    settings: [
      "Debian's configuration: phrase filtering on, no AV scanner, no TLS interception",
      `httpworkers ${httpWorkers} (threads)`,
      `${categories.filter((c) => c.blocked).length} blocked categories included (only these are loaded)`,
      'access log on',
    ],
    usage: () => treeUsage(child.pid),
    stop,
  };
}
