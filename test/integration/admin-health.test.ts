// GET /healthz while Postgres hangs rather than refuses: a monitor still gets
// its answer within the check's deadline, and the session that asked is not
// left checked out of the pool. The hung Postgres is a real socket server
// that either says nothing at all or completes the start-up exchange
// (AuthenticationOk, ReadyForQuery) and then never answers a query.
import net from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { healthRoutes } from '../../admin-api/routes/health.js';
import { createPool, DATABASE_CHECK_MS, type Pool } from '../../core/db.js';

type Hang = 'before start-up' | 'after start-up';

/** A server that takes connections and answers as a hung Postgres would; close() cuts the connections it holds. */
function hungPostgres(hang: Hang): { server: net.Server; close(): Promise<void> } {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (hang === 'before start-up') return;
    // The start-up message is the client's first; answer it once, then read and ignore everything.
    socket.once('data', () => {
      const authenticationOk = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
      const readyForQuery = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);
      socket.write(Buffer.concat([authenticationOk, readyForQuery]));
    });
  });
  return {
    server,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('/healthz while Postgres hangs', () => {
  const policy = { version: 1, loadedAt: '2026-12-06T00:00:00.000Z', domains: 10, urls: 0 };
  let servers: Array<{ close(): Promise<void> }> = [];
  let pools: Pool[] = [];
  let app: FastifyInstance | undefined;

  const start = async (hang: Hang): Promise<Pool> => {
    const hung = hungPostgres(hang);
    servers.push(hung);
    const { server } = hung;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const pool = createPool(`postgres://nobody:secret@127.0.0.1:${(server.address() as net.AddressInfo).port}/none`);
    pools.push(pool);
    app = Fastify();
    await app.register(healthRoutes, { pool, policyStatus: () => policy });
    return pool;
  };

  beforeAll(() => {
    servers = [];
    pools = [];
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });
  afterAll(async () => {
    for (const hung of servers) await hung.close();
    // A pool still waiting to connect to a silent server ends when its connection timeout passes.
    await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
  }, 15_000);

  for (const hang of ['before start-up', 'after start-up'] as const) {
    it(`answers degraded within the deadline when Postgres hangs ${hang}`, async () => {
      await start(hang);
      const began = performance.now();
      const res = await app!.inject({ method: 'GET', url: '/healthz' });
      const waited = performance.now() - began;
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'degraded', database: `unreachable: no answer within ${DATABASE_CHECK_MS} ms`, policy });
      expect(waited).toBeGreaterThanOrEqual(DATABASE_CHECK_MS - 50);
      expect(waited).toBeLessThan(DATABASE_CHECK_MS + 2_000);
    });
  }

  it('does not leave the session that asked checked out of the pool', async () => {
    const pool = await start('after start-up');
    for (let i = 0; i < 3; i++) expect((await app!.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(503);
    // The query's own timeout, reached with the deadline, releases the session with its error, and the pool closes it.
    const deadline = Date.now() + 2_000;
    while (pool.totalCount > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(pool.totalCount).toBe(0);
    expect(pool.waitingCount).toBe(0);
  });
});
