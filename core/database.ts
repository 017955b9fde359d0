// Opens the database a command works on: DATABASE_URL when set; otherwise the
// embedded Postgres under DATA_DIR, reusing it when `portcullis start` is
// already running it, starting it (and stopping it afterwards) when not.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Config } from './config.js';
import { createPool, type Pool } from './db.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import type { Logger } from './logger.js';

export interface OpenDatabase {
  pool: Pool;
  /** For other processes of this deployment (cluster workers) to connect with. */
  connectionString: string;
  /** True when this process started the embedded Postgres and will stop it. */
  ownsEmbeddedServer: boolean;
  close(): Promise<void>;
}

async function runningEmbeddedUrl(config: Config): Promise<string | undefined> {
  const credentialsFile = path.join(config.dataDir, 'postgres-credentials.json');
  if (!existsSync(path.join(config.dataDir, 'postgres', 'postmaster.pid')) || !existsSync(credentialsFile)) {
    return undefined;
  }
  const { user, password } = JSON.parse(await readFile(credentialsFile, 'utf8')) as { user: string; password: string };
  const url = `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${config.embeddedPgPort}/portcullis`;
  const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await probe.connect();
    return url;
  } catch {
    return undefined; // a stale pid file from an unclean stop: Postgres starts anyway
  } finally {
    await probe.end().catch(() => undefined);
  }
}

export async function openDatabase(config: Config, log: Logger, poolSize = 10): Promise<OpenDatabase> {
  if (config.databaseUrl) {
    const pool = createPool(config.databaseUrl, log, poolSize);
    return { pool, connectionString: config.databaseUrl, ownsEmbeddedServer: false, close: () => pool.end() };
  }
  const running = await runningEmbeddedUrl(config);
  if (running) {
    const pool = createPool(running, log, poolSize);
    return { pool, connectionString: running, ownsEmbeddedServer: false, close: () => pool.end() };
  }
  log.info({ dataDir: config.dataDir, port: config.embeddedPgPort }, 'starting embedded Postgres');
  const server = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort });
  const pool = createPool(server.connectionString, log, poolSize);
  return {
    pool,
    connectionString: server.connectionString,
    ownsEmbeddedServer: true,
    async close() {
      await pool.end();
      await server.stop();
    },
  };
}
