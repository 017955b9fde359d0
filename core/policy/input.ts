// Everything a school's policy is compiled from, as plain data: what
// load.ts reads from Postgres and what tests build in memory.
import type { Severity } from '../../blocklists/categories.js';
import type { CalendarPeriod, ScheduleDefinition } from '../schedule.js';
import type { RuleAction } from './types.js';

export type { Severity };

export interface GroupInput {
  id: number;
  key: string;
  name: string;
  defaultAction: 'allow' | 'block';
  isDefault: boolean;
}

export interface CategoryInput {
  id: number;
  key: string;
  name: string;
  severity: Severity;
  illegal: boolean;
}

export interface GroupRuleInput {
  id: number;
  groupId: number;
  categoryId: number;
  action: RuleAction;
  scheduleId: number | null;
}

export interface OverrideInput {
  id: number;
  action: 'allow' | 'block';
  kind: 'domain' | 'url';
  value: string;
  /** null: every group. */
  groupId: number | null;
  reason: string;
  decidedBy: string;
  expiresAt: Date | null;
}

/** A client address range that identifies a person or a group. */
export interface IpAssignmentInput {
  id: number;
  cidr: string;
  /** Set for a person's address; the person's own group then applies. */
  user: { id: number; username: string; groupId: number } | null;
  /** Set for a group's range. */
  groupId: number | null;
}

export interface PolicyInput {
  schoolId: number;
  timeZone: string;
  groups: GroupInput[];
  schedules: ScheduleDefinition[];
  calendar: CalendarPeriod[];
  categories: CategoryInput[];
  rules: GroupRuleInput[];
  overrides: OverrideInput[];
  ipAssignments: IpAssignmentInput[];
  /** Changes whenever any of the school's user accounts changes; identification caches key on it. */
  usersDigest: string;
}
