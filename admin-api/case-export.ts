// A harmful-content case as one self-contained document for an escalation
// (to Report Harmful Content, the police, IWF or CEOP): JSON with everything,
// or printable HTML. In the HTML every value goes through escapeHtml and the
// screenshots are inline data: URIs, so the file needs nothing else to open.
import { escapeHtml } from '../core/html.js';

export interface ExportEvent {
  id: number;
  at: string;
  actor: string;
  kind: string;
  state: string;
  note: string | null;
  data: Record<string, unknown>;
}

export interface ExportEvidence {
  id: number;
  kind: 'url' | 'description' | 'screenshot';
  addedBy: string;
  addedAt: string;
  text: string | null;
  mediaType: 'image/png' | 'image/jpeg' | null;
  size: number | null;
  sha256: string | null;
  /** Screenshots only: the image, base64. */
  contentBase64?: string | null;
}

export interface ExportCase {
  id: number;
  state: string;
  harmType: string;
  platform: string;
  urls: string[];
  affected: { role: string; ageBand: string };
  description: string;
  openedBy: string;
  openedAt: string;
  illegal: boolean | null;
  referral: { agency: string; reference: string; at: string } | null;
  platformReport: { reference: string | null; reportedAt: string } | null;
  rhcEscalation: { reference: string; escalatedAt: string } | null;
  outcome: string | null;
  endedAt: string | null;
  deadline: { kind: string; at: string; overdue: boolean } | null;
  escalationPossibleAt: string | null;
}

export interface CaseDocument {
  generatedAt: string;
  generatedBy: string;
  case: ExportCase;
  events: ExportEvent[];
  evidence: ExportEvidence[];
}

const HARM_TYPES: Record<string, string> = {
  threats: 'Threats',
  impersonation: 'Impersonation',
  bullying_harassment: 'Bullying or harassment',
  self_harm_suicide: 'Self-harm or suicide',
  online_abuse: 'Online abuse',
  violent_content: 'Violent content',
  unwanted_sexual_advances: 'Unwanted sexual advances',
  pornographic_content: 'Pornographic content',
};

const AGE_BANDS: Record<string, string> = { under_13: 'under 13', '13_to_17': '13 to 17', '18_or_over': '18 or over (adult)' };

const STYLE = `
body { font: 11pt/1.4 system-ui, sans-serif; margin: 2em; color: #000; }
h1 { font-size: 16pt; } h2 { font-size: 13pt; border-bottom: 1px solid #888; margin-top: 1.5em; }
dl { display: grid; grid-template-columns: 14em 1fr; gap: .2em 1em; } dt { font-weight: bold; } dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; } th, td { border: 1px solid #888; padding: .3em; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; font: inherit; }
img { max-width: 100%; border: 1px solid #888; }
.evidence { page-break-inside: avoid; margin-bottom: 1em; }
@media print {
  body { margin: 0; font-size: 10pt; }
  h2 { page-break-after: avoid; }
  tr, img, .evidence { page-break-inside: avoid; }
  a { color: #000; text-decoration: none; }
  a[href]::after { content: " (" attr(href) ")"; }
}
@page { margin: 15mm; }
`;

const e = (value: unknown): string => escapeHtml(value === null || value === undefined ? '—' : String(value));

function row(label: string, value: unknown): string {
  return `<dt>${e(label)}</dt><dd>${e(value)}</dd>`;
}

function evidenceHtml(item: ExportEvidence): string {
  const head = `<p><strong>Evidence ${e(item.id)}</strong> (${e(item.kind)}), added by ${e(item.addedBy)} at ${e(item.addedAt)}</p>`;
  if (item.kind === 'screenshot') {
    // mediaType comes from the database's CHECK (image/png or image/jpeg) and base64 has no markup characters; escaped anyway.
    const img = item.contentBase64 ? `<img alt="screenshot ${e(item.id)}" src="data:${e(item.mediaType)};base64,${e(item.contentBase64)}">` : '';
    return `<div class="evidence">${head}<p>${e(item.mediaType)}, ${e(item.size)} bytes, SHA-256 <code>${e(item.sha256)}</code></p>${img}</div>`;
  }
  return `<div class="evidence">${head}<pre>${e(item.text)}</pre></div>`;
}

/** The printable HTML document; every value escaped. */
export function caseAsHtml(doc: CaseDocument): string {
  const c = doc.case;
  const title = `Harmful-content case ${c.id}`;
  const events = doc.events
    .map(
      (ev) =>
        `<tr><td>${e(ev.at)}</td><td>${e(ev.actor)}</td><td>${e(ev.kind)}</td><td>${e(ev.state)}</td><td><pre>${e(ev.note)}</pre></td>` +
        `<td><pre>${e(Object.keys(ev.data).length > 0 ? JSON.stringify(ev.data, null, 1) : null)}</pre></td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${e(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${e(title)}</h1>
<p>Exported ${e(doc.generatedAt)} by ${e(doc.generatedBy)}. Prepared for a Report Harmful Content escalation.</p>
<h2>Case</h2>
<dl>
${row('State', c.state)}
${row('Harm type', HARM_TYPES[c.harmType] ?? c.harmType)}
${row('Opened', `${c.openedAt} by ${c.openedBy}`)}
${row('Who is affected', `${c.affected.role}, ${AGE_BANDS[c.affected.ageBand] ?? c.affected.ageBand}`)}
${row('Illegal (triage)', c.illegal === null ? 'not yet decided' : c.illegal ? 'yes' : 'no')}
${row('Deadline', c.deadline ? `${c.deadline.kind} by ${c.deadline.at}${c.deadline.overdue ? ' (overdue)' : ''}` : null)}
</dl>
<h2>Where it is</h2>
<dl>
${row('Platform or service', c.platform)}
</dl>
<ul>
${c.urls.map((u) => `<li>${e(u)}</li>`).join('\n')}
</ul>
<h2>Description</h2>
<pre>${e(c.description)}</pre>
<h2>Reports and references</h2>
<dl>
${row('Referred to', c.referral ? `${c.referral.agency.toUpperCase()}, reference ${c.referral.reference}, on ${c.referral.at}` : null)}
${row('Reported to the platform', c.platformReport ? `${c.platformReport.reportedAt}, reference ${c.platformReport.reference ?? 'none given'}` : null)}
${row('Escalation possible from', c.escalationPossibleAt)}
${row('Escalated to Report Harmful Content', c.rhcEscalation ? `${c.rhcEscalation.escalatedAt}, reference ${c.rhcEscalation.reference}` : null)}
${row('Outcome', c.outcome)}
${row('Ended', c.endedAt)}
</dl>
<h2>Timeline</h2>
<table>
<thead><tr><th>Time</th><th>By</th><th>Event</th><th>State after</th><th>Note</th><th>Details</th></tr></thead>
<tbody>
${events}
</tbody>
</table>
<h2>Evidence</h2>
${doc.evidence.length > 0 ? doc.evidence.map(evidenceHtml).join('\n') : '<p>None recorded.</p>'}
</body>
</html>
`;
}
