// The origin the proxy forwards to, in its own process: answers every
// request with the same 1 KiB body and counts what it served.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ORIGIN_BODY, processCpuSeconds } from './common.js';

let served = 0;
let connections = 0;
const server = http.createServer((req, res) => {
  served++;
  req.resume();
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(ORIGIN_BODY), 'X-Bench-Origin': 'yes' });
  res.end(ORIGIN_BODY);
});
server.keepAliveTimeout = 60_000;
server.on('connection', () => connections++);

if (process.send) {
  server.listen(0, '127.0.0.1', () => {
    process.send!({ type: 'ready', port: (server.address() as AddressInfo).port });
  });
  process.on('message', (command: { type: string }) => {
    if (command.type === 'stats') process.send!({ type: 'stats', served, connections, cpuSeconds: processCpuSeconds() });
    if (command.type === 'stop') {
      server.close(() => process.disconnect());
      server.closeAllConnections();
    }
  });
}
