// The plain HTML pages Portcullis shows people (block page, error pages,
// report forms): one escaping function and one layout, so every page looks
// alike and no value reaches markup unescaped.

const NEEDS_ESCAPING = /[&<>"']/;

export function escapeHtml(text: string): string {
  // Most values (names, hosts, references) have nothing to escape: one scan instead of five.
  if (!NEEDS_ESCAPING.test(text)) return text;
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const BASE_STYLE = `body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #1b1b1b; line-height: 1.5; }
h1 { font-size: 1.5rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; overflow-wrap: anywhere; }
code { background: #f2f2f2; padding: 0 .25rem; }
label, input, textarea, button { display: block; margin: .25rem 0; }
textarea { width: 100%; }`;

/** A whole page; `title` is escaped here, `body` must already be safe markup. */
export function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>
${BASE_STYLE}
</style>
</head>
<body>
${body}
</body>
</html>
`;
}
