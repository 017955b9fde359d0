// Chaining to a parent proxy (UPSTREAM_PROXY): plain HTTP requests go to it in
// absolute form; CONNECT tunnels are opened through it with its own CONNECT.
import net from 'node:net';
import { findHeadEnd, parseResponseHead } from './http1/head.js';
import { InvalidResponseError, ParentProxyRefusedError, UpstreamTimeoutError } from './upstream-error.js';

const MAX_RESPONSE_HEAD = 16 * 1024;

export function parentEndpoint(parent: URL): { host: string; port: number } {
  const host = parent.hostname.startsWith('[') ? parent.hostname.slice(1, -1) : parent.hostname;
  return { host, port: parent.port === '' ? 80 : Number(parent.port) };
}

/** Basic credentials for the parent, from the user and password in UPSTREAM_PROXY, if any. */
export function parentProxyAuthorization(parent: URL): string | undefined {
  if (parent.username === '' && parent.password === '') return undefined;
  const credentials = `${decodeURIComponent(parent.username)}:${decodeURIComponent(parent.password)}`;
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

/**
 * Opens a tunnel to `authority` (host:port) through the parent proxy. Resolves
 * with a socket positioned at the first byte from the destination.
 */
export function openParentTunnel(parent: URL, authority: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const { host, port } = parentEndpoint(parent);
    const socket = net.connect({ host, port });
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new UpstreamTimeoutError('the upstream proxy did not answer the CONNECT')), timeoutMs);
    let head = Buffer.alloc(0);

    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = findHeadEnd(head, 0);
      if (end === -1) {
        if (head.length > MAX_RESPONSE_HEAD) fail(new InvalidResponseError('the upstream proxy sent an oversized response'));
        return;
      }
      socket.off('data', onData);
      socket.off('error', fail);
      socket.off('close', onClose);
      clearTimeout(timer);
      const parsed = parseResponseHead(head, 0, end);
      if (!parsed.ok) return fail(new InvalidResponseError(`the upstream proxy sent an invalid response: ${parsed.reason}`));
      const code = parsed.head.status;
      if (code < 200 || code > 299) return fail(new ParentProxyRefusedError(code));
      socket.pause();
      const rest = head.subarray(end);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    const onClose = (): void => fail(Object.assign(new Error('the upstream proxy closed the connection'), { code: 'ECONNRESET' }));

    socket.once('connect', () => {
      const authorization = parentProxyAuthorization(parent);
      socket.write(
        `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n` +
          (authorization ? `Proxy-Authorization: ${authorization}\r\n` : '') +
          '\r\n',
      );
    });
    socket.on('data', onData);
    socket.on('error', fail);
    socket.on('close', onClose);
  });
}
