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
