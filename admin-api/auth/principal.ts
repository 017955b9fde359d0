// Who is making a request, as established by a session cookie or a bearer
// token. Roles come from the users row on every request, so a role change or
// a disabled account takes effect at once.
import type { FastifyRequest } from 'fastify';
import type { Role } from '../../core/users.js';
import type { AuditActor } from '../audit.js';
import { Problem } from '../problem.js';

export interface Principal {
  userId: number;
  schoolId: number;
  username: string;
  displayName: string;
  groupKey: string;
  roles: Role[];
  via: 'session' | 'token';
  /** The session cookie's token (to derive the CSRF token); only when via === 'session'. */
  sessionToken?: string;
}

/** The user columns both sign-in lookups (session, token) select, as they come from Postgres. */
export interface PrincipalRow {
  school_id: number;
  user_id: number;
  username: string;
  display_name: string;
  group_key: string;
  roles: Role[];
}

export function principalFromRow(row: PrincipalRow, via: Principal['via'], sessionToken?: string): Principal {
  return {
    userId: row.user_id,
    schoolId: row.school_id,
    username: row.username,
    displayName: row.display_name,
    groupKey: row.group_key,
    roles: row.roles,
    via,
    ...(sessionToken === undefined ? {} : { sessionToken }),
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The signed-in principal; routes that declare any access other than 'public' always have one. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new Problem(401, 'not-signed-in', 'sign in first');
  return request.principal;
}

export function actorOf(principal: Principal): AuditActor {
  return { userId: principal.userId, username: principal.username };
}
