// TEST ONLY. A ProxyPolicy that decides by a fixed host → action map, standing
// in for the real policy so the proxy's request path can be tested on its own.
import type { Action, Decision, Identity } from '../../core/policy/types.js';
import type { ProxyPolicy } from '../../proxy/types.js';

export const TEST_CATEGORY = 'test-category';
/** Needs escaping, so block-page tests also prove the escaping. */
export const TEST_CATEGORY_NAME = 'Games & <Gambling>';

const anonymous: Identity = { userId: null, username: null, groupId: 1, groupKey: 'pupils', source: 'default' };

export interface HostMapPolicyOptions {
  /** When set, identify() demands exactly these Basic credentials. */
  credentials?: { username: string; password: string };
}

export function hostMapPolicy(actions: Record<string, Action>, options: HostMapPolicyOptions = {}): ProxyPolicy {
  return {
    async identify(_clientIp, proxyAuthorization) {
      const { credentials } = options;
      if (!credentials) return { ok: true, identity: anonymous };
      if (proxyAuthorization === undefined) return { ok: false, reason: 'required' };
      const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
      if (proxyAuthorization !== expected) return { ok: false, reason: 'invalid' };
      return { ok: true, identity: { userId: 7, username: credentials.username, groupId: 2, groupKey: 'staff', source: 'proxy-auth' } };
    },
    decide(identity, target): Decision {
      const action = actions[target.host] ?? 'allow';
      const category = action === 'allow' ? null : TEST_CATEGORY;
      return {
        action,
        categories: category ? [category] : [],
        category,
        ruleKind: 'group_rule',
        ruleId: 1,
        rule: `${identity.groupKey}: ${target.host} is ${action} <test>`,
      };
    },
    categoryName(key) {
      return key === TEST_CATEGORY ? TEST_CATEGORY_NAME : key;
    },
  };
}
