// Deny by default. Every route says who may call it in its config:
//
//   config: { access: 'public' }              anyone, signed in or not
//   config: { access: 'signed-in' }           any signed-in user
//   config: { access: ['it_admin', 'dsl'] }   a signed-in user with one of these roles
//
// A route that says nothing is refused to everyone (403), and is reported
// at start-up so the omission is found before it ships.
import type { FastifyInstance } from 'fastify';
import type { Role } from '../../core/users.js';
import { Problem } from '../problem.js';

export type Access = 'public' | 'signed-in' | readonly Role[];

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
}

export function isPublic(access: Access | undefined): boolean {
  return access === 'public';
}

/** Human-readable statement of who may call a route, for the OpenAPI document. */
export function describeAccess(access: Access | undefined): string {
  if (access === undefined) return 'Nobody (the route declares no access).';
  if (access === 'public') return 'Public.';
  if (access === 'signed-in') return 'Any signed-in user.';
  return `Roles: ${access.join(', ')}.`;
}

export function installAccessControl(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (route.config?.access === undefined) {
      app.log.error({ method: route.method, url: route.url }, 'route declares no access; every request to it will be refused');
    }
  });

  // Runs after authentication: request.principal is set for every route that is not public.
  app.addHook('onRequest', async (request) => {
    if (request.is404) return;
    const access = request.routeOptions.config.access;
    if (access === 'public') return;
    if (access === undefined) throw new Problem(403, 'forbidden', 'this route declares no access rule, so it is refused');
    const principal = request.principal;
    if (!principal) throw new Problem(401, 'not-signed-in', 'sign in first');
    if (access === 'signed-in') return;
    if (!principal.roles.some((role) => access.includes(role))) {
      throw new Problem(403, 'forbidden', `this needs one of the roles ${access.join(', ')}`);
    }
  });
}
