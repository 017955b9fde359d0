// A TCP link between a pool and the test run's real Postgres that a test can
// cut, the way Postgres goes away in a school: 'refuse' ends every
// connection and refuses new ones (Postgres stopped, or its host up without
// it); 'hang' keeps connections open and carries nothing either way (a
// stalled host, a network gone without a reset). mend() drops what the cut
// left and carries new connections again, as a recovered network would.
import net from 'node:net';

export type Cut = 'refuse' | 'hang';

export interface PostgresCable {
  /** The target's connection string with the cable's address in place of its own. */
  url: string;
  cut(how: Cut): Promise<void>;
  mend(): Promise<void>;
  close(): Promise<void>;
}

export async function postgresCable(targetUrl: string): Promise<PostgresCable> {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  let state: 'open' | Cut = 'open';

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    if (state === 'hang') return; // taken in, never answered
    const upstream = net.connect(Number(target.port), target.hostname);
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const listen = (port: number) => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  const stopListening = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));

  return {
    url: url.toString(),
    async cut(how) {
      state = how;
      if (how === 'refuse') {
        dropAll();
        await stopListening();
        return;
      }
      // Stop carrying bytes on the connections already open; they stay open.
      for (const socket of sockets) {
        socket.unpipe();
        socket.pause();
      }
    },
    async mend() {
      if (state === 'open') return;
      dropAll();
      state = 'open';
      if (!server.listening) await listen(port);
    },
    async close() {
      dropAll();
      await stopListening();
    },
  };
}
