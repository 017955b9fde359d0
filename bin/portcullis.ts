#!/usr/bin/env node
// portcullis <command>: the single entry point, for the service and for admins.
import { addressesCommand } from '../cli/addresses.js';
import { blocklistsCommand } from '../cli/blocklists.js';
import type { CliContext, Command } from '../cli/context.js';
import { startCommand } from '../cli/start.js';
import { usersCommand } from '../cli/users.js';
import { prepareDatabase } from '../core/bootstrap.js';
import { ConfigError, loadConfig, type Config } from '../core/config.js';
import { openDatabase } from '../core/database.js';
import { createLogger } from '../core/logger.js';

const USAGE = `Usage: portcullis <command>

  start                          run the proxy and the admin API
  blocklists import <path>       load UT1-format lists from a folder or .tar.gz
  blocklists update [url]        download and load lists (default BLOCKLIST_URL)
  blocklists status              categories, entry counts, last import
  users add <name> --group <g>   add a proxy user (password read from stdin)
  users list | users disable <name>
  addresses assign <cidr> --user <name> | --group <key>
                                 identify clients by address
  addresses list | addresses remove <cidr>

Settings come from environment variables; see README.md.
`;

const commands: Record<string, Command> = {
  addresses: addressesCommand,
  blocklists: blocklistsCommand,
  users: usersCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`portcullis: configuration error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (name === 'start') return startCommand(config);

  const command = commands[name];
  if (!command) {
    process.stderr.write(`portcullis: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  // Commands print their own results; the log only says what went wrong.
  const log = createLogger(process.env.LOG_LEVEL ?? 'warn');
  const db = await openDatabase(config, log, 4);
  try {
    const schoolId = await prepareDatabase(db.pool, config, log);
    const ctx: CliContext = {
      config,
      log,
      pool: db.pool,
      schoolId,
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
    };
    return await command(args, ctx);
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`portcullis: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
