// Accepts client connections for the proxy: clients outside ALLOWED_CLIENTS
// are cut off before a byte is read (nothing tells a scanner on the wrong
// network that a proxy is here), each connection is read by
// proxy/client-connection.ts, a request head that is not complete within the
// header timeout gets a 408, a connection idle past the idle timeout is
// closed, and closing stops accepting, closes idle connections at once and
// cuts the rest after a grace period.
import net, { type AddressInfo } from 'node:net';
import { unmapIpv4 } from '../core/cidr.js';
import { ClientConnection, type ClientConnectionOptions } from './client-connection.js';

export interface ListenerOptions extends Omit<ClientConnectionOptions, 'onGone'> {
  allowClient(address: string): boolean;
  onRefusedClient(address: string): void;
}

export interface ProxyListener {
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Stops accepting and closes idle connections; after `graceMs`, cuts the rest and calls `atGrace`. */
  close(graceMs: number, atGrace: () => void): Promise<void>;
}

export function createListener(options: ListenerOptions): ProxyListener {
  const connections = new Set<ClientConnection>();
  const connectionOptions: ClientConnectionOptions = { ...options, onGone: (connection) => connections.delete(connection) };
  // Half-open: a client's FIN is the connection's to interpret (client-connection.ts).
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const address = unmapIpv4(socket.remoteAddress ?? '');
    if (!options.allowClient(address)) {
      options.onRefusedClient(address);
      socket.destroy();
      return;
    }
    connections.add(new ClientConnection(socket, address, connectionOptions));
  });

  // One sweep for every connection's timeouts, not timers reset by every read and write.
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const connection of connections) connection.checkTimeouts(now);
    },
    Math.max(10, Math.min(1_000, options.headerTimeoutMs)),
  );
  sweep.unref();

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async close(graceMs, atGrace) {
      clearInterval(sweep);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const connection of connections) connection.closeIfIdle();
      const grace = setTimeout(() => {
        for (const connection of connections) connection.socket.destroy();
        atGrace();
      }, graceMs);
      await closed;
      clearTimeout(grace);
    },
  };
}
