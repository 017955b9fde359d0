// Reads the TLS ClientHello at the start of a CONNECT tunnel, without
// consuming it, to learn the server name (SNI) the client is really after.
// The ClientHello may arrive in any number of TCP segments and may span
// several TLS records; everything is bounds-checked, nothing here throws.
import type { Socket } from 'node:net';

export type ClientHelloParse =
  /** More bytes are needed; parsing cannot progress until `needBytes` are buffered. */
  | { kind: 'incomplete'; needBytes: number }
  /** The bytes do not start a TLS handshake. */
  | { kind: 'not-tls' }
  /** They start one, but break the TLS rules: nothing can be learned and nothing should be trusted. */
  | { kind: 'invalid'; reason: string }
  | { kind: 'client-hello'; serverName: string | undefined };

const RECORD_HEADER = 5;
const CONTENT_TYPE_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 1;
const MAX_RECORD_LENGTH = 16_384; // TLSPlaintext.length limit, RFC 8446 §5.1
const EXTENSION_SERVER_NAME = 0;
const SERVER_NAME_HOST = 0;

export function parseClientHello(data: Buffer): ClientHelloParse {
  if (data.length === 0) return { kind: 'incomplete', needBytes: 1 };
  if (data[0] !== CONTENT_TYPE_HANDSHAKE) return { kind: 'not-tls' };
  if (data.length >= 2 && data[1] !== 3) return { kind: 'not-tls' };

  const fragments: Buffer[] = [];
  let handshakeBytes = 0;
  let messageLength = -1; // the ClientHello's length including its 4-byte header, once known
  let offset = 0;
  while (messageLength === -1 || handshakeBytes < messageLength) {
    if (offset + RECORD_HEADER > data.length) return { kind: 'incomplete', needBytes: offset + RECORD_HEADER };
    if (data[offset] !== CONTENT_TYPE_HANDSHAKE) return { kind: 'invalid', reason: 'a non-handshake record interrupts the ClientHello' };
    if (data[offset + 1] !== 3) return { kind: 'invalid', reason: 'a record has an unknown protocol version' };
    const recordLength = data.readUInt16BE(offset + 3);
    if (recordLength === 0) return { kind: 'invalid', reason: 'an empty handshake record' };
    if (recordLength > MAX_RECORD_LENGTH) return { kind: 'invalid', reason: 'a record longer than TLS allows' };
    const end = offset + RECORD_HEADER + recordLength;
    if (end > data.length) return { kind: 'incomplete', needBytes: end };
    fragments.push(data.subarray(offset + RECORD_HEADER, end));
    handshakeBytes += recordLength;
    offset = end;
    if (messageLength === -1 && handshakeBytes >= 4) {
      const head = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: 'invalid', reason: 'the first handshake message is not a ClientHello' };
      messageLength = 4 + head.readUIntBE(1, 3);
    }
  }
  const message = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments);
  return parseClientHelloBody(message.subarray(4, messageLength));
}

/** Walks the ClientHello fields (RFC 8446 §4.1.2) to the extensions, then finds server_name (RFC 6066 §3). */
function parseClientHelloBody(body: Buffer): ClientHelloParse {
  const invalid = (reason: string): ClientHelloParse => ({ kind: 'invalid', reason });
  let pos = 2 + 32; // legacy_version, random
  if (pos + 1 > body.length) return invalid('the ClientHello is truncated');
  const sessionIdLength = body[pos];
  if (sessionIdLength > 32) return invalid('the session id is too long');
  pos += 1 + sessionIdLength;
  if (pos + 2 > body.length) return invalid('the ClientHello is truncated');
  const cipherSuitesLength = body.readUInt16BE(pos);
  if (cipherSuitesLength < 2 || cipherSuitesLength % 2 !== 0) return invalid('the cipher suite list is malformed');
  pos += 2 + cipherSuitesLength;
  if (pos + 1 > body.length) return invalid('the ClientHello is truncated');
  const compressionLength = body[pos];
  if (compressionLength < 1) return invalid('the compression method list is empty');
  pos += 1 + compressionLength;
  if (pos > body.length) return invalid('the ClientHello is truncated');
  if (pos === body.length) return { kind: 'client-hello', serverName: undefined }; // no extensions at all
  if (pos + 2 > body.length) return invalid('the extension list is truncated');
  const extensionsLength = body.readUInt16BE(pos);
  pos += 2;
  if (pos + extensionsLength !== body.length) return invalid('the extension list length does not match the ClientHello');

  const seen = new Set<number>();
  let serverName: string | undefined;
  while (pos < body.length) {
    if (pos + 4 > body.length) return invalid('an extension header is truncated');
    const type = body.readUInt16BE(pos);
    const length = body.readUInt16BE(pos + 2);
    pos += 4;
    if (pos + length > body.length) return invalid('an extension is longer than the list');
    if (seen.has(type)) return invalid(`extension ${type} appears twice`);
    seen.add(type);
    if (type === EXTENSION_SERVER_NAME) {
      const parsed = parseServerNameExtension(body.subarray(pos, pos + length));
      if (typeof parsed !== 'string') return invalid(parsed.reason);
      serverName = parsed;
    }
    pos += length;
  }
  return { kind: 'client-hello', serverName };
}

function parseServerNameExtension(data: Buffer): string | { reason: string } {
  if (data.length < 2 || data.readUInt16BE(0) !== data.length - 2) return { reason: 'the server_name list length is wrong' };
  let hostName: string | undefined;
  let pos = 2;
  while (pos < data.length) {
    if (pos + 3 > data.length) return { reason: 'a server_name entry is truncated' };
    const nameType = data[pos];
    const length = data.readUInt16BE(pos + 1);
    pos += 3;
    if (pos + length > data.length) return { reason: 'a server_name entry is longer than the list' };
    if (nameType === SERVER_NAME_HOST) {
      if (hostName !== undefined) return { reason: 'more than one host name in server_name' };
      if (length === 0) return { reason: 'an empty host name in server_name' };
      const name = data.subarray(pos, pos + length);
      // RFC 6066: an ASCII host name; anything else cannot be a name the policy could match.
      if (!name.every((byte) => byte > 0x20 && byte < 0x7f)) return { reason: 'the server_name host name is not printable ASCII' };
      hostName = name.toString('latin1');
    }
    pos += length;
  }
  if (hostName === undefined) return { reason: 'server_name carries no host name' };
  return hostName;
}

export type ClientHelloPeek =
  | Exclude<ClientHelloParse, { kind: 'incomplete' }>
  /** No verdict within the time limit (the client may be waiting for the server to speak first). */
  | { kind: 'timeout' }
  /** Still incomplete when the byte limit was reached. */
  | { kind: 'too-large' }
  /** The client closed or half-closed before a verdict. */
  | { kind: 'closed' };

export interface PeekOptions {
  maxBytes: number;
  timeoutMs: number;
}

/**
 * Collects the client's first bytes until parseClientHello reaches a verdict,
 * the byte limit, the time limit or the end of the stream. The socket is left
 * paused with nothing consumed beyond `bytes`, which the caller must replay.
 */
export function peekClientHello(
  socket: Socket,
  initial: Buffer,
  options: PeekOptions,
): Promise<{ result: ClientHelloPeek; bytes: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = initial.length > 0 ? [initial] : [];
    let buffered = initial.length;
    let needBytes = 1;
    let done = false;

    const finish = (result: ClientHelloPeek): void => {
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onClosed);
      socket.off('close', onClosed);
      socket.pause();
      resolve({ result, bytes: Buffer.concat(chunks, buffered) });
    };
    const evaluate = (): void => {
      if (buffered < needBytes) return;
      const parsed = parseClientHello(Buffer.concat(chunks, buffered));
      if (parsed.kind !== 'incomplete') return finish(parsed);
      if (parsed.needBytes > options.maxBytes || buffered >= options.maxBytes) return finish({ kind: 'too-large' });
      needBytes = parsed.needBytes;
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      buffered += chunk.length;
      evaluate();
    };
    const onClosed = (): void => finish({ kind: 'closed' });
    const timer = setTimeout(() => finish({ kind: 'timeout' }), options.timeoutMs);

    evaluate(); // `initial` may already hold the whole ClientHello
    if (done) return;
    if (socket.destroyed || socket.readableEnded) return finish({ kind: 'closed' });
    socket.on('data', onData);
    socket.once('end', onClosed);
    socket.once('close', onClosed);
    socket.resume();
  });
}
