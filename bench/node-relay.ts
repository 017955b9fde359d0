// The floor under any forward proxy written for Node.js on this machine: a
// relay that does the least such a proxy must do for each request (read
// the head, take a kept-alive connection to the server, write the request,
// read the answer's head and hand the answer back) and nothing a school's
// proxy adds: no policy, no identification, no logging. The peers bench
// measures it beside Portcullis and the origin, so that the aim "within 2×
// of the origin" can be read against what Node.js itself allows here.
//
// It relays only what the bench sends (GETs without a body, in absolute
// form; answers framed by Content-Length; CONNECT) and refuses the rest,
// so that it never measures as fast by doing less than it claims.
// Run as `node dist-bench/bench/node-relay.js PORT`.
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HEAD_END = Buffer.from('\r\n\r\n');
/** A head that has not ended within this many bytes is refused: the bench's are a few hundred. */
const MAX_HEAD_BYTES = 16 * 1024;
/** Headers for this hop only, never passed on (RFC 9110, 7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive']);
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n/i;

function answer(status: number, reason: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
}

/** Kept-alive connections to each server, the most recently used first. */
class ServerConnections {
  private readonly idle = new Map<string, net.Socket[]>();

  take(host: string, port: number): net.Socket {
    const key = `${host}:${port}`;
    const kept = this.idle.get(key);
    while (kept?.length) {
      const socket = kept.pop()!;
      if (!socket.destroyed) return socket;
    }
    const socket = net.connect({ host, port, noDelay: true });
    // A kept connection the server closes is forgotten; errors end it, and the exchange using it (if any) sees the close.
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      const list = this.idle.get(key);
      const at = list?.indexOf(socket) ?? -1;
      if (at >= 0) list!.splice(at, 1);
    });
    return socket;
  }

  giveBack(host: string, port: number, socket: net.Socket): void {
    const key = `${host}:${port}`;
    const kept = this.idle.get(key) ?? [];
    kept.push(socket);
    this.idle.set(key, kept);
  }
}

/** One client connection: its requests one at a time, in order. */
function serveClient(client: net.Socket, servers: ServerConnections): void {
  let pending: Buffer | undefined;
  let busy = false;
  const refuse = (status: number, reason: string): void => {
    busy = true; // nothing more is read from this client
    client.end(answer(status, reason));
  };

  const onData = (chunk: Buffer): void => {
    pending = pending ? Buffer.concat([pending, chunk]) : chunk;
    next();
  };
  client.on('data', onData);
  client.on('error', () => client.destroy());

  function next(): void {
    if (busy || !pending) return;
    const end = pending.indexOf(HEAD_END);
    if (end < 0) {
      if (pending.length > MAX_HEAD_BYTES) refuse(431, 'Request Header Fields Too Large');
      return;
    }
    const lines = pending.toString('latin1', 0, end).split('\r\n');
    pending = end + 4 < pending.length ? pending.subarray(end + 4) : undefined;
    const [method, target] = lines[0].split(' ');
    if (method === 'CONNECT') {
      tunnel(target);
      return;
    }
    if (method !== 'GET') {
      refuse(501, 'Not Implemented'); // a HEAD's answer, say, would need framing this relay does not do
      return;
    }
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      refuse(400, 'Bad Request');
      return;
    }
    if (url.protocol !== 'http:') {
      refuse(400, 'Bad Request');
      return;
    }
    let request = `${method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
    for (let i = 1; i < lines.length; i++) {
      const name = lines[i].slice(0, lines[i].indexOf(':')).toLowerCase();
      if (name === 'transfer-encoding' || (name === 'content-length' && lines[i].slice(name.length + 1).trim() !== '0')) {
        refuse(501, 'Not Implemented'); // request bodies are not relayed
        return;
      }
      if (!HOP_BY_HOP.has(name)) request += `${lines[i]}\r\n`;
    }
    busy = true;
    relay(url.hostname, Number(url.port || 80), `${request}\r\n`);
  }

  function relay(host: string, port: number, request: string): void {
    const server = servers.take(host, port);
    let head: Buffer | undefined;
    let remaining = -1; // body bytes still to come; -1 until the answer's head is read
    let passedOn = false;
    const detach = (): void => {
      server.off('data', onAnswer);
      server.off('close', onServerClose);
      client.off('close', onClientClose);
    };
    const fail = (): void => {
      detach();
      server.destroy();
      // Once part of the answer is passed on, the client must see it cut short.
      if (passedOn) client.destroy();
      else refuse(502, 'Bad Gateway');
    };
    const onAnswer = (chunk: Buffer): void => {
      if (remaining < 0) {
        head = head ? Buffer.concat([head, chunk]) : chunk;
        const end = head.indexOf(HEAD_END);
        if (end < 0) {
          if (head.length > MAX_HEAD_BYTES) fail();
          return;
        }
        const length = CONTENT_LENGTH.exec(head.toString('latin1', 0, end + 2));
        if (!length) {
          fail(); // only answers framed by Content-Length are relayed
          return;
        }
        remaining = Number(length[1]) - (head.length - end - 4);
        chunk = head; // the head and whatever of the body came with it, in one write
      } else {
        remaining -= chunk.length;
      }
      if (remaining < 0) {
        fail(); // more than the answer: what follows cannot be told apart
        return;
      }
      client.write(chunk);
      passedOn = true;
      if (remaining === 0) {
        detach();
        servers.giveBack(host, port, server);
        busy = false;
        next();
      }
    };
    const onServerClose = (): void => fail();
    // A client gone mid-answer leaves the rest unread: that connection is not reused.
    const onClientClose = (): void => {
      detach();
      server.destroy();
    };
    server.on('data', onAnswer);
    server.once('close', onServerClose);
    client.once('close', onClientClose);
    server.write(request);
  }

  function tunnel(authority: string): void {
    busy = true;
    client.off('data', onData);
    const colon = authority.lastIndexOf(':');
    let connected = false;
    const server = net.connect({ host: authority.slice(0, colon), port: Number(authority.slice(colon + 1)), noDelay: true }, () => {
      connected = true;
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (pending) server.write(pending);
      pending = undefined;
      client.pipe(server);
      server.pipe(client);
    });
    server.on('error', () => {
      if (connected) client.destroy();
      else client.end(answer(502, 'Bad Gateway'));
    });
    client.on('close', () => server.destroy());
  }
}

export function createNodeRelay(): net.Server {
  const servers = new ServerConnections();
  return net.createServer({ noDelay: true }, (client) => serveClient(client, servers));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0) {
    console.error('usage: node node-relay.js PORT');
    process.exit(2);
  }
  createNodeRelay().listen(port, '127.0.0.1');
}
