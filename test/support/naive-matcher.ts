// A deliberately simple CategoryLookup, the oracle that tests and benchmarks
// compare blocklists/matcher.ts against. Not for production: it allocates on
// every lookup.
import type { CategoryLookup } from '../../core/policy/types.js';
import { normaliseHost } from '../../blocklists/host.js';

const EMPTY: readonly number[] = Object.freeze([]);

export class NaiveMatcher implements CategoryLookup {
  private readonly domains = new Map<string, Set<number>>();
  /** host → path prefix → categories */
  private readonly urls = new Map<string, Map<string, Set<number>>>();

  add(kind: 'domain' | 'url', value: string, categoryId: number): void {
    if (kind === 'domain') {
      addTo(this.domains, value, categoryId);
      return;
    }
    const slash = value.indexOf('/');
    const host = normaliseHost(value.slice(0, slash));
    if (slash === -1 || host === undefined) throw new Error(`bad url entry ${value}`);
    let paths = this.urls.get(host);
    if (paths === undefined) this.urls.set(host, (paths = new Map()));
    addTo(paths, value.slice(slash), categoryId);
  }

  get domainCount(): number {
    return this.domains.size;
  }

  get urlCount(): number {
    let count = 0;
    for (const paths of this.urls.values()) count += paths.size;
    return count;
  }

  matchHost(host: string): readonly number[] {
    const found = new Set<number>();
    for (const suffix of suffixes(host)) for (const id of this.domains.get(suffix) ?? []) found.add(id);
    return sorted(found);
  }

  matchUrl(host: string, pathAndQuery: string): readonly number[] {
    const found = new Set<number>();
    for (const suffix of suffixes(host)) {
      for (const [path, ids] of this.urls.get(suffix) ?? []) {
        if (pathAndQuery.startsWith(path)) for (const id of ids) found.add(id);
      }
    }
    return sorted(found);
  }
}

/** The host itself, then whatever follows each of its dots. */
function* suffixes(host: string): Generator<string> {
  yield host;
  for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) yield host.substring(dot + 1);
}

function addTo(map: Map<string, Set<number>>, key: string, categoryId: number): void {
  let ids = map.get(key);
  if (ids === undefined) map.set(key, (ids = new Set()));
  ids.add(categoryId);
}

function sorted(ids: Set<number>): readonly number[] {
  return ids.size === 0 ? EMPTY : Object.freeze([...ids].sort((a, b) => a - b));
}
