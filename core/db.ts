// The Postgres connection pool. Errors on idle clients (Postgres restarting,
// the network dropping) are logged, never allowed to crash the process.
import pg from 'pg';
import type { Logger } from './logger.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export function createPool(connectionString: string, log?: Logger, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis: 10_000 });
  pool.on('error', (err) => log?.warn({ err: err.message }, 'postgres connection lost'));
  // The pool listens for errors only on idle clients. A checked-out client
  // whose connection dies between queries (Postgres stopping while the access
  // log writer holds one) would emit an 'error' nobody hears and crash the
  // process. The error is not lost: the query in flight, or the next one,
  // fails with it, and whoever holds the client handles that.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
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
 * a stop need not wait for a long statement; returns what undoes the
 * arrangement, to call before the session's connection goes back to the pool.
 */
export function cancelOnAbort(pool: pg.Pool, backendPid: number, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => undefined;
  const cancel = () => void pool.query('SELECT pg_cancel_backend($1)', [backendPid]).catch(() => undefined);
  signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel);
}

/** Runs `work` in a transaction; rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
