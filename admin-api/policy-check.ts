// Refuses a policy change the proxies could not load. Called inside the
// change's transaction, after the change: the school's policy is read back
// through that transaction and compiled by the same compilePolicy the
// proxies run, so a change that would not compile is rolled back whole
// instead of leaving every proxy on its old snapshot with a reload error.
import type { PoolClient } from '../core/db.js';
import { compilePolicy, PolicyError } from '../core/policy/compile.js';
import { loadPolicyInput } from '../core/policy/load.js';
import type { CategoryLookup } from '../core/policy/types.js';
import { Problem } from './problem.js';

const NONE: readonly number[] = Object.freeze([]);

// The category lists play no part in whether a policy compiles.
const NO_LISTS: CategoryLookup = { matchHost: () => NONE, matchUrl: () => NONE, domainCount: 0, urlCount: 0 };

export async function assertPolicyCompiles(client: PoolClient, schoolId: number): Promise<void> {
  const input = await loadPolicyInput(client, schoolId);
  try {
    compilePolicy(input, NO_LISTS);
  } catch (err) {
    // compilePolicy reports every inconsistency (schedules and overrides included) as a PolicyError.
    if (err instanceof PolicyError) {
      throw new Problem(409, 'policy-would-not-compile', `the change was not made: ${err.message}`);
    }
    throw err;
  }
}
