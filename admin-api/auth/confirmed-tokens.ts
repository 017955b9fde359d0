// Bearer tokens Postgres has confirmed, remembered for the few routes that
// answer without the database (GET /metrics). A monitor needs the access
// log's spool counters most while Postgres is away, and a token can only be
// checked there.
//
// A remembered token is accepted only while Postgres cannot answer, and only
// if it was confirmed within RECONFIRM_WINDOW_MS of Postgres's last answer
// to any token check here: a scraper polling every five minutes or more
// often stays confirmed up to the outage, however long the outage lasts.
// A token revoked or whose owner was disabled, from anywhere (the CLI
// included), is forgotten at its next check that finds Postgres up, and a
// change of its owner's roles is taken then; a token not in use just before
// the outage is not recalled at all. Never past the token's expiry.
import { LRUCache } from 'lru-cache';
import type { Principal } from './principal.js';
import { sha256 } from './secrets.js';

export const RECONFIRM_WINDOW_MS = 5 * 60 * 1000;
// Scrapers are few; a bound keeps a flood of distinct live tokens from growing memory.
const MAX_REMEMBERED = 100;

// Kept by hash, as in api_tokens, so that no token lies in memory longer than its request.
const keyOf = (token: string) => sha256(token).toString('hex');

interface Confirmation {
  principal: Principal;
  confirmedAt: number;
  expiresAt: number;
}

export class ConfirmedTokens {
  private readonly byHash = new LRUCache<string, Confirmation>({ max: MAX_REMEMBERED });
  private lastAnswerAt = -Infinity;

  /** Postgres said, at `now` (ms since the epoch), that `token` is live and whose it is. */
  confirm(token: string, principal: Principal, expiresAt: Date, now: number): void {
    this.lastAnswerAt = now;
    this.byHash.set(keyOf(token), { principal, confirmedAt: now, expiresAt: expiresAt.getTime() });
  }

  /** Postgres said, at `now`, that `token` is not live (unknown, revoked, expired, its owner disabled). */
  refuse(token: string, now: number): void {
    this.lastAnswerAt = now;
    this.byHash.delete(keyOf(token));
  }

  /** For use while Postgres cannot answer: whose `token` is, if Postgres confirmed it shortly before it last answered. */
  recall(token: string, now: number): Principal | undefined {
    const confirmation = this.byHash.get(keyOf(token));
    if (confirmation === undefined || confirmation.expiresAt <= now) return undefined;
    if (this.lastAnswerAt - confirmation.confirmedAt > RECONFIRM_WINDOW_MS) return undefined;
    return confirmation.principal;
  }
}
