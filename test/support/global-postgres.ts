// Vitest global setup: one embedded Postgres for the whole run, in a
// temporary folder; each test file makes its own database in it.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from '../../bench/common.js';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../core/embedded-postgres.js';

// Tests take their free ports from here; the one implementation lives with the bench's loopback helpers.
export { freePort };

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgDataDir: string;
  }
}

let handle: EmbeddedPostgresHandle | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-test-'));
  await chmod(dataDir, 0o711); // as root, Postgres runs as `postgres` and must enter it
  handle = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  project.provide('pgAdminUrl', handle.connectionString);
  project.provide('pgDataDir', dataDir);
}

export async function teardown(): Promise<void> {
  await handle?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}
