// Who may read whose browsing history, as UK schools' monitoring policies set
// it. One place decides, for the history routes and the investigation routes:
//
//   - anyone: their own history;
//   - the DSL (role dsl): the history of a pupil, i.e. a member of the group
//     keyed 'pupils' (the group a user is in now decides);
//   - under an investigation a governor approved, until it expires or is
//     closed, and only for rows inside its time window: the headteacher who
//     requested it, for a member of staff; governors, when the subject is a
//     headteacher (who can neither see nor read an investigation into
//     themselves);
//   - nobody else: it_admin sees aggregates only.
import type { PoolClient } from '../core/db.js';
import type { Role } from '../core/users.js';
import type { Principal } from './auth/principal.js';

export const PUPILS_GROUP_KEY = 'pupils';

export interface HistorySubject {
  id: number;
  username: string;
  groupKey: string;
  roles: Role[];
}

export interface InvestigationParties {
  subjectUserId: number;
  requestedBy: number;
}

export type HistoryGrant =
  | { basis: 'self' }
  | { basis: 'pupil' }
  | { basis: 'investigation'; investigationId: number; windowStart: Date; windowEnd: Date; expiresAt: Date };

export type HistoryDecision =
  | { granted: true; grant: HistoryGrant }
  /** `reason` is for the reader; `auditReason` may say more than the reader may know. */
  | { granted: false; reason: string; auditReason: string };

/** The role that requests, and reads under, an investigation into `subject`; governors approve either way. */
export function overseerRoleOf(subject: { roles: readonly Role[] }): 'headteacher' | 'governor' {
  return subject.roles.includes('headteacher') ? 'governor' : 'headteacher';
}

/**
 * Whether `principal` may know an investigation exists: governors see every
 * one, a headteacher those they requested, and nobody one into themselves.
 */
export function canSeeInvestigation(principal: Principal, investigation: InvestigationParties): boolean {
  if (investigation.subjectUserId === principal.userId) return false;
  if (principal.roles.includes('governor')) return true;
  return principal.roles.includes('headteacher') && investigation.requestedBy === principal.userId;
}

interface InvestigationRow {
  subject_user_id: number;
  requested_by: number;
  status: string;
  window_start: Date;
  window_end: Date;
  expires_at: Date;
  expired: boolean;
}

const refuse = (reason: string, auditReason = reason): HistoryDecision => ({ granted: false, reason, auditReason });

export async function decideHistoryAccess(
  client: PoolClient,
  principal: Principal,
  subject: HistorySubject,
  investigationId: number | undefined,
): Promise<HistoryDecision> {
  if (subject.id === principal.userId) return { granted: true, grant: { basis: 'self' } };
  if (principal.roles.includes('dsl') && subject.groupKey === PUPILS_GROUP_KEY) return { granted: true, grant: { basis: 'pupil' } };
  if (investigationId === undefined) {
    return refuse(
      "you may read your own history; a DSL may read pupils' histories; anyone else's needs an approved investigation (investigationId)",
      'no basis: not their own, not a pupil read by a DSL, and no investigation named',
    );
  }

  // Expiry is judged by the database clock, the same clock the read runs on.
  const { rows } = await client.query<InvestigationRow>(
    `SELECT subject_user_id, requested_by, status, window_start, window_end, expires_at, expires_at <= now() AS expired
       FROM investigations WHERE school_id = $1 AND id = $2`,
    [principal.schoolId, investigationId],
  );
  const row = rows[0];
  const unknown = `there is no investigation ${investigationId} you may read under`;
  if (!row) return refuse(unknown, `investigation ${investigationId} does not exist`);
  const parties = { subjectUserId: row.subject_user_id, requestedBy: row.requested_by };
  if (!canSeeInvestigation(principal, parties)) return refuse(unknown, `investigation ${investigationId} is not visible to the reader`);
  if (row.subject_user_id !== subject.id) {
    return refuse(`investigation ${investigationId} does not concern this person`);
  }
  const overseer = overseerRoleOf(subject);
  if (!principal.roles.includes(overseer)) {
    return refuse(`an investigation into ${subject.username} is read by the ${overseer === 'governor' ? 'governors' : 'headteacher'} only`);
  }
  if (row.status !== 'approved') {
    const why = row.status === 'requested' ? 'has not been approved by a governor' : `is ${row.status}`;
    return refuse(`investigation ${investigationId} ${why}`);
  }
  if (row.expired) return refuse(`investigation ${investigationId} expired at ${row.expires_at.toISOString()}`);
  return {
    granted: true,
    grant: {
      basis: 'investigation',
      investigationId,
      windowStart: row.window_start,
      windowEnd: row.window_end,
      expiresAt: row.expires_at,
    },
  };
}
