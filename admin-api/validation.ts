// Request validation with TypeBox. Bodies are checked exactly as sent: no
// coercion, so {"id": "1"} is not an integer. Path and query parameters are
// always strings on the wire; a parameter is converted to its schema's number
// or boolean type only when it is written exactly so ("12", "true"). TypeBox's
// own conversion is laxer ("1.5" and "true" both become the integer 1), which
// would let /api/users/1.5 act on user 1.
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';

const INTEGER = /^-?(0|[1-9]\d{0,15})$/;
const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?$/;

function convertParameter(schema: { type?: unknown } | undefined, value: unknown): unknown {
  if (typeof value !== 'string' || !schema) return value;
  if (schema.type === 'integer' && INTEGER.test(value)) return Number(value);
  if (schema.type === 'number' && NUMBER.test(value)) return Number(value);
  if (schema.type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
  return value;
}

function convertParameters(schema: TSchema, value: unknown): unknown {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties;
  if (!properties || typeof value !== 'object' || value === null) return value;
  const converted: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(value)) converted[name] = convertParameter(properties[name], raw);
  return converted;
}

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  return (value: unknown) => {
    const candidate = httpPart === 'body' ? value : convertParameters(schema, value);
    if (check.Check(candidate)) return { value: candidate };
    // TypeBox's errors have the fields fastify's carry (instancePath, keyword, params, message).
    return { error: [...check.Errors(candidate)] as FastifySchemaValidationError[] };
  };
};
