// The block a person is reporting, found by the reference on the block page.
// A person can only report their own blocks: a reference from someone else's
// block is "not found" (it says nothing about whose it is), and a block the
// proxy could not tie to a person is refused with the reason, because nobody
// can show it was theirs (a shared address proves nothing).
import type { Pool, PoolClient } from '../core/db.js';
import { conflict, notFound } from '../admin-api/problem.js';

export interface BlockedVisit {
  id: string;
  time: Date;
  host: string;
  /** As the person saw it: scheme://host[:port]path (the host alone for a tunnel). */
  url: string;
  category: string | null;
}

interface BlockedRow {
  id: string;
  time: Date;
  user_id: number | null;
  scheme: 'http' | 'https';
  host: string;
  port: number;
  path: string | null;
  category: string | null;
}

function urlOf(row: BlockedRow): string {
  const defaultPort = row.scheme === 'https' ? 443 : 80;
  const authority = row.port === defaultPort ? row.host : `${row.host.includes(':') ? `[${row.host}]` : row.host}:${row.port}`;
  return `${row.scheme}://${authority}${row.path ?? ''}`;
}

export async function findOwnBlock(db: Pool | PoolClient, schoolId: number, userId: number, ref: string): Promise<BlockedVisit> {
  const { rows } = await db.query<BlockedRow>(
    `SELECT id, time, user_id, scheme, host, port, path, category FROM access_log
      WHERE school_id = $1 AND block_ref = $2 AND action = 'blocked' ORDER BY time DESC LIMIT 1`,
    [schoolId, ref],
  );
  const row = rows[0];
  if (!row || (row.user_id !== null && row.user_id !== userId)) {
    throw notFound(`no block with reference ${ref} is recorded for you (if it happened just now, try again in a few seconds)`);
  }
  if (row.user_id === null) {
    throw conflict(
      `the block ${ref} was not tied to a signed-in person, so it cannot be reported as yours; sign in to the proxy and try again, or tell the safeguarding lead`,
    );
  }
  return { id: row.id, time: row.time, host: row.host, url: urlOf(row), category: row.category };
}
