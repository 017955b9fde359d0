// The pages the block page's links lead to: "I reached this by accident"
// (/report/accident?ref=…) and "I need this for teaching" (/report/unblock?ref=…).
// Plain server-rendered HTML. They read the session themselves, because the
// block page is on another site and SameSite=Strict keeps the cookie off that
// first navigation: someone not signed in (or arriving from the block page)
// gets a sign-in form first. The forms submit, with a few lines of script,
// to the JSON API (POST /api/login, /api/reports/accidental-access,
// /api/unblock-requests) with the session's X-CSRF-Token, so they go
// through exactly the checks, CSRF protection and audit an API client does.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Pool } from '../../core/db.js';
import { escapeHtml, htmlPage } from '../../core/html.js';
import { findOwnBlock, type BlockedVisit } from '../../safeguarding/blocked-visit.js';
import { csrfTokenFor } from '../auth/csrf.js';
import { findSession, SESSION_COOKIE } from '../auth/sessions.js';
import { Problem } from '../problem.js';
import { BlockRef } from './incident-reports.js';

type Purpose = 'accident' | 'unblock';

const TITLES: Record<Purpose, string> = { accident: 'I reached this by accident', unblock: 'I need this for teaching' };

/** Report pages carry their title as a heading too. */
function layout(title: string, body: string): string {
  return htmlPage(title, `<h1>${escapeHtml(title)}</h1>\n${body}`);
}

// Sends the form's fields as JSON with the CSRF header; shows the answer's detail or a confirmation.
const SUBMIT_SCRIPT = `<script>
document.querySelectorAll('form[data-api]').forEach(function (form) {
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var body = {};
    new FormData(form).forEach(function (value, key) { if (value !== '') body[key] = value; });
    var headers = { 'content-type': 'application/json' };
    if (form.dataset.csrf) headers['x-csrf-token'] = form.dataset.csrf;
    fetch(form.dataset.api, { method: 'POST', headers: headers, body: JSON.stringify(body), credentials: 'same-origin' })
      .then(function (res) { return res.json().then(function (json) { return { ok: res.ok, json: json }; }); })
      .then(function (r) {
        if (r.ok && form.dataset.then === 'reload') { location.reload(); return; }
        document.getElementById('result').textContent = r.ok ? form.dataset.done : (r.json.detail || 'That did not work.');
      });
  });
});
</script>`;

function signInPage(purpose: Purpose): string {
  return layout(
    TITLES[purpose],
    `<p>Sign in with your school account to continue. Only the person who was blocked can report it.</p>
<form data-api="/api/login" data-then="reload">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
<p id="result" role="status"></p>
${SUBMIT_SCRIPT}`,
  );
}

function reportPage(purpose: Purpose, ref: string, visit: BlockedVisit, csrfToken: string): string {
  const details = `<dl>
<dt>Address</dt><dd>${escapeHtml(visit.url)}</dd>
<dt>Category</dt><dd>${escapeHtml(visit.category ?? 'none')}</dd>
<dt>Time</dt><dd>${escapeHtml(visit.time.toISOString())}</dd>
<dt>Reference</dt><dd><code>${escapeHtml(ref)}</code></dd>
</dl>`;
  const form =
    purpose === 'accident'
      ? `<form data-api="/api/reports/accidental-access" data-csrf="${escapeHtml(csrfToken)}" data-done="Thank you. Your report has gone to the safeguarding lead.">
<input type="hidden" name="ref" value="${escapeHtml(ref)}">
<label>Anything you want to add (optional) <textarea name="note" maxlength="2000"></textarea></label>
<button type="submit">Report it</button>
</form>`
      : `<form data-api="/api/unblock-requests" data-csrf="${escapeHtml(csrfToken)}" data-done="Your request has gone to the IT team. You will see their decision under your requests.">
<input type="hidden" name="ref" value="${escapeHtml(ref)}">
<label>Why you need it for teaching <textarea name="reason" maxlength="1000" required></textarea></label>
<button type="submit">Ask for it to be unblocked</button>
</form>`;
  return layout(TITLES[purpose], `${details}\n${form}\n<p id="result" role="status"></p>\n${SUBMIT_SCRIPT}`);
}

const PageQuery = Type.Object({ ref: BlockRef });
const Html = { 'text/html': { schema: Type.String() } };

export const reportPageRoutes: FastifyPluginAsyncTypebox<{ pool: Pool }> = async (app, { pool }) => {
  for (const purpose of ['accident', 'unblock'] as const) {
    app.get(
      `/report/${purpose}`,
      {
        // Public so that someone not signed in gets the sign-in form, not a 401.
        config: { access: 'public' },
        schema: {
          tags: ['safeguarding'],
          summary: `The block page's "${TITLES[purpose]}" page: a sign-in form, then the pre-filled report`,
          querystring: PageQuery,
          response: { 200: { description: 'the page', content: Html }, 401: { description: 'the sign-in form', content: Html },
            404: { description: 'no such block of yours', content: Html },
            409: { description: 'a block not tied to a person', content: Html },
          },
        },
      },
      async (request, reply) => {
        reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('x-frame-options', 'DENY');
        const token = request.cookies[SESSION_COOKIE];
        const principal = token !== undefined && token.length <= 200 ? await findSession(pool, token) : null;
        if (!principal || token === undefined) return reply.code(401).send(signInPage(purpose));
        const { ref } = request.query;
        try {
          const visit = await findOwnBlock(pool, principal.schoolId, principal.userId, ref);
          return reply.send(reportPage(purpose, ref, visit, csrfTokenFor(token)));
        } catch (err) {
          if (!(err instanceof Problem) || (err.status !== 404 && err.status !== 409)) throw err;
          return reply.code(err.status).send(layout(TITLES[purpose], `<p>${escapeHtml(err.detail)}</p>`));
        }
      },
    );
  }
};
