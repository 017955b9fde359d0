// Checks a started peer before anything is measured through it, so that a
// wrong configuration fails the run instead of producing a figure: an
// allowed request must come back with the origin's exact page, and for a
// filtering peer a listed host must get the peer's block answer without the
// origin seeing the request.
import { ORIGIN_BODY } from '../common.js';
import { BLOCKED_TEST_HOST } from './lists.js';
import { getThroughProxy, type RunningPeer } from './peer.js';

export interface CountingOrigin {
  port: number;
  /** Requests served since the origin started. */
  served(): Promise<number>;
}

export const ORIGIN_HOST = 'origin.test';

export class PeerVerificationError extends Error {}

export async function verifyPeer(peer: RunningPeer, origin: CountingOrigin): Promise<void> {
  const allowedUrl = `http://${ORIGIN_HOST}:${origin.port}/`;
  const before = await origin.served();
  const allowed = await getThroughProxy(peer.port, allowedUrl);
  if (allowed.status !== 200 || allowed.body !== ORIGIN_BODY) {
    throw new PeerVerificationError(
      `${peer.name}: GET ${allowedUrl} through it got ${allowed.status} and ${allowed.body.length} bytes that are ${allowed.body === ORIGIN_BODY ? '' : 'not '}the origin's page`,
    );
  }
  const afterAllowed = await origin.served();
  if (afterAllowed !== before + 1) throw new PeerVerificationError(`${peer.name}: one allowed request reached the origin ${afterAllowed - before} times`);
  if (!peer.blockAnswer) return;

  const blockedUrl = `http://${BLOCKED_TEST_HOST}:${origin.port}/`;
  const blocked = await getThroughProxy(peer.port, blockedUrl);
  const reached = (await origin.served()) - afterAllowed;
  if (reached !== 0) throw new PeerVerificationError(`${peer.name}: GET ${blockedUrl} (a listed gambling domain) reached the origin: it is not filtering`);
  if (!peer.blockAnswer.matches(blocked)) {
    throw new PeerVerificationError(
      `${peer.name}: GET ${blockedUrl} got ${blocked.status} (${blocked.body.slice(0, 120).replace(/\s+/g, ' ')}…), not its block answer (${peer.blockAnswer.description})`,
    );
  }
}
