// Brings a database up to what every command expects: the schema, the
// school, the category metadata and, on a new school, the default policy.
import { upsertCategoryMetadata } from '../blocklists/categories.js';
import type { Config } from './config.js';
import type { Pool } from './db.js';
import type { Logger } from './logger.js';
import { migrate } from './migrate.js';
import { seedDefaultPolicy } from './policy/default-policy.js';
import { ensureSchool } from './school.js';

export async function prepareDatabase(pool: Pool, config: Config, log: Logger): Promise<number> {
  const applied = await migrate(pool);
  if (applied.length > 0) log.info({ migrations: applied }, 'database schema updated');
  const schoolId = await ensureSchool(pool, config.schoolName, config.schoolTimezone);
  await upsertCategoryMetadata(pool);
  await seedDefaultPolicy(pool, schoolId);
  return schoolId;
}
