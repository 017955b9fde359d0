// A policy snapshot compiled here from the database with the proxies'
// compiler, for "why is this blocked?" when no running proxy serves the
// school asked about (an admin API without a proxy in its process tree).
// The compiled category lists (millions of entries) are built once and
// reused for LISTS_MAX_AGE_MS; the rest of the policy is read afresh each
// time, so rule and override changes show at once and list changes within
// that age.
import { loadListEntries } from '../blocklists/load.js';
import { MatcherBuilder } from '../blocklists/matcher.js';
import type { Pool } from '../core/db.js';
import { compilePolicy, type PolicySnapshot } from '../core/policy/compile.js';
import { loadPolicyInput } from '../core/policy/load.js';
import type { CategoryLookup } from '../core/policy/types.js';

const LISTS_MAX_AGE_MS = 60_000;

export class CompiledPolicySource {
  private lists: { lookup: CategoryLookup; builtAt: number } | undefined;
  private building: Promise<CategoryLookup> | undefined;

  constructor(private readonly pool: Pool) {}

  async forSchool(schoolId: number): Promise<PolicySnapshot> {
    const lists = await this.currentLists();
    return compilePolicy(await loadPolicyInput(this.pool, schoolId), lists);
  }

  private async currentLists(): Promise<CategoryLookup> {
    if (this.lists && Date.now() - this.lists.builtAt < LISTS_MAX_AGE_MS) return this.lists.lookup;
    // One build at a time: concurrent questions wait for the same one.
    this.building ??= this.buildLists().finally(() => {
      this.building = undefined;
    });
    return this.building;
  }

  private async buildLists(): Promise<CategoryLookup> {
    const builder = new MatcherBuilder();
    await loadListEntries(this.pool, (kind, value, categoryId) => builder.add(kind, value, categoryId));
    const lookup = builder.build();
    this.lists = { lookup, builtAt: Date.now() };
    return lookup;
  }
}
