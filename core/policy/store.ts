// Holds the policy snapshot in service and replaces it when the database
// announces a change (NOTIFY portcullis_policy, payload = table name).
// Reloads run off the hot path, one at a time, debounced so that an admin
// saving ten rules causes one rebuild; the category lists (millions of
// entries) are rebuilt only when lists or categories changed. A reload that
// fails is logged and the previous snapshot stays in service.
import type { Pool, PoolClient } from '../db.js';
import type { Logger } from '../logger.js';
import { compilePolicy, type PolicySnapshot } from './compile.js';
import { loadPolicyInput } from './load.js';
import type { CategoryLookup } from './types.js';

const CHANNEL = 'portcullis_policy';
const LIST_TABLES = new Set(['list_entries', 'categories']);
/** Pseudo-table for "the LISTEN connection came back": notifications may have been missed, so reload everything. */
const RECONNECTED = '(reconnected)';
const DEFAULT_DEBOUNCE_MS = 100;
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;

export interface PolicyStoreOptions {
  pool: Pool;
  schoolId: number;
  log: Logger;
  /** Compiles the category lists from the database; called at start and when lists or categories change. */
  buildLists: () => Promise<CategoryLookup>;
  debounceMs?: number;
}

export type ReloadOutcome =
  | { ok: true; version: number; tables: readonly string[]; snapshot: PolicySnapshot }
  | { ok: false; version: number; tables: readonly string[]; error: Error };

/** For the health endpoint and the admin UI. Times are ISO strings, ready for JSON. */
export interface PolicyStatus {
  version: number;
  loadedAt: string;
  /** Whether the change listener is connected; false while it reconnects. */
  listening: boolean;
  /** The last reload failure, until a reload succeeds. */
  lastError: { message: string; at: string } | null;
  domains: number;
  urls: number;
  groups: number;
  overrides: number;
}

export class PolicyStore {
  private snapshot!: PolicySnapshot;
  private currentVersion = 0;
  private lastLoadedAt = new Date(0);
  private lastError: { message: string; at: string } | null = null;
  private listener: PoolClient | null = null;
  private pending = new Set<string>();
  private debounceTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = RECONNECT_MIN_MS;
  private reloading: Promise<void> | undefined;
  private closed = false;
  private readonly reloadListeners = new Set<(outcome: ReloadOutcome) => void>();
  private readonly log: Logger;
  private readonly debounceMs: number;

  private constructor(private readonly options: PolicyStoreOptions) {
    this.log = options.log.child({ component: 'policy' });
    this.debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  }

  /** Listens for changes, then loads and compiles the first snapshot; throws if that fails. */
  static async start(options: PolicyStoreOptions): Promise<PolicyStore> {
    const store = new PolicyStore(options);
    try {
      // LISTEN before the first load, so a change made meanwhile is not missed.
      await store.connectListener();
      const first = store.loadFirst();
      store.reloading = first; // holds notifications back until there is a snapshot to replace
      await first;
    } catch (err) {
      store.reloading = undefined;
      await store.close();
      throw err;
    }
    store.reloading = undefined;
    store.scheduleFlush();
    return store;
  }

  /** The snapshot in service. Synchronous: read it per request. */
  get current(): PolicySnapshot {
    return this.snapshot;
  }

  /** 1 for the first snapshot, +1 for each snapshot swapped in. */
  get version(): number {
    return this.currentVersion;
  }

  get loadedAt(): Date {
    return this.lastLoadedAt;
  }

  status(): PolicyStatus {
    return {
      version: this.currentVersion,
      loadedAt: this.lastLoadedAt.toISOString(),
      listening: this.listener !== null,
      lastError: this.lastError,
      domains: this.snapshot.lists.domainCount,
      urls: this.snapshot.lists.urlCount,
      groups: this.snapshot.groups.size,
      overrides: this.snapshot.overrides.size,
    };
  }

  /** Calls `listener` after every reload attempt, successful or not. Returns the unsubscribe function. */
  onReload(listener: (outcome: ReloadOutcome) => void): () => void {
    this.reloadListeners.add(listener);
    return () => this.reloadListeners.delete(listener);
  }

  /** The outcome of the next reload attempt. */
  nextReload(): Promise<ReloadOutcome> {
    return new Promise((resolve) => {
      const off = this.onReload((outcome) => {
        off();
        resolve(outcome);
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounceTimer);
    clearTimeout(this.reconnectTimer);
    const listener = this.listener;
    this.listener = null;
    // Destroyed rather than returned: a pooled connection must not carry our LISTEN and handlers to its next user.
    listener?.release(true);
    await this.reloading;
    this.reloadListeners.clear();
  }

  private async loadFirst(): Promise<void> {
    const lists = await this.options.buildLists();
    const input = await loadPolicyInput(this.options.pool, this.options.schoolId);
    this.swapIn(compilePolicy(input, lists));
    this.log.info({ version: this.currentVersion, schoolId: this.options.schoolId }, 'policy loaded');
  }

  private swapIn(snapshot: PolicySnapshot): void {
    this.snapshot = snapshot;
    this.currentVersion++;
    this.lastLoadedAt = new Date();
  }

  private async connectListener(): Promise<void> {
    const client = await this.options.pool.connect();
    const lost = (err: Error) => this.onListenerLost(client, err);
    client.on('error', lost);
    client.on('end', () => lost(new Error('connection ended')));
    client.on('notification', (message) => {
      if (message.channel === CHANNEL) this.onNotification(message.payload ?? '');
    });
    try {
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    this.listener = client;
  }

  private onNotification(table: string): void {
    this.pending.add(table);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.closed || this.debounceTimer || this.reloading || this.pending.size === 0) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.reloading = this.flush().finally(() => {
        this.reloading = undefined;
        this.scheduleFlush(); // changes announced during the reload
      });
    }, this.debounceMs);
  }

  private async flush(): Promise<void> {
    const tables = [...this.pending];
    this.pending = new Set();
    const rebuildLists = tables.some((t) => LIST_TABLES.has(t) || t === RECONNECTED);
    const started = Date.now();
    let outcome: ReloadOutcome;
    try {
      const lists = rebuildLists ? await this.options.buildLists() : this.snapshot.lists;
      const input = await loadPolicyInput(this.options.pool, this.options.schoolId);
      const snapshot = compilePolicy(input, lists);
      if (this.closed) return;
      this.swapIn(snapshot);
      this.lastError = null;
      outcome = { ok: true, version: this.currentVersion, tables, snapshot };
      this.log.info({ version: this.currentVersion, tables, listsRebuilt: rebuildLists, ms: Date.now() - started }, 'policy reloaded');
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.lastError = { message: error.message, at: new Date().toISOString() };
      outcome = { ok: false, version: this.currentVersion, tables, error };
      this.log.error({ err: error, tables, version: this.currentVersion }, 'policy reload failed; the previous policy stays in service');
    }
    for (const listener of [...this.reloadListeners]) listener(outcome);
  }

  private onListenerLost(client: PoolClient, err: Error): void {
    if (this.listener !== client) return; // already handled ('error' and 'end' both fire)
    this.listener = null;
    client.release(err); // destroys the broken connection instead of returning it to the pool
    if (this.closed) return;
    this.log.warn({ err: err.message }, 'policy change listener lost its connection; reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.reconnectTimer = setTimeout(() => {
      this.connectListener().then(
        () => {
          if (this.closed) return void this.close();
          this.reconnectDelayMs = RECONNECT_MIN_MS;
          this.log.info('policy change listener reconnected; reloading');
          this.onNotification(RECONNECTED);
        },
        (err: unknown) => {
          this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, RECONNECT_MAX_MS);
          this.log.warn({ err: (err as Error).message, retryInMs: this.reconnectDelayMs }, 'policy change listener could not reconnect');
          this.scheduleReconnect();
        },
      );
    }, this.reconnectDelayMs);
  }
}
