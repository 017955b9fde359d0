// Schema pieces shared by routes. Free text refuses control characters:
// Postgres cannot store NUL, and the rest have no business in a name.
import { Type } from 'typebox';
import { ROLES } from '../core/users.js';

const PRINTABLE = '[^\\u0000-\\u001f\\u007f]';
const VISIBLE = '[^\\s\\u0000-\\u001f\\u007f]';

/** A line of text; with minLength, it must also hold something other than spaces. */
export function Text(options: { minLength?: number; maxLength: number; description?: string }) {
  const pattern = options.minLength ? `^${PRINTABLE}*${VISIBLE}${PRINTABLE}*$` : `^${PRINTABLE}*$`;
  return Type.String({ ...options, pattern });
}

export const RoleSchema = Type.Enum([...ROLES]);

export const IdParams = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }),
});

export const NoContent = Type.Null({ description: 'no content' });
