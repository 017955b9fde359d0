// What every peer proxy module gives the bench: a running instance on a
// loopback port, what its block answer looks like, and its resource use.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { TreeUsage } from './proc.js';

export interface ProxyResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface BlockAnswer {
  /** The status the load counts as the block answer. */
  status: number;
  /** For the table and error messages, e.g. "302 to the squidGuard redirect". */
  description: string;
  /** Whether one response is this peer's block answer (status and a mark of the block page or redirect). */
  matches(response: ProxyResponse): boolean;
}

export interface PeerStartOptions {
  /** An empty folder of the peer's own: configuration, lists, logs, pid file. */
  dir: string;
  /** The 127.0.0.1 port to listen on. */
  port: number;
}

export interface FilteringPeerStartOptions extends PeerStartOptions {
  /** UT1 folder to load. */
  lists: string;
}

export interface RunningPeer {
  name: string;
  /** Debian package versions, e.g. "squid 5.7-2+deb12u6". */
  version: string;
  port: number;
  /** The process the bench started (the group leader); usage() counts it and all its descendants. */
  pid: number;
  /** Present for filtering peers. */
  blockAnswer?: BlockAnswer;
  /** How this instance is set up, for the report (workers, helpers, scanning…). */
  settings: string[];
  usage(): TreeUsage;
  stop(): Promise<void>;
}

export function packageVersion(...packages: string[]): string {
  return packages
    .map((name) => {
      try {
        return `${name} ${execFileSync('dpkg-query', ['-W', '-f=${Version}', name], { encoding: 'utf8' }).trim()}`;
      } catch {
        return `${name} (not installed)`;
      }
    })
    .join(', ');
}

/** One GET through a proxy, absolute URI, on a fresh connection. */
export function getThroughProxy(proxyPort: number, url: string, timeoutMs = 10_000): Promise<ProxyResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port: proxyPort, path: url, headers: { Host: new URL(url).host }, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString() }));
      response.on('error', reject);
    });
    request.setTimeout(timeoutMs, () => request.destroy(new Error(`no answer for ${url} through 127.0.0.1:${proxyPort} within ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}
