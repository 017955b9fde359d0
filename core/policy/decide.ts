// The filtering decision: synchronous, from an immutable snapshot, no I/O.
// Precedence (first match wins):
//   1. illegal categories: always blocked, no override;
//   2. local overrides;
//   3. the group's rules for the categories the request falls in;
//   4. the group's default action.
import type { CompiledCategory, CompiledRule, PolicySnapshot } from './compile.js';
import type { Decision, Identity, RequestTarget } from './types.js';

const NO_CATEGORIES: readonly number[] = Object.freeze([]);
const NO_KEYS: readonly string[] = Object.freeze([]);

// Among several categories' rules the strongest decides:
// block > block_during (in its window) > monitor > allow (= block_during outside its window).
const RANK_BLOCK = 3;
const RANK_BLOCK_NOW = 2;
const RANK_MONITOR = 1;
const RANK_ALLOW = 0;

function rankOf(rule: CompiledRule, now: Date): number {
  switch (rule.action) {
    case 'block':
      return RANK_BLOCK;
    case 'block_during':
      return rule.schedule?.isActive(now) ? RANK_BLOCK_NOW : RANK_ALLOW;
    case 'monitor':
      return RANK_MONITOR;
    case 'allow':
      return RANK_ALLOW;
  }
}

/** Merges two sorted id lists (host and url matches) without duplicates. */
function mergeSorted(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = i < a.length ? a[i] : Infinity;
    const y = j < b.length ? b[j] : Infinity;
    if (x <= y) {
      out.push(x);
      i++;
      if (x === y) j++;
    } else {
      out.push(y);
      j++;
    }
  }
  return out;
}

/** Category keys, most severe first (then by key); memoised for the matcher's interned results. */
function categoryKeys(snapshot: PolicySnapshot, ids: readonly number[], interned: boolean): readonly string[] {
  if (ids.length === 0) return NO_KEYS;
  const memo = interned ? snapshot.categoryKeysMemo.get(ids) : undefined;
  if (memo) return memo;
  const known = ids.flatMap((id) => snapshot.categories[id] ?? []);
  known.sort((a, b) => b.severityRank - a.severityRank || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const keys = Object.freeze(known.map((c) => c.key));
  if (interned) snapshot.categoryKeysMemo.set(ids, keys);
  return keys;
}

export function decide(snapshot: PolicySnapshot, identity: Identity, target: RequestTarget, now: Date): Decision {
  // An identity from before a reload may name a group since deleted: treat it as unidentified.
  const group = snapshot.groups.get(identity.groupId) ?? snapshot.defaultGroup;
  const hostIds = snapshot.lists.matchHost(target.host);
  // url entries need the path, which the proxy sees only for plain HTTP and intercepted HTTPS.
  const urlIds = target.path === undefined ? NO_CATEGORIES : snapshot.lists.matchUrl(target.host, target.path);
  const merged = urlIds.length > 0 && hostIds.length > 0;
  const ids = merged ? mergeSorted(hostIds, urlIds) : urlIds.length > 0 ? urlIds : hostIds;
  const categories = categoryKeys(snapshot, ids, !merged);

  // 1. Illegal content: the most severe illegal category decides.
  let illegal: CompiledCategory | undefined;
  for (const id of ids) {
    const c = snapshot.categories[id];
    if (c?.illegal && (!illegal || c.severityRank > illegal.severityRank)) illegal = c;
  }
  if (illegal) {
    return { action: 'block', categories, category: illegal.key, ruleKind: 'illegal', ruleId: null, rule: illegal.illegalRule };
  }

  // 2. Local overrides.
  const override = snapshot.overrides.find(group.id, target.host, target.path, now.getTime());
  if (override) {
    return { action: override.action, categories, category: null, ruleKind: 'override', ruleId: override.id, rule: override.rule };
  }

  // 3. Group rules: the strongest action decides; between equals, the more severe category.
  let best: CompiledRule | undefined;
  let bestRank = -1;
  for (const id of ids) {
    const rule = group.rules[id];
    if (!rule) continue;
    const rank = rankOf(rule, now);
    if (rank > bestRank || (rank === bestRank && best && rule.category.severityRank > best.category.severityRank)) {
      best = rule;
      bestRank = rank;
    }
  }
  if (best) {
    const blocked = bestRank >= RANK_BLOCK_NOW;
    const outsideWindow = best.action === 'block_during' && !blocked;
    return {
      action: blocked ? 'block' : bestRank === RANK_MONITOR ? 'monitor' : 'allow',
      categories,
      category: best.category.key,
      ruleKind: 'group_rule',
      ruleId: best.id,
      rule: outsideWindow ? best.inactiveText : best.text,
    };
  }

  // 4. The group's default.
  return { action: group.defaultAction, categories, category: null, ruleKind: 'default', ruleId: null, rule: group.defaultRule };
}
