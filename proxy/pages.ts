// The HTML pages the proxy answers with itself: the block page and the error
// pages. Every value that reaches the markup goes through escapeHtml.
import type { ClientExchange } from './client-connection.js';
import { escapeHtml, htmlPage } from '../core/html.js';

export interface BlockPageDetails {
  /** What was asked for: the URL for plain HTTP, the host for HTTPS. */
  blocked: string;
  /** Readable category name, when a category decided. */
  categoryName: string | null;
  /** The deciding rule as a sentence. */
  rule: string;
  /** The username, or "not signed in (group)". */
  who: string;
  time: Date;
  timeZone: string;
  ref: string;
  schoolName: string;
  /** The admin API's address (http://host:port), where the page's report links lead. */
  adminBaseUrl: string;
}

// Building an Intl.DateTimeFormat costs far more than the rest of a block
// page, and even formatting with one costs more than the page's markup: keep
// one format per zone, and the text of the last second it formatted (the
// text shows whole seconds, and under load most block pages share one).
interface ZoneClock {
  format: Intl.DateTimeFormat;
  second: number;
  text: string;
}
const zoneClocks = new Map<string, ZoneClock>();

function formatTime(time: Date, timeZone: string): string {
  let clock = zoneClocks.get(timeZone);
  if (clock === undefined) {
    clock = { format: new Intl.DateTimeFormat('en-GB', { dateStyle: 'full', timeStyle: 'long', timeZone }), second: Number.NaN, text: '' };
    zoneClocks.set(timeZone, clock);
  }
  const second = Math.floor(time.getTime() / 1000);
  if (second !== clock.second) {
    clock.text = clock.format.format(time);
    clock.second = second;
  }
  return clock.text;
}

export function blockPage(details: BlockPageDetails): string {
  const time = formatTime(details.time, details.timeZone);
  const category = details.categoryName === null ? '' : `<dt>Category</dt><dd>${escapeHtml(details.categoryName)}</dd>\n`;
  return htmlPage(
    'Page blocked',
    `<h1>This page is blocked</h1>
<p>${escapeHtml(details.schoolName)} does not allow this page on its network.</p>
<dl>
<dt>Blocked</dt><dd>${escapeHtml(details.blocked)}</dd>
${category}<dt>Rule</dt><dd>${escapeHtml(details.rule)}</dd>
<dt>User</dt><dd>${escapeHtml(details.who)}</dd>
<dt>Time</dt><dd>${escapeHtml(time)}</dd>
<dt>Reference</dt><dd><code>${escapeHtml(details.ref)}</code></dd>
</dl>
<p>If you think this page should not be blocked, tell a member of staff and give them the reference above.</p>
<p>Staff, after signing in:</p>
<ul>
<li><a href="${escapeHtml(`${details.adminBaseUrl}/report/accident?ref=${encodeURIComponent(details.ref)}`)}">I reached this by accident</a></li>
<li><a href="${escapeHtml(`${details.adminBaseUrl}/report/unblock?ref=${encodeURIComponent(details.ref)}`)}">I need this for teaching</a></li>
</ul>`,
  );
}

export function errorPage(title: string, explanation: string): string {
  return htmlPage(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(explanation)}</p>`);
}

export function notAProxyRequestPage(proxyAddress: string, pacUrl: string): string {
  return htmlPage(
    'This is a web proxy',
    `<h1>This is a web proxy, not a web site</h1>
<p>Your browser sent a request straight to the school's filtering proxy. The proxy only forwards
requests for other sites.</p>
<p>To use it, set your browser or device to use the proxy <code>${escapeHtml(proxyAddress)}</code>
for HTTP and HTTPS, or set automatic proxy configuration to <code>${escapeHtml(pacUrl)}</code>.</p>`,
  );
}

export function proxyAuthRequiredPage(reason: 'required' | 'invalid'): string {
  return reason === 'required'
    ? errorPage('Please sign in', 'You need to sign in with your school username and password to use the web.')
    : errorPage('Sign-in failed', 'The username or password was not accepted. Please try again.');
}

/** The header lines every page of the proxy's own goes out with: not cached, not sniffed as anything but HTML. */
export const PAGE_HEADERS = 'Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n';

/** Sends a complete HTML page; `headerLines` (each ending in CRLF) go with it. Returns the body's length in bytes. */
export function sendHtml(exchange: ClientExchange, status: number, html: string, headerLines = ''): number {
  return exchange.respond(status, headerLines + PAGE_HEADERS, html);
}
