// Fetches a blocklist archive over HTTP(S) to a local file, within a time
// and size budget, and checks that what arrived is a gzip file before anyone
// tries to import it. Where the school reaches the internet only through a
// parent proxy (UPSTREAM_PROXY), the download goes through it too: an
// http:// archive as an absolute-URI request, an https:// one in a CONNECT
// tunnel, as the proxy's own traffic does.
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fetch, ProxyAgent, type Response } from 'undici';

export class DownloadError extends Error {
  constructor(
    readonly url: string,
    reason: string,
  ) {
    super(`download of ${url} failed: ${reason}`);
    this.name = 'DownloadError';
  }
}

export interface DownloadOptions {
  /** The whole download, from request to last byte. Default 10 minutes. */
  timeoutMs?: number;
  /** Default 512 MiB; the full upstream UT1 archive is well under 100 MiB. */
  maxBytes?: number;
  onProgress?: (bytesRead: number, bytesTotal: number | undefined) => void;
  /** The parent proxy to download through (UPSTREAM_PROXY); direct when absent. */
  proxy?: URL;
}

const GZIP_MAGIC = [0x1f, 0x8b];

/** Downloads `url` to `file`; on any failure `file` is removed and a DownloadError says why. */
export async function downloadArchive(url: string, file: string, options: DownloadOptions = {}): Promise<void> {
  const { timeoutMs = 10 * 60_000, maxBytes = 512 * 1024 * 1024, onProgress, proxy } = options;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DownloadError(url, 'not a URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new DownloadError(url, 'only http and https URLs can be downloaded');
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const timedOut = () => new DownloadError(url, `no complete answer within ${timeoutMs / 1000} s`);
  const viaProxy = proxy === undefined ? undefined : new ProxyAgent({ uri: proxy.href, proxyTunnel: false });
  try {
    let response: Response;
    try {
      response = await fetch(parsed, { signal: abort.signal, redirect: 'follow', dispatcher: viaProxy });
    } catch (err) {
      if (abort.signal.aborted) throw timedOut();
      throw new DownloadError(url, `${describeFetchFailure(err)}${proxy ? ` (through the parent proxy ${proxy.host})` : ''}`);
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new DownloadError(url, `the server answered ${response.status} ${response.statusText}`.trim());
    }
    const declared = Number(response.headers.get('content-length') ?? NaN);
    const bytesTotal = Number.isFinite(declared) ? declared : undefined;
    if (bytesTotal !== undefined && bytesTotal > maxBytes) {
      await response.body.cancel();
      throw new DownloadError(url, `the archive is ${bytesTotal} bytes, more than the limit of ${maxBytes}`);
    }
    let bytesRead = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytesRead += chunk.length;
        if (bytesRead > maxBytes) return done(new DownloadError(url, `the archive exceeds the limit of ${maxBytes} bytes`));
        onProgress?.(bytesRead, bytesTotal);
        done(null, chunk);
      },
    });
    // Opened before the first byte arrives: a write stream opens its file in
    // the background, and one destroyed by an early failure (the first chunk
    // over the limit) could otherwise create the file after it was removed.
    let handle: FileHandle;
    try {
      handle = await open(file, 'w');
    } catch (err) {
      await response.body.cancel();
      throw err;
    }
    const output = handle.createWriteStream();
    try {
      await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), counter, output);
    } catch (err) {
      if (err instanceof DownloadError) throw err;
      if (abort.signal.aborted) throw timedOut();
      throw new DownloadError(url, describeFetchFailure(err));
    }
    if (!(await startsWith(file, GZIP_MAGIC))) {
      const type = response.headers.get('content-type');
      throw new DownloadError(url, `the server did not send a gzip archive${type ? ` (it sent ${type})` : ''}`);
    }
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  } finally {
    clearTimeout(timer);
    // Done with it either way; destroy() cannot wait on a connection the abort left behind.
    await viaProxy?.destroy();
  }
}

function describeFetchFailure(err: unknown): string {
  // fetch hides the network error (ECONNREFUSED, ENOTFOUND...) in `cause`.
  const cause = (err as { cause?: unknown }).cause;
  const message = cause instanceof Error ? cause.message : (err as Error).message;
  return message || String(err);
}

async function startsWith(file: string, magic: number[]): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const head = Buffer.alloc(magic.length);
    const { bytesRead } = await handle.read(head, 0, magic.length, 0);
    return bytesRead === magic.length && magic.every((byte, i) => head[i] === byte);
  } finally {
    await handle.close();
  }
}
