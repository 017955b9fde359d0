// TEST ONLY. Waits for the policy in service to show a change the test has
// made in the database. "The next reload" is not enough: a reload already
// under way (set off by an earlier change) may have read the tables before
// this change committed, and finish after it without it.
import type { PolicySnapshot } from '../../core/policy/compile.js';
import type { PolicyStore } from '../../core/policy/store.js';

export async function untilPolicy(store: PolicyStore, holds: (snapshot: PolicySnapshot) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!holds(store.current)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`the policy in service did not come to show ${what} within ${timeoutMs} ms`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, left)));
    await Promise.race([store.nextReload(), timeout]);
    clearTimeout(timer);
  }
}

/** A predicate for untilPolicy: the group's rule for the category has this action, at all times (no schedule). */
export function groupRuleIs(groupKey: string, categoryKey: string, action: string): (snapshot: PolicySnapshot) => boolean {
  return (snapshot) => {
    const category = snapshot.categoryByKey.get(categoryKey);
    const rule = category && snapshot.groupByKey.get(groupKey)?.rules[category.id];
    return rule?.action === action && rule.schedule === null;
  };
}
