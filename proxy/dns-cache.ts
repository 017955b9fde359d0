// A small cache in front of the system resolver. Without it every request
// pays for a getaddrinfo() on libuv's thread pool (four threads, shared with
// file I/O and crypto), which is slow and queues under load. dns.lookup()
// reports no TTL, so answers are kept for a short fixed time: long enough to
// spare the resolver at 9 a.m., short enough that a site moving address is
// followed within the minute. Failures are not cached; concurrent lookups of
// one name share a single query. A cached answer is returned as it is, not as
// a promise, so the caller spends no timer or promise on it.
import { LRUCache } from 'lru-cache';
import type { Resolve } from './destination-guard.js';

export interface DnsCacheOptions {
  ttlMs?: number;
  maxNames?: number;
}

export function cachingResolve(resolve: Resolve, options: DnsCacheOptions = {}): Resolve {
  const answers = new LRUCache<string, string[]>({ max: options.maxNames ?? 10_000, ttl: options.ttlMs ?? 30_000 });
  const pending = new Map<string, Promise<string[]>>();
  return (host) => {
    const known = answers.get(host);
    if (known !== undefined) return known;
    let lookup = pending.get(host);
    if (lookup === undefined) {
      lookup = Promise.resolve(resolve(host)).then(
        (addresses) => {
          pending.delete(host);
          answers.set(host, addresses);
          return addresses;
        },
        (err: unknown) => {
          pending.delete(host);
          throw err;
        },
      );
      pending.set(host, lookup);
    }
    return lookup;
  };
}
