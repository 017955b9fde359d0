// Cursor pagination for list routes. A page is fetched as `limit + 1` rows in
// a stable order; the extra row only says whether there is more. The cursor
// is the last row's sort key, as opaque base64url JSON; a client hands it
// back unchanged to get the next page.
//
//   querystring: Type.Object({ ...PageQuery, search: ... })
//   response:    { 200: Page(UserSchema) }
//   const after = decodeCursor(query.cursor, Type.Tuple([Type.String()]));
//   const rows = ... WHERE key > after ORDER BY key LIMIT pageLimit(query) + 1
//   return pageOf(rows, pageLimit(query), (row) => [row.key]);
import { Type, type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { badRequest } from './problem.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, description: `page size, default ${DEFAULT_PAGE_SIZE}` })),
  cursor: Type.Optional(
    Type.String({ minLength: 1, maxLength: 512, pattern: '^[A-Za-z0-9_-]+$', description: 'nextCursor of the previous page' }),
  ),
};

export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
  });
}

export type CursorKey = ReadonlyArray<string | number>;

export function pageLimit(query: { limit?: number }): number {
  return query.limit ?? DEFAULT_PAGE_SIZE;
}

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/** The sort key a cursor carries, checked against `shape`; a 400 for anything a client made up. */
export function decodeCursor<S extends TSchema>(cursor: string | undefined, shape: S): Static<S> | undefined {
  if (cursor === undefined) return undefined;
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  if (!Value.Check(shape, key)) {
    throw badRequest('the cursor is not one this list gave out', [{ name: 'query/cursor', reason: 'not a cursor from this list' }]);
  }
  return key as Static<S>;
}

/** Trims the extra row and makes the next cursor from the last row kept. */
export function pageOf<T>(rows: T[], limit: number, keyOf: (row: T) => CursorKey): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null };
}
