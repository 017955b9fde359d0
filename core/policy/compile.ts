// Policy input + compiled category lists → one immutable snapshot that
// decide() reads without I/O. Pure; any inconsistency in the input throws a
// PolicyError naming the offending row, so a bad change is refused as a
// whole and the previous snapshot stays in service.
import { IpAssignmentMap } from './ip-map.js';
import type { CategoryInput, GroupInput, PolicyInput, Severity } from './input.js';
import { OverrideIndex } from './overrides.js';
import type { CategoryLookup, RuleAction } from './types.js';
import { compileSchedule, SchoolClock, type CompiledSchedule } from '../schedule.js';

export class PolicyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PolicyError';
  }
}

const SEVERITY_RANK: Record<Severity, number> = { none: 0, low: 1, medium: 2, high: 3, critical: 4 };
const RULE_ACTIONS: readonly RuleAction[] = ['allow', 'block', 'block_during', 'monitor'];

export interface CompiledCategory {
  readonly id: number;
  readonly key: string;
  readonly name: string;
  readonly severity: Severity;
  /** 0 (none) … 4 (critical): higher is more severe. */
  readonly severityRank: number;
  readonly illegal: boolean;
  /** The illegal-content rule text, e.g. "IWF list: illegal content, always blocked". */
  readonly illegalRule: string;
}

export interface CompiledRule {
  readonly id: number;
  readonly category: CompiledCategory;
  readonly action: RuleAction;
  /** Set for block_during. */
  readonly schedule: CompiledSchedule | null;
  /** The rule text when it applies (for block_during: while its schedule is active). */
  readonly text: string;
  /** block_during only: the rule text outside its schedule. */
  readonly inactiveText: string;
}

export interface CompiledGroup {
  readonly id: number;
  readonly key: string;
  readonly name: string;
  readonly defaultAction: 'allow' | 'block';
  readonly isDefault: boolean;
  /** Indexed by category id; undefined where the group has no rule. */
  readonly rules: readonly (CompiledRule | undefined)[];
  /** e.g. "default for guests: allow". */
  readonly defaultRule: string;
}

/** Who a client address identifies. */
export interface IpIdentity {
  readonly assignmentId: number;
  /** Set when the address is a person's own; their group applies. */
  readonly user: { readonly id: number; readonly username: string } | null;
  readonly groupId: number;
}

export interface PolicySnapshot {
  readonly schoolId: number;
  readonly timeZone: string;
  readonly lists: CategoryLookup;
  /** Indexed by category id. */
  readonly categories: readonly (CompiledCategory | undefined)[];
  readonly categoryByKey: ReadonlyMap<string, CompiledCategory>;
  readonly groups: ReadonlyMap<number, CompiledGroup>;
  readonly groupByKey: ReadonlyMap<string, CompiledGroup>;
  /** The group of the unidentified. */
  readonly defaultGroup: CompiledGroup;
  readonly schedules: ReadonlyMap<number, CompiledSchedule>;
  readonly overrides: OverrideIndex;
  readonly ipAssignments: IpAssignmentMap<IpIdentity>;
  readonly usersDigest: string;
  /** Memo for decide(): a lookup result (interned by the matcher) → its category keys, most severe first. */
  readonly categoryKeysMemo: WeakMap<readonly number[], readonly string[]>;
}

/** "Social networks" → "social networks"; an acronym ("VPN services") keeps its case. */
function inSentence(name: string): string {
  const second = name.charAt(1);
  return second !== '' && second === second.toUpperCase() && second !== second.toLowerCase()
    ? name
    : name.charAt(0).toLowerCase() + name.slice(1);
}

/**
 * "gambling is", "social networks are", "news and press are", "proxies, strict
 * are", "fake news is", "DNS over HTTPS is": good enough English for the
 * category names we ship and for most an admin would write.
 */
function subject(name: string): string {
  const head = name.split(/,| \(/)[0];
  const lastWord = head.split(' ').pop() ?? head;
  const plural = head.includes(' and ') || (/[^s]s$/.test(lastWord) && lastWord.toLowerCase() !== 'news');
  return `${inSentence(name)} ${plural ? 'are' : 'is'}`;
}

function compileCategory(c: CategoryInput): CompiledCategory {
  const severityRank = SEVERITY_RANK[c.severity];
  if (severityRank === undefined) throw new PolicyError(`category "${c.key}" (#${c.id}): unknown severity "${c.severity}"`);
  if (!Number.isInteger(c.id) || c.id < 0) throw new PolicyError(`category "${c.key}": id ${c.id} is not a whole number`);
  return Object.freeze({
    id: c.id,
    key: c.key,
    name: c.name,
    severity: c.severity,
    severityRank,
    illegal: c.illegal,
    illegalRule: `${c.name}: illegal content, always blocked`,
  });
}

function ruleTexts(
  group: GroupInput,
  category: CompiledCategory,
  action: RuleAction,
  schedule: CompiledSchedule | null,
): { text: string; inactiveText: string } {
  const who = `${group.key}: ${subject(category.name)}`;
  switch (action) {
    case 'block':
      return { text: `${who} blocked`, inactiveText: '' };
    case 'allow':
      return { text: `${who} allowed`, inactiveText: '' };
    case 'monitor':
      return { text: `${who} allowed and monitored`, inactiveText: '' };
    case 'block_during':
      return {
        text: `${who} blocked during ${schedule?.description}`,
        inactiveText: `${who} allowed outside ${schedule?.description}`,
      };
  }
}

export function compilePolicy(input: PolicyInput, lists: CategoryLookup): PolicySnapshot {
  try {
    return build(input, lists);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new PolicyError(`policy for school #${input.schoolId}: ${message}`, { cause: err });
  }
}

function build(input: PolicyInput, lists: CategoryLookup): PolicySnapshot {
  const categoryById = new Map<number, CompiledCategory>();
  const categoryByKey = new Map<string, CompiledCategory>();
  let maxCategoryId = -1;
  for (const c of input.categories) {
    const compiled = compileCategory(c);
    if (categoryById.has(c.id) || categoryByKey.has(c.key)) throw new PolicyError(`category "${c.key}" (#${c.id}) appears twice`);
    categoryById.set(c.id, compiled);
    categoryByKey.set(c.key, compiled);
    maxCategoryId = Math.max(maxCategoryId, c.id);
  }
  const categories = Array.from({ length: maxCategoryId + 1 }, (_, id) => categoryById.get(id));

  const clock = new SchoolClock(input.timeZone, input.calendar);
  const schedules = new Map<number, CompiledSchedule>();
  for (const s of input.schedules) schedules.set(s.id, compileSchedule(s, clock));

  const groupInputs = new Map<number, GroupInput>();
  for (const g of input.groups) {
    if (g.defaultAction !== 'allow' && g.defaultAction !== 'block') {
      throw new PolicyError(`group "${g.key}": default action must be allow or block, not "${String(g.defaultAction)}"`);
    }
    groupInputs.set(g.id, g);
  }
  const defaults = input.groups.filter((g) => g.isDefault);
  if (defaults.length !== 1) {
    throw new PolicyError(
      defaults.length === 0
        ? `school #${input.schoolId} has no default group (the group of the unidentified; mark one is_default)`
        : `school #${input.schoolId} has ${defaults.length} default groups; exactly one may be is_default`,
    );
  }
  const groupKeyOf = (groupId: number): string => {
    const g = groupInputs.get(groupId);
    if (!g) throw new PolicyError(`group #${groupId} does not exist`);
    return g.key;
  };

  const rulesByGroup = new Map<number, (CompiledRule | undefined)[]>();
  for (const g of input.groups) rulesByGroup.set(g.id, new Array<CompiledRule | undefined>(maxCategoryId + 1));
  for (const r of input.rules) {
    const where = `group rule #${r.id}`;
    const group = groupInputs.get(r.groupId);
    if (!group) throw new PolicyError(`${where}: group #${r.groupId} does not exist`);
    const category = categoryById.get(r.categoryId);
    if (!category) throw new PolicyError(`${where} (group "${group.key}"): category #${r.categoryId} does not exist`);
    if (!RULE_ACTIONS.includes(r.action)) {
      throw new PolicyError(`${where} (${group.key}/${category.key}): unknown action "${String(r.action)}"`);
    }
    let schedule: CompiledSchedule | null = null;
    if (r.action === 'block_during') {
      if (r.scheduleId === null) throw new PolicyError(`${where} (${group.key}/${category.key}): block_during needs a schedule`);
      schedule = schedules.get(r.scheduleId) ?? null;
      if (!schedule) throw new PolicyError(`${where} (${group.key}/${category.key}): schedule #${r.scheduleId} does not exist`);
    } else if (r.scheduleId !== null) {
      throw new PolicyError(`${where} (${group.key}/${category.key}): only a block_during rule takes a schedule`);
    }
    const rules = rulesByGroup.get(group.id) as (CompiledRule | undefined)[];
    if (rules[category.id]) throw new PolicyError(`${where}: group "${group.key}" already has a rule for "${category.key}"`);
    rules[category.id] = Object.freeze({ id: r.id, category, action: r.action, schedule, ...ruleTexts(group, category, r.action, schedule) });
  }

  const groups = new Map<number, CompiledGroup>();
  const groupByKey = new Map<string, CompiledGroup>();
  for (const g of input.groups) {
    const compiled: CompiledGroup = Object.freeze({
      id: g.id,
      key: g.key,
      name: g.name,
      defaultAction: g.defaultAction,
      isDefault: g.isDefault,
      rules: Object.freeze(rulesByGroup.get(g.id) as (CompiledRule | undefined)[]),
      defaultRule: `default for ${g.key}: ${g.defaultAction}`,
    });
    groups.set(g.id, compiled);
    groupByKey.set(g.key, compiled);
  }

  const overrides = new OverrideIndex(input.overrides, groupKeyOf);

  const ipAssignments = new IpAssignmentMap<IpIdentity>(
    input.ipAssignments.map((a) => {
      const where = `ip assignment #${a.id} (${a.cidr})`;
      if ((a.user === null) === (a.groupId === null)) throw new PolicyError(`${where}: names neither or both a user and a group`);
      const groupId = a.user ? a.user.groupId : (a.groupId as number);
      if (!groups.has(groupId)) throw new PolicyError(`${where}: group #${groupId} does not exist`);
      const user = a.user ? Object.freeze({ id: a.user.id, username: a.user.username }) : null;
      return { cidr: a.cidr, value: Object.freeze({ assignmentId: a.id, user, groupId }) };
    }),
  );

  return Object.freeze({
    schoolId: input.schoolId,
    timeZone: input.timeZone,
    lists,
    categories: Object.freeze(categories),
    categoryByKey,
    groups,
    groupByKey,
    defaultGroup: groups.get(defaults[0].id) as CompiledGroup,
    schedules,
    overrides,
    ipAssignments,
    usersDigest: input.usersDigest,
    categoryKeysMemo: new WeakMap(),
  });
}
