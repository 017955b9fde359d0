// Which bearer tokens GET /metrics accepts while Postgres cannot answer.
import { describe, expect, it } from 'vitest';
import { ConfirmedTokens, RECONFIRM_WINDOW_MS } from '../../admin-api/auth/confirmed-tokens.js';
import type { Principal } from '../../admin-api/auth/principal.js';

const principal = (username: string): Principal => ({
  userId: 1,
  schoolId: 1,
  username,
  displayName: username,
  groupKey: 'staff',
  roles: ['staff', 'it_admin'],
  via: 'token',
});
const T0 = Date.parse('2026-12-07T08:00:00Z');
const nextYear = new Date(T0 + 365 * 24 * 3600 * 1000);

describe('ConfirmedTokens', () => {
  it('recalls a confirmed token, for as long as the outage lasts', () => {
    const tokens = new ConfirmedTokens();
    tokens.confirm('pct_scraper', principal('monitor'), nextYear, T0);
    expect(tokens.recall('pct_scraper', T0 + 1)?.username).toBe('monitor');
    expect(tokens.recall('pct_scraper', T0 + 3 * 24 * 3600 * 1000)?.username).toBe('monitor');
    expect(tokens.recall('pct_other', T0 + 1)).toBeUndefined();
  });

  it('forgets a token Postgres refused', () => {
    const tokens = new ConfirmedTokens();
    tokens.confirm('pct_scraper', principal('monitor'), nextYear, T0);
    tokens.refuse('pct_scraper', T0 + 1000);
    expect(tokens.recall('pct_scraper', T0 + 2000)).toBeUndefined();
  });

  it('does not recall a token confirmed well before Postgres last answered', () => {
    const tokens = new ConfirmedTokens();
    tokens.confirm('pct_old', principal('old'), nextYear, T0);
    tokens.confirm('pct_scraper', principal('monitor'), nextYear, T0 + RECONFIRM_WINDOW_MS);
    expect(tokens.recall('pct_old', T0 + RECONFIRM_WINDOW_MS + 1)?.username).toBe('old');
    // Another check answered later still: the old confirmation may be out of date (revoked since, from the CLI say).
    tokens.refuse('pct_madeup', T0 + RECONFIRM_WINDOW_MS + 1);
    expect(tokens.recall('pct_old', T0 + RECONFIRM_WINDOW_MS + 2)).toBeUndefined();
    expect(tokens.recall('pct_scraper', T0 + RECONFIRM_WINDOW_MS + 2)?.username).toBe('monitor');
  });

  it('does not recall a token past its expiry', () => {
    const tokens = new ConfirmedTokens();
    tokens.confirm('pct_scraper', principal('monitor'), new Date(T0 + 60_000), T0);
    expect(tokens.recall('pct_scraper', T0 + 59_999)?.username).toBe('monitor');
    expect(tokens.recall('pct_scraper', T0 + 60_000)).toBeUndefined();
  });

  it('keeps a bounded number of tokens, the most recently used', () => {
    const tokens = new ConfirmedTokens();
    for (let i = 0; i < 1_000; i++) tokens.confirm(`pct_${i}`, principal(`user${i}`), nextYear, T0);
    expect(tokens.recall('pct_999', T0)?.username).toBe('user999');
    expect(tokens.recall('pct_0', T0)).toBeUndefined();
  });
});
