// Which access events should alert the DSL, decided in memory from the event
// alone and a little state: any hit on an illegal-content category, any
// request to a monitored category, a person's blocked requests reaching
// a threshold within a window, and a plain-HTTP search for one of the DSL's
// safeguarding search terms. Synchronous and bounded: it runs on the
// access-log path and must cost the proxy nothing noticeable.
//
// One trigger, one alert: the same person and host (illegal, monitored) or
// the same person and search term is not raised again for SUPPRESS_MS, and a
// repeated-blocks alert starts the person's count afresh. The dedupe key also
// goes to the database, whose unique index stops a second process raising
// the same trigger.
//
// A search-term alert's summary names the person, each term's theme, the
// term itself (a word from the DSL's own list) and the host, never the text
// the person typed: the summary travels by webhook and email, often to
// systems outside the school's control, and the full search stays in the
// access log (the alert links its row), read through the audited history
// routes.
import { LRUCache } from 'lru-cache';
import type { AccessEvent } from '../proxy/types.js';
import type { SearchTermSource } from './search-term-loader.js';
import { THEME_LABELS, type SearchTerm } from './search-terms.js';
import { searchTextOf } from './search-text.js';

export const ALERT_KINDS = ['illegal_content', 'monitored_category', 'repeated_blocks', 'search_term'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface AlertCandidate {
  kind: AlertKind;
  dedupeKey: string;
  time: Date;
  userId: number | null;
  username: string | null;
  clientIp: string;
  host: string;
  category: string | null;
  summary: string;
  accessLogIds: string[];
}

export interface AlertThresholds {
  repeatedBlocks: number;
  repeatedBlocksWindowMs: number;
}

export const SUPPRESS_MS = 60 * 60_000;
// People and triggers remembered at once; the least recent are forgotten first.
const MEMORY = 10_000;

interface RecentBlock {
  time: number;
  id: string;
  host: string;
}

function whoOf(event: AccessEvent): string {
  return event.identity.userId !== null ? `user:${event.identity.userId}` : `ip:${event.clientIp}`;
}

function describeWho(event: AccessEvent): string {
  return event.identity.username ?? `an unidentified person at ${event.clientIp} (${event.identity.groupKey})`;
}

type Trigger = Pick<AlertCandidate, 'kind' | 'dedupeKey' | 'summary'> & Partial<Pick<AlertCandidate, 'accessLogIds'>>;

/** The alert for a trigger, with the event's who, where and when; made only once something fired (most events fire nothing). */
function alertFor(event: AccessEvent, trigger: Trigger): AlertCandidate {
  return {
    time: event.time,
    userId: event.identity.userId,
    username: event.identity.username,
    clientIp: event.clientIp,
    host: event.host,
    category: event.decision.category,
    accessLogIds: [event.id],
    ...trigger,
  };
}

export class AlertDetector {
  private readonly fired = new LRUCache<string, number>({ max: MEMORY, ttl: SUPPRESS_MS });
  private readonly recentBlocks = new LRUCache<string, RecentBlock[]>({ max: MEMORY });

  constructor(
    private readonly thresholds: AlertThresholds,
    private readonly searchTerms: SearchTermSource,
  ) {}

  inspect(event: AccessEvent): AlertCandidate[] {
    const found: AlertCandidate[] = [];
    const { decision } = event;
    if (decision.ruleKind === 'illegal') {
      const key = `illegal:${whoOf(event)}:${event.host}`;
      if (this.firstTime(key, event)) {
        found.push(alertFor(event, { kind: 'illegal_content', dedupeKey: this.dbKey(key, event), summary: `${describeWho(event)} requested ${event.host}, listed as illegal content (${decision.category ?? 'unknown category'})` }));
      }
    }
    if (decision.action === 'monitor') {
      const key = `monitor:${whoOf(event)}:${event.host}:${decision.category ?? ''}`;
      if (this.firstTime(key, event)) {
        found.push(alertFor(event, { kind: 'monitored_category', dedupeKey: this.dbKey(key, event), summary: `${describeWho(event)} visited ${event.host}, in the monitored category ${decision.category ?? 'unknown'}` }));
      }
    }
    // Only the school's own blocks count: a refusal by the proxy's safety checks is not a person's attempt.
    if (decision.action === 'block' && decision.ruleKind !== 'safety' && event.identity.userId !== null) {
      const repeated = this.countBlock(whoOf(event), event);
      if (repeated) found.push(alertFor(event, repeated));
    }
    const searched = this.searchTermsIn(event);
    if (searched.length > 0) {
      const key = `search:${whoOf(event)}:${searched.map((t) => t.id).join(',')}`;
      const terms = searched.map((t) => `${THEME_LABELS[t.theme]} ("${t.term}")`).join(', ');
      found.push(alertFor(event, { kind: 'search_term', dedupeKey: this.dbKey(key, event), summary: `${describeWho(event)} searched ${event.host} for ${searched.length > 1 ? 'safeguarding terms' : 'a safeguarding term'}: ${terms}` }));
    }
    return found;
  }

  /** The terms in the event's search not already raised for this person; one alert names them all. */
  private searchTermsIn(event: AccessEvent): SearchTerm[] {
    const list = this.searchTerms.current;
    if (list.size === 0 || event.path === null) return [];
    const text = searchTextOf(event.path);
    if (text === undefined) return [];
    const who = whoOf(event);
    return list.match(text).filter((term) => this.firstTime(`search:${who}:${term.id}`, event));
  }

  private firstTime(key: string, event: AccessEvent): boolean {
    const last = this.fired.get(key);
    if (last !== undefined && event.time.getTime() - last < SUPPRESS_MS) return false;
    this.fired.set(key, event.time.getTime());
    return true;
  }

  /** The trigger as stored: the key and the hour it began in, so another process seeing the same burst collides. */
  private dbKey(key: string, event: AccessEvent): string {
    return `${key}@${Math.floor(event.time.getTime() / SUPPRESS_MS)}`;
  }

  private countBlock(who: string, event: AccessEvent): Trigger | undefined {
    const now = event.time.getTime();
    const windowStart = now - this.thresholds.repeatedBlocksWindowMs;
    const recent = (this.recentBlocks.get(who) ?? []).filter((b) => b.time > windowStart);
    recent.push({ time: now, id: event.id, host: event.host });
    if (recent.length < this.thresholds.repeatedBlocks) {
      this.recentBlocks.set(who, recent);
      return undefined;
    }
    // Fired: the next alert needs a fresh run of attempts.
    this.recentBlocks.delete(who);
    const hosts = [...new Set(recent.map((b) => b.host))];
    const minutes = Math.round(this.thresholds.repeatedBlocksWindowMs / 60_000);
    return {
      kind: 'repeated_blocks',
      dedupeKey: `repeated:${who}:${recent[0].id}`,
      summary: `${describeWho(event)} was blocked ${recent.length} times within ${minutes} minutes (${hosts.slice(0, 5).join(', ')}${hosts.length > 5 ? ', …' : ''})`,
      accessLogIds: recent.map((b) => b.id),
    };
  }
}
