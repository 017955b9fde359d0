// A real TLS ClientHello, as node's TLS client sends it, for tests of the
// SNI reader and of the proxy's SNI check.
import net from 'node:net';
import tls from 'node:tls';

/** The bytes node's TLS client sends first, for the given options. */
export async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    return await new Promise<Buffer>((resolve) => {
      server.once('connection', (socket) => {
        let bytes = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          bytes = Buffer.concat([bytes, chunk]);
          // Node sends its ClientHello as one record; the test needs no parser to know where it ends.
          if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt16BE(3)) {
            socket.destroy();
            resolve(bytes);
          }
        });
      });
      tls.connect({ host: '127.0.0.1', port, ...options }).on('error', () => undefined);
    });
  } finally {
    server.close();
  }
}
