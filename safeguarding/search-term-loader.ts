// Keeps the running proxy's compiled search-term list (search-terms.ts) in
// step with the search_terms table. The table's trigger announces changes on
// the policy channel (migration 010), so the policy store's listener already
// hears them; rather than hold a second LISTEN connection, this reloads after
// each policy reload. That also covers the listener reconnecting after an
// outage (the policy store reloads then). A reload is one small query, so
// reloading on changes to other policy tables costs nothing worth avoiding.
// A failed reload is logged and the list in service stays.
import type { Pool } from '../core/db.js';
import type { Logger } from '../core/logger.js';
import { SearchTermList, type SearchTerm } from './search-terms.js';

/** What the alert detector reads: the list in service, replaced whole on each change. */
export interface SearchTermSource {
  readonly current: SearchTermList;
}

/** The policy store's reload announcements (PolicyStore.onReload). */
export interface ReloadAnnouncer {
  onReload(listener: () => void): () => void;
}

export interface SearchTermLoaderOptions {
  pool: Pool;
  schoolId: number;
  log: Logger;
  changes: ReloadAnnouncer;
}

export async function loadSearchTerms(pool: Pool, schoolId: number): Promise<SearchTermList> {
  const { rows } = await pool.query<SearchTerm>('SELECT id, term, theme FROM search_terms WHERE school_id = $1 AND enabled ORDER BY id', [schoolId]);
  return new SearchTermList(rows);
}

export class SearchTermLoader implements SearchTermSource {
  private list = SearchTermList.EMPTY;
  private loading: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly log: Logger;

  private constructor(private readonly options: SearchTermLoaderOptions) {
    this.log = options.log.child({ component: 'search-terms' });
    // Subscribed before the first load, so a change made meanwhile is loaded after it.
    this.unsubscribe = options.changes.onReload(() => this.reload());
  }

  /** Loads the first list; throws if that fails. */
  static async start(options: SearchTermLoaderOptions): Promise<SearchTermLoader> {
    const loader = new SearchTermLoader(options);
    try {
      loader.list = await loadSearchTerms(options.pool, options.schoolId);
    } catch (err) {
      await loader.close();
      throw err;
    }
    loader.log.info({ terms: loader.list.size }, 'search terms loaded');
    return loader;
  }

  get current(): SearchTermList {
    return this.list;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    await this.loading;
  }

  /** One load at a time; changes announced during a load cause one more. */
  private reload(): void {
    if (this.closed) return;
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = loadSearchTerms(this.options.pool, this.options.schoolId)
      .then(
        (list) => {
          if (this.closed) return;
          this.list = list;
          this.log.info({ terms: list.size }, 'search terms reloaded');
        },
        (err: unknown) => this.log.error({ err }, 'could not reload the search terms; the previous list stays in service'),
      )
      .finally(() => {
        this.loading = undefined;
        if (this.again) {
          this.again = false;
          this.reload();
        }
      });
  }
}
