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
