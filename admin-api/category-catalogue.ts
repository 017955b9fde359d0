// The categories with how many list entries each holds: what the categories
// and blocklist-status routes show. Counting walks list_entries' primary key
// (millions of rows after a full UT1 import, well under a second), which is
// fine for an admin page and never happens on the proxy's path.
import { Type, type Static } from 'typebox';
import type { Pool, PoolClient } from '../core/db.js';

export const CategoryKey = Type.String({ pattern: '^[a-z0-9_-]{1,64}$', description: 'a category key, e.g. gambling' });

export const Category = Type.Object({
  id: Type.Integer(),
  key: Type.String(),
  name: Type.String(),
  description: Type.String(),
  severity: Type.Enum(['none', 'low', 'medium', 'high', 'critical']),
  ukcisClass: Type.Union([Type.String(), Type.Null()], { description: 'UK Safer Internet Centre content class, where one fits' }),
  illegal: Type.Boolean({ description: 'always blocked for everyone; no rule or override can allow it' }),
  source: Type.String({ description: 'ut1, licensed or local' }),
  usage: Type.Enum(['black', 'white'], { description: "UT1's note of the list's usual use" }),
  domains: Type.Integer({ description: 'domain entries, imported and local' }),
  urls: Type.Integer({ description: 'url entries, imported and local' }),
  localEntries: Type.Integer({ description: 'entries an admin added (source local)' }),
});
export type Category = Static<typeof Category>;

export async function listCategories(db: Pool | PoolClient): Promise<Category[]> {
  const { rows } = await db.query<Category>(
    `SELECT c.id, c.key, c.name, c.description, c.severity, c.ukcis_class AS "ukcisClass", c.illegal, c.source, c.usage,
            coalesce(n.domains, 0) AS domains, coalesce(n.urls, 0) AS urls, coalesce(n.local, 0) AS "localEntries"
       FROM categories c
       LEFT JOIN (SELECT category_id,
                         count(*) FILTER (WHERE kind = 'domain')::int AS domains,
                         count(*) FILTER (WHERE kind = 'url')::int AS urls,
                         count(*) FILTER (WHERE source = 'local')::int AS local
                    FROM list_entries GROUP BY category_id) n ON n.category_id = c.id
      ORDER BY c.key`,
  );
  return rows;
}
