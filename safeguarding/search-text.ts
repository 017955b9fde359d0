// What someone searched for, from a plain-HTTP request's path and query
// (HTTPS URLs are inside the tunnel and never reach here). Runs on the
// access-log path for every event, so a path without a query string costs
// one indexOf, and a query string without a search parameter costs a scan
// of its keys.
//
// Search parameters (case-insensitive names), chosen because search engines
// and common site searches put the typed text in them:
//   q            Google, Bing, DuckDuckGo, Ecosia, most site searches
//   query, search, searchquery, search_query (YouTube), searchterm,
//   search_term, term, keyword, keywords, k (Amazon), kw
//   p            Yahoo
//   s            WordPress site search
//   text         Yandex
//   wd, word     Baidu
// Other parameters (ids, pages, tracking) are never read: a term must not
// match a session id or a product code.
//
// Normalised form (also the form terms are stored in, see search-terms.ts):
// '+' as a space, %-decoded (malformed sequences tolerated), lowercase,
// diacritics stripped (NFKD without combining marks), and every run of
// characters that are not letters or digits made one space, so that words
// are separated by exactly one space and "self-harm" reads "self harm".

const SEARCH_PARAMETERS = new Set([
  'q', 'query', 'search', 'searchquery', 'search_query', 'searchterm', 'search_term', 'term',
  'keyword', 'keywords', 'k', 'kw', 'p', 's', 'text', 'wd', 'word',
]);
const LONGEST_PARAMETER = Math.max(...[...SEARCH_PARAMETERS].map((name) => name.length));
const EQUALS = 0x3d;
/** Character codes a search parameter's name starts with, either case: most other pairs are passed over without a slice. */
const FIRST_CHARS = new Uint8Array(128);
for (const name of SEARCH_PARAMETERS) {
  FIRST_CHARS[name.charCodeAt(0)] = 1;
  FIRST_CHARS[name.toUpperCase().charCodeAt(0)] = 1;
}

/**
 * Encoded characters of one parameter that are read. Search engines accept
 * about 2,000 characters; the proxy's header limit allows far more, and the
 * recording path must stay cheap whatever a client sends.
 */
export const MAX_ENCODED_VALUE_CHARS = 4096;

const PERCENT_RUN = /(?:%[0-9a-fA-F]{2})+/g;
const NON_ASCII = /[^\u0000-\u007f]/;
const COMBINING_MARKS = /\p{M}+/gu;
// The ASCII form is the common case and several times faster than the Unicode one.
const NOT_ASCII_WORD = /[^a-z0-9]+/g;
const NOT_WORD = /[^\p{L}\p{N}]+/gu;

/** %-decoding that never throws: a malformed UTF-8 sequence becomes U+FFFD (then a word break) instead of hiding the rest. */
function percentDecode(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value.replace(PERCENT_RUN, (run) => Buffer.from(run.replaceAll('%', ''), 'hex').toString('utf8'));
  }
}

/** Lowercase, no diacritics, words of letters and digits separated by single spaces, no space at either end. */
export function normaliseText(text: string): string {
  const lower = text.toLowerCase();
  if (!NON_ASCII.test(lower)) return lower.replace(NOT_ASCII_WORD, ' ').trim();
  return lower.normalize('NFKD').replace(COMBINING_MARKS, '').replace(NOT_WORD, ' ').trim();
}

/** One encoded query-string value as normalised text. */
export function normaliseQueryValue(encoded: string): string {
  const bounded = encoded.length > MAX_ENCODED_VALUE_CHARS ? encoded.slice(0, MAX_ENCODED_VALUE_CHARS) : encoded;
  return normaliseText(percentDecode(bounded.includes('+') ? bounded.replaceAll('+', ' ') : bounded));
}

/** Where the value of the pair at start..end begins, if the pair is a search parameter; -1 otherwise. */
function searchValueStart(path: string, start: number, end: number): number {
  if (FIRST_CHARS[path.charCodeAt(start)] !== 1) return -1;
  // Only as far as the longest name: a pair without '=' must not cost a scan of the rest.
  const nameLimit = Math.min(end, start + LONGEST_PARAMETER + 1);
  for (let i = start; i < nameLimit; i++) {
    if (path.charCodeAt(i) !== EQUALS) continue;
    return i > start && SEARCH_PARAMETERS.has(path.slice(start, i).toLowerCase()) ? i + 1 : -1;
  }
  return -1;
}

/**
 * The normalised search text of a request path ("/search?q=How+to..."), the
 * values of several search parameters joined by " | " so that a phrase never
 * runs across two of them; undefined when there is none or it is empty.
 */
export function searchTextOf(path: string): string | undefined {
  const queryStart = path.indexOf('?');
  if (queryStart === -1) return undefined;
  let found: string | undefined;
  let start = queryStart + 1;
  while (start < path.length) {
    let end = path.indexOf('&', start);
    if (end === -1) end = path.length;
    const valueStart = searchValueStart(path, start, end);
    if (valueStart !== -1) {
      const text = normaliseQueryValue(path.slice(valueStart, end));
      if (text !== '') found = found === undefined ? text : `${found} | ${text}`;
    }
    start = end + 1;
  }
  return found;
}
