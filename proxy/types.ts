// What the proxy needs from the rest of Portcullis, passed in at construction
// so that the request path can be tested with real sockets and real policy.
import type { Decision, Identity, RequestTarget } from '../core/policy/types.js';

export type IdentifyResult =
  | { ok: true; identity: Identity }
  /** No usable credentials where they are required, or wrong ones: answer 407. */
  | { ok: false; reason: 'required' | 'invalid' };

export interface ProxyPolicy {
  /** From the client address and the Proxy-Authorization header, if any. */
  identify(clientIp: string, proxyAuthorization: string | undefined): Promise<IdentifyResult>;
  /** Synchronous: from the current immutable policy snapshot. */
  decide(identity: Identity, target: RequestTarget, now: Date): Decision;
  /** Readable category name for the block page. */
  categoryName(key: string): string;
}

/** One request (or one CONNECT tunnel, when it closes) as the proxy saw it. */
export interface AccessEvent {
  id: string;
  time: Date;
  identity: Identity;
  clientIp: string;
  method: string;
  scheme: 'http' | 'https';
  host: string;
  port: number;
  path: string | null;
  decision: Decision;
  status: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** Set when the request was blocked: the reference shown on the block page. */
  blockRef: string | null;
}

export interface AccessRecorder {
  record(event: AccessEvent): void;
}
