// What every `portcullis <command>` receives: settings, a logger, an open
// database (embedded or DATABASE_URL) and the school it acts for.
import type { Config } from '../core/config.js';
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';

export interface CliContext {
  config: Config;
  log: Logger;
  pool: Pool;
  schoolId: number;
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** A subcommand: takes the words after its name, returns the process exit code. */
export type Command = (args: string[], ctx: CliContext) => Promise<number>;
