import { describe, expect, it } from 'vitest';
import { escapeHtml } from '../../core/html.js';
import { blockPage, type BlockPageDetails } from '../../proxy/pages.js';

function details(overrides: Partial<BlockPageDetails> = {}): BlockPageDetails {
  return {
    blocked: 'http://casino.example/',
    categoryName: 'Gambling',
    rule: 'Gambling is blocked for everyone',
    who: 'pupil1',
    time: new Date('2026-03-02T09:15:30.250Z'),
    timeZone: 'Europe/London',
    ref: 'B-7K2Q9',
    schoolName: 'Hill Primary',
    adminBaseUrl: 'http://127.0.0.1:8080',
    ...overrides,
  };
}

/** The time as the page must show it: formatted afresh, in the school's zone. */
function expectedTime(time: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { dateStyle: 'full', timeStyle: 'long', timeZone }).format(time);
}

function shownTime(page: string): string {
  return /<dt>Time<\/dt><dd>([^<]*)<\/dd>/.exec(page)![1];
}

describe('escapeHtml', () => {
  it('escapes each of the five characters markup gives meaning to', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });

  it('returns text with nothing to escape unchanged', () => {
    expect(escapeHtml('pupil1 at Hill Primary, B-7K2Q9')).toBe('pupil1 at Hill Primary, B-7K2Q9');
    expect(escapeHtml('')).toBe('');
  });
});

describe('blockPage', () => {
  it("shows each request's own time in the school's zone, second by second and zone by zone", () => {
    const base = Date.parse('2026-06-30T23:59:58.900Z');
    const seen: Array<{ time: Date; timeZone: string }> = [];
    // Within a second, across seconds, across a day (and, in London, a date) boundary, and back to an earlier second.
    for (const offsetMs of [0, 50, 99, 100, 1_099, 1_100, 2_500, -5_000]) {
      for (const timeZone of ['Europe/London', 'UTC', 'Asia/Kolkata']) seen.push({ time: new Date(base + offsetMs), timeZone });
    }
    for (const { time, timeZone } of seen) {
      expect(shownTime(blockPage(details({ time, timeZone })))).toBe(escapeHtml(expectedTime(time, timeZone)));
    }
  });

  it('escapes every value it shows', () => {
    const page = blockPage(
      details({ blocked: 'http://x.example/?q=<script>', rule: 'rule "A" & <b>', who: "o'brien", categoryName: '<i>Games</i>', schoolName: 'A&B School' }),
    );
    expect(page).not.toContain('<script>');
    expect(page).toContain('http://x.example/?q=&lt;script&gt;');
    expect(page).toContain('rule &quot;A&quot; &amp; &lt;b&gt;');
    expect(page).toContain('o&#39;brien');
    expect(page).toContain('&lt;i&gt;Games&lt;/i&gt;');
    expect(page).toContain('A&amp;B School does not allow');
  });

  it('links the reports to the admin address with the reference', () => {
    const page = blockPage(details({ ref: 'B-7K2Q9' }));
    expect(page).toContain('href="http://127.0.0.1:8080/report/accident?ref=B-7K2Q9"');
    expect(page).toContain('href="http://127.0.0.1:8080/report/unblock?ref=B-7K2Q9"');
  });
});
