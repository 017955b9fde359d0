// The vocabulary of a filtering decision, shared by the policy compiler, the
// proxy and (later) the admin API's "why is this blocked?" check.

/** What the proxy does with a request. monitor = allow, and flag for the DSL. */
export type Action = 'allow' | 'block' | 'monitor';

/** What a group rule says about a category. */
export type RuleAction = 'allow' | 'block' | 'block_during' | 'monitor';

/** Who is making a request, as far as the proxy can tell. */
export interface Identity {
  userId: number | null;
  /** The username as authenticated or mapped; null for the unidentified. */
  username: string | null;
  groupId: number;
  groupKey: string;
  /** How the identity was established. */
  source: 'proxy-auth' | 'ip-user' | 'ip-group' | 'default';
}

/** What is being requested, normalised. */
export interface RequestTarget {
  /** Normalised host (lower case, punycode, canonical IP literal). */
  host: string;
  port: number;
  /** Path and query, only where the proxy sees them (plain HTTP, intercepted HTTPS). */
  path?: string;
}

/** safety: refused by the proxy's own protections (destination range, port), not by the school's policy. */
export type RuleKind = 'illegal' | 'override' | 'group_rule' | 'default' | 'safety';

export interface Decision {
  action: Action;
  /** Keys of every category the request falls in, most severe first. */
  categories: readonly string[];
  /** The category that decided, where one did. */
  category: string | null;
  ruleKind: RuleKind;
  /** The deciding row's id (override or group rule), where there is one. */
  ruleId: number | null;
  /** A sentence a person understands, e.g. "staff: gambling is blocked". */
  rule: string;
}

/**
 * The compiled category lists (blocklists/matcher.ts implements it).
 * Both lookups are synchronous and return sorted category ids: a shared,
 * frozen empty array on a miss, an interned frozen array on a hit.
 */
export interface CategoryLookup {
  /** Every category with a domain entry equal to `host` or a parent domain of it. */
  matchHost(host: string): readonly number[];
  /** Every category with a url entry (host plus path prefix) covering host + pathAndQuery. */
  matchUrl(host: string, pathAndQuery: string): readonly number[];
  readonly domainCount: number;
  readonly urlCount: number;
}
