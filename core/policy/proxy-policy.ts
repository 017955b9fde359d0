// The policy as the proxy sees it: identification, and decisions from
// whatever snapshot is in service at the moment of the request.
import type { Identifier } from '../../proxy/identify.js';
import type { ProxyPolicy } from '../../proxy/types.js';
import { decide } from './decide.js';
import type { PolicyStore } from './store.js';

export function createProxyPolicy({ store, identifier }: { store: PolicyStore; identifier: Identifier }): ProxyPolicy {
  return {
    identify: (clientIp, proxyAuthorization) => identifier.identify(clientIp, proxyAuthorization),
    decide: (identity, target, now) => decide(store.current, identity, target, now),
    categoryName: (key) => store.current.categoryByKey.get(key)?.name ?? key,
  };
}
