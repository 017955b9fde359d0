// The Postgres connection pool, and what its users need for the times
// Postgres is away: a deadline for checks that must answer, telling "could not
// reach the database" from "the database refused", and ending a borrowed
// session so that a broken one is not lent again. Errors on idle clients
// (Postgres restarting, the network dropping) are logged, never allowed to
// crash the process.
import pg from 'pg';
import { within } from './deadline.js';
import type { Logger } from './logger.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** `queryTimeoutMs`: every query of the pool's sessions fails after this long, answered or not (see endSession). */
export function createPool(connectionString: string, log?: Logger, max = 10, queryTimeoutMs?: number): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis: 10_000, ...(queryTimeoutMs !== undefined && { query_timeout: queryTimeoutMs }) });
  pool.on('error', (err) => log?.warn({ err: err.message }, 'postgres connection lost'));
  // The pool listens for errors only on idle clients. A checked-out client
  // whose connection dies between queries (Postgres stopping while the access
  // log writer holds one) would emit an 'error' nobody hears and crash the
  // process. The error is not lost: the query in flight, or the next one,
  // fails with it, and whoever holds the client handles that.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/**
 * How long a check that must answer in time (GET /healthz, a scraper's
 * token on GET /metrics) waits for the database before it answers without.
 */
export const DATABASE_CHECK_MS = 2_000;

export class DatabaseTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DatabaseTimeoutError';
  }
}

/**
 * One query answered within `ms`, or a DatabaseTimeoutError: for a Postgres
 * that hangs rather than refuses (a stalled disk, a host gone without a
 * reset). The deadline covers the wait for a connection too. The query's own
 * timeout makes the session that ran it fail, and the pool close it, rather
 * than stay checked out for as long as Postgres hangs.
 */
export function queryWithin<R extends pg.QueryResultRow>(pool: pg.Pool, text: string, values: unknown[], ms: number): Promise<pg.QueryResult<R>> {
  // query_timeout is read from the query as well as the pool's settings (node-postgres), though its types list it for the pool only.
  const query = pool.query<R>({ text, values, query_timeout: ms } as pg.QueryConfig);
  query.catch(() => undefined); // once the deadline has answered, its late failure is of no interest
  return within(query, ms, () => new DatabaseTimeoutError(ms));
}

/** pool.query, or with `timeoutMs` given, queryWithin that deadline. */
export function querier(pool: pg.Pool, timeoutMs: number | undefined) {
  return <R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> =>
    timeoutMs === undefined ? pool.query<R>(text, values) : queryWithin<R>(pool, text, values, timeoutMs);
}

// What node-postgres and the network say when Postgres cannot be reached or
// went away mid-query: SQLSTATE class 08 (connection exception), 57P01-03
// (shutting down, crashed, starting up), socket errors, and pg's own
// messages, which carry no code.
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03']);
const UNREACHABLE_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed)/;

/** Whether `err` says the database could not be reached or answer, rather than refused the work. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof DatabaseTimeoutError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || code.startsWith('08'))) return true;
  return err instanceof Error && UNREACHABLE_MESSAGES.test(err.message);
}

/** The database `pool` connects to, for a worker thread that opens connections of its own. */
export function connectionStringOf(pool: pg.Pool): string {
  const { connectionString } = pool.options;
  if (connectionString === undefined) throw new Error('the database pool has no connection string for a worker thread to connect with');
  return connectionString;
}

/**
 * Arranges for the query a session is running to be cancelled when `signal`
 * aborts (pg_cancel_backend, from another of the pool's connections), so that
 * a stop need not wait for a long statement. Returns what ends the
 * arrangement: await it before the session runs anything it does not want
 * cancelled, or goes back to the pool. It waits for a cancel already on its
 * way, which Postgres then ignores while the session is idle; without the
 * wait it could land on a later query, another caller's.
 */
export function cancelOnAbort(pool: pg.Pool, backendPid: number, signal: AbortSignal | undefined): () => Promise<void> {
  if (signal === undefined) return async () => undefined;
  let sent: Promise<unknown> | undefined;
  const cancel = () => {
    sent = pool.query('SELECT pg_cancel_backend($1)', [backendPid]).catch(() => undefined);
  };
  signal.addEventListener('abort', cancel, { once: true });
  return async () => {
    signal.removeEventListener('abort', cancel);
    await sent;
  };
}

/**
 * Ends a session borrowed with pool.connect() after `failure` (undefined if
 * none): rolls back what it left open, if `open`, and hands it back to the
 * pool, unless the database did not answer on it. Then the session is closed
 * instead (which makes Postgres roll back too): a query that timed out may
 * still be running there, and the next borrower would wait behind it.
 */
export async function endSession(client: pg.PoolClient, failure: unknown, open: boolean): Promise<void> {
  if (failure !== undefined && isDatabaseUnavailable(failure)) {
    client.release(failure instanceof Error ? failure : new Error(String(failure)));
    return;
  }
  if (open) await client.query('ROLLBACK').catch(() => undefined);
  client.release();
}

/** Runs `work` in a transaction; rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failure: unknown;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    await endSession(client, failure, failure !== undefined);
  }
}
