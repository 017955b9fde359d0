// CSRF protection for cookie-authenticated changes. The session cookie is
// already SameSite=Strict; as a second line, every unsafe request made with
// the cookie must carry X-CSRF-Token, which is a digest of the cookie's own
// token. A page on another site can neither read the cookie nor the token
// (handed out only in JSON responses to this origin), and nothing extra is
// stored. Bearer requests are exempt: a browser never adds that header itself.
import type { FastifyInstance } from 'fastify';
import { Problem } from '../problem.js';
import { sameText, sha256 } from './secrets.js';

export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function csrfTokenFor(sessionToken: string): string {
  return sha256(`portcullis-csrf:${sessionToken}`).toString('base64url');
}

export function installCsrfProtection(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    const principal = request.principal;
    if (!principal || principal.via !== 'session' || SAFE_METHODS.has(request.method)) return;
    const sent = request.headers[CSRF_HEADER];
    const expected = csrfTokenFor(principal.sessionToken ?? '');
    if (typeof sent !== 'string' || !sameText(sent, expected)) {
      throw new Problem(403, 'csrf-token-missing', `this request needs the ${CSRF_HEADER} header (from sign-in or GET /api/csrf)`);
    }
  });
}
