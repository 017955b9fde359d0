// Which school each group belongs to, for the access_log.school_id column.
//
// The proxy's identity carries the group, not the school. A group never moves
// to another school, so once seen its school is cached for the life of the
// writer; only groups not seen before cost a query. A group that no longer
// exists has no school (NULL), as documented on access_log.school_id.
import type { Pool } from '../core/db.js';

export class GroupSchools {
  /** Group id → the school's id as COPY text ('\N' when the group is gone). */
  private readonly schoolText = new Map<number, string>();

  constructor(private readonly pool: Pool) {}

  /** Makes sure every group in `groupIds` is known; throws when Postgres cannot be asked. */
  async load(groupIds: Iterable<number>): Promise<void> {
    const missing = [...new Set(groupIds)].filter((id) => !this.schoolText.has(id));
    if (!missing.length) return;
    const { rows } = await this.pool.query<{ id: number; school_id: number }>(
      'SELECT id, school_id FROM groups WHERE id = ANY($1::int[])',
      [missing],
    );
    for (const id of missing) this.schoolText.set(id, '\\N');
    for (const row of rows) this.schoolText.set(row.id, String(row.school_id));
  }

  /** The school of a group passed to load() before, as COPY text. */
  copyText(groupId: number): string {
    const text = this.schoolText.get(groupId);
    if (text === undefined) throw new Error(`group ${groupId} was not loaded`);
    return text;
  }
}
