// Who is making a request: from Proxy-Authorization (Basic, local accounts),
// else from the client address (a person's own address or a group's range,
// the most specific wins), else the default group.
//
// Verifying an argon2 hash takes tens of milliseconds by design, and browsers
// send credentials with every request, so verified credentials are cached
// (username + SHA-256 of the password, a few minutes); wrong ones are cached
// briefly too, so that a misconfigured client cannot cause a hashing storm.
// Both caches are emptied whenever any user account changes (the snapshot's
// usersDigest moves), so a disabled account or a new password takes effect
// with the next policy reload.
import { createHash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ProxyAuthMode } from '../core/config.js';
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import type { PolicySnapshot } from '../core/policy/compile.js';
import type { Identity } from '../core/policy/types.js';
import { hashPassword, normaliseUsername, verifyPassword } from '../core/users.js';
import type { IdentifyResult } from './types.js';

export interface IdentifierOptions {
  pool: Pool;
  mode: ProxyAuthMode;
  snapshotSource: () => PolicySnapshot;
  log: Logger;
  /** How long verified credentials are trusted without re-hashing. */
  verifiedTtlMs?: number;
  /** How long wrong credentials are refused without re-hashing. */
  refusedTtlMs?: number;
  maxCachedCredentials?: number;
}

export interface Identifier {
  identify(clientIp: string, proxyAuthorization: string | undefined): Promise<IdentifyResult>;
  /** argon2 verifications performed so far (for monitoring, and for tests of the cache). */
  readonly passwordChecks: number;
}

type Verification = { ok: true; userId: number; username: string; groupId: number } | { ok: false };

const REFUSED: Verification = Object.freeze({ ok: false });
const INVALID: IdentifyResult = Object.freeze({ ok: false, reason: 'invalid' });
const REQUIRED: IdentifyResult = Object.freeze({ ok: false, reason: 'required' });

/** Username and password from a Basic Proxy-Authorization header, or undefined when it is not one. */
function parseBasic(header: string): { username: string; password: string } | undefined {
  const match = /^\s*basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0 || colon === decoded.length - 1) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function createIdentifier(options: IdentifierOptions): Identifier {
  const { pool, mode, snapshotSource, log } = options;
  if (!['off', 'optional', 'required'].includes(mode)) {
    throw new Error(`proxy authentication mode must be off, optional or required, not "${String(mode)}"`);
  }
  const refusedTtlMs = options.refusedTtlMs ?? 30_000;
  const cache = new LRUCache<string, Verification>({
    max: options.maxCachedCredentials ?? 10_000,
    ttl: options.verifiedTtlMs ?? 5 * 60_000,
  });
  // Concurrent requests with the same credentials (a browser opening six connections) share one verification.
  const inFlight = new Map<string, Promise<Verification>>();
  let cachedDigest: string | undefined;
  let passwordChecks = 0;
  // Unknown users are checked against a throwaway hash so that they take as long as known ones.
  let decoyHash: Promise<string> | undefined;

  async function checkHash(passwordHash: string | null, password: string): Promise<boolean> {
    passwordChecks++;
    if (passwordHash !== null) return verifyPassword(passwordHash, password);
    decoyHash ??= hashPassword(randomBytes(24).toString('base64'));
    await verifyPassword(await decoyHash, password);
    return false;
  }

  async function verifyCredentials(schoolId: number, username: string, password: string): Promise<Verification> {
    const { rows } = await pool.query<{ id: number; group_id: number; password_hash: string | null; disabled: boolean }>(
      'SELECT id, group_id, password_hash, disabled FROM users WHERE school_id = $1 AND username = $2',
      [schoolId, username],
    );
    const user = rows[0];
    // Accounts without a password (IP-mapped or directory users) cannot use proxy authentication.
    const matches = await checkHash(user?.password_hash ?? null, password);
    if (!user || !matches || user.disabled) return REFUSED;
    return { ok: true, userId: user.id, username, groupId: user.group_id };
  }

  async function authenticate(snapshot: PolicySnapshot, header: string): Promise<IdentifyResult> {
    const credentials = parseBasic(header);
    if (!credentials) return INVALID;
    let username: string;
    try {
      username = normaliseUsername(credentials.username);
    } catch {
      return INVALID;
    }
    const key = `${username}:${createHash('sha256').update(credentials.password).digest('base64')}`;
    let verification = cache.get(key);
    if (verification === undefined) {
      let pending = inFlight.get(key);
      if (!pending) {
        const digest = snapshot.usersDigest;
        pending = verifyCredentials(snapshot.schoolId, username, credentials.password).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
        verification = await pending;
        // A verification that straddled an account change may be stale: use it once, do not keep it.
        if (snapshotSource().usersDigest === digest) {
          cache.set(key, verification, verification.ok ? undefined : { ttl: refusedTtlMs });
        }
      } else {
        verification = await pending;
      }
    }
    if (!verification.ok) {
      log.info({ username }, 'proxy authentication refused');
      return INVALID;
    }
    const group = snapshot.groups.get(verification.groupId) ?? snapshot.defaultGroup;
    const identity: Identity = {
      userId: verification.userId,
      username: verification.username,
      groupId: group.id,
      groupKey: group.key,
      source: 'proxy-auth',
    };
    return { ok: true, identity };
  }

  function byAddress(snapshot: PolicySnapshot, clientIp: string): IdentifyResult {
    const assigned = snapshot.ipAssignments.lookup(clientIp);
    if (assigned?.user) {
      const group = snapshot.groups.get(assigned.groupId) ?? snapshot.defaultGroup;
      return {
        ok: true,
        identity: { userId: assigned.user.id, username: assigned.user.username, groupId: group.id, groupKey: group.key, source: 'ip-user' },
      };
    }
    if (mode === 'required') return REQUIRED;
    const group = (assigned && snapshot.groups.get(assigned.groupId)) || snapshot.defaultGroup;
    return {
      ok: true,
      identity: { userId: null, username: null, groupId: group.id, groupKey: group.key, source: assigned ? 'ip-group' : 'default' },
    };
  }

  return {
    async identify(clientIp: string, proxyAuthorization: string | undefined): Promise<IdentifyResult> {
      const snapshot = snapshotSource();
      if (snapshot.usersDigest !== cachedDigest) {
        cache.clear();
        inFlight.clear();
        cachedDigest = snapshot.usersDigest;
      }
      if (mode !== 'off' && proxyAuthorization !== undefined) return authenticate(snapshot, proxyAuthorization);
      return byAddress(snapshot, clientIp);
    },
    get passwordChecks() {
      return passwordChecks;
    },
  };
}
