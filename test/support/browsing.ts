// Browsing activity for the admin-API history and report tests, recorded the
// way the proxy records it: through the AccessLogWriter into access_log.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AccessLogWriter } from '../../access-log/writer.js';
import type { Pool } from '../../core/db.js';
import { createLogger } from '../../core/logger.js';
import type { Action } from '../../core/policy/types.js';
import type { AccessEvent } from '../../proxy/types.js';
import { accessEvent } from './access-events.js';

export interface Visit {
  /** null: someone the proxy could not identify. */
  user: { id: number; username: string } | null;
  groupKey: string;
  time: Date;
  host: string;
  path?: string | null;
  action?: Action;
  categories?: string[];
  rule?: string;
}

/** Writes the visits to access_log and returns once every one is stored. */
export async function recordVisits(pool: Pool, schoolId: number, visits: Visit[]): Promise<AccessEvent[]> {
  const groups = await pool.query<{ id: number; key: string }>('SELECT id, key FROM groups WHERE school_id = $1', [schoolId]);
  const groupId = new Map(groups.rows.map((g) => [g.key, g.id]));
  const events = visits.map((visit) => {
    const gid = groupId.get(visit.groupKey);
    if (gid === undefined) throw new Error(`no group ${visit.groupKey}`);
    const action = visit.action ?? 'allow';
    const categories = visit.categories ?? [];
    return accessEvent({
      groupId: gid,
      time: visit.time,
      identity: {
        userId: visit.user?.id ?? null,
        username: visit.user?.username ?? null,
        groupId: gid,
        groupKey: visit.groupKey,
        source: visit.user ? 'proxy-auth' : 'default',
      },
      host: visit.host,
      path: visit.path === undefined ? '/' : visit.path,
      decision: {
        action,
        categories,
        category: categories[0] ?? null,
        ruleKind: action === 'allow' ? 'default' : 'group_rule',
        ruleId: null,
        rule: visit.rule ?? `${visit.groupKey}: ${action}`,
      },
      blockRef: action === 'block' ? 'ref-1' : null,
    });
  });
  const spoolDir = await mkdtemp(path.join(os.tmpdir(), 'portcullis-visits-'));
  const writer = new AccessLogWriter({ pool, spoolDir, log: createLogger('silent'), flushIntervalMs: 10 });
  try {
    await writer.start();
    for (const event of events) writer.record(event);
    await writer.close();
    const { written, duplicates } = writer.counters();
    if (written + duplicates !== events.length) throw new Error(`only ${written} of ${events.length} visits were written`);
  } finally {
    await rm(spoolDir, { recursive: true, force: true });
  }
  return events;
}
