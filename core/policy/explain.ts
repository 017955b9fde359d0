// "Why is this blocked?" answered on a policy snapshot: the decision decide()
// makes for a request, a person or group, and a time, with the categories
// named. Questions and answers are plain data, so that the admin API can ask
// a proxy worker over the cluster channel as readily as its own snapshot.
import type { PolicySnapshot } from './compile.js';
import { decide } from './decide.js';
import type { Action, Identity, RequestTarget, RuleKind } from './types.js';

/** Whom the question is about, as the admin API resolved it from the database. */
export type WhyWho =
  | { kind: 'default' }
  | { kind: 'group'; key: string }
  | { kind: 'user'; userId: number; username: string; groupKey: string };

export interface WhyQuestion {
  schoolId: number;
  target: RequestTarget;
  /** ISO 8601; a string so that the question crosses a process boundary unchanged. */
  at: string;
  who: WhyWho;
}

export interface NamedCategory {
  key: string;
  name: string;
}

export interface Explanation {
  host: string;
  path: string | null;
  user: string | null;
  group: string;
  at: string;
  action: Action;
  /** Every category the request falls in, most severe first. */
  categories: NamedCategory[];
  category: NamedCategory | null;
  rule: string;
  ruleKind: RuleKind;
  ruleId: number | null;
}

export type ExplainOutcome =
  | { kind: 'explained'; explanation: Explanation }
  /** The group (asked for, or the user's) is not in this snapshot: deleted, or created since it was compiled. */
  | { kind: 'unknown-group'; key: string }
  /** The snapshot is another school's. */
  | { kind: 'other-school' };

const IDENTITY_SOURCE: Record<WhyWho['kind'], Identity['source']> = { default: 'default', group: 'ip-group', user: 'proxy-auth' };

export function explain(snapshot: PolicySnapshot, question: WhyQuestion): ExplainOutcome {
  if (snapshot.schoolId !== question.schoolId) return { kind: 'other-school' };
  const { who } = question;
  const groupKey = who.kind === 'default' ? snapshot.defaultGroup.key : who.kind === 'group' ? who.key : who.groupKey;
  const group = who.kind === 'default' ? snapshot.defaultGroup : snapshot.groupByKey.get(groupKey);
  if (!group) return { kind: 'unknown-group', key: groupKey };
  const identity: Identity = {
    userId: who.kind === 'user' ? who.userId : null,
    username: who.kind === 'user' ? who.username : null,
    groupId: group.id,
    groupKey: group.key,
    source: IDENTITY_SOURCE[who.kind],
  };
  const at = new Date(question.at);
  const decision = decide(snapshot, identity, question.target, at);
  const named = (key: string): NamedCategory => ({ key, name: snapshot.categoryByKey.get(key)?.name ?? key });
  return {
    kind: 'explained',
    explanation: {
      host: question.target.host,
      path: question.target.path ?? null,
      user: identity.username,
      group: identity.groupKey,
      at: at.toISOString(),
      action: decision.action,
      categories: decision.categories.map(named),
      category: decision.category === null ? null : named(decision.category),
      rule: decision.rule,
      ruleKind: decision.ruleKind,
      ruleId: decision.ruleId,
    },
  };
}

/** Asks a running proxy's policy; rejects when no proxy can answer (all restarting). */
export type Explainer = (question: WhyQuestion) => Promise<ExplainOutcome>;

/** An Explainer for a snapshot held in this process. */
export function explainerOn(current: () => PolicySnapshot): Explainer {
  return async (question) => explain(current(), question);
}
