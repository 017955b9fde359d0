// AlertDetector's search-term alerts, from access events in memory: one
// alert per search naming every new term, once per person and term within
// the suppression window, and nothing for events without a search.
import { describe, expect, it } from 'vitest';
import { AlertDetector, SUPPRESS_MS } from '../../safeguarding/alert-detector.js';
import { SearchTermList } from '../../safeguarding/search-terms.js';
import { accessEvent } from '../support/access-events.js';

const terms = new SearchTermList([
  { id: 1, term: 'buy weed', theme: 'drugs' },
  { id: 2, term: 'how to make a bomb', theme: 'weapons_violence' },
  { id: 3, term: 'kys', theme: 'bullying_harassment' },
]);
const start = new Date('2026-11-23T10:00:00Z');

function searchEvent(path: string, userId: number | null, minutesLater = 0) {
  return accessEvent({ userId, groupId: 1, scheme: 'http', port: 80, host: 'search.test', path, time: new Date(start.getTime() + minutesLater * 60_000) });
}

const newDetector = () => new AlertDetector({ repeatedBlocks: 10, repeatedBlocksWindowMs: 60_000 }, { current: terms });

describe('search-term alerts', () => {
  it('names the person, each new term with its theme, and the host, in one alert linked to the event', () => {
    const detector = newDetector();
    const event = searchEvent('/search?q=Buy+weed+then+how+to+make+a+bomb+tonight', 7);
    const [alert, ...rest] = detector.inspect(event);
    expect(rest).toEqual([]);
    expect(alert).toMatchObject({
      kind: 'search_term',
      userId: 7,
      host: 'search.test',
      accessLogIds: [event.id],
      summary: 'user7 searched search.test for safeguarding terms: drugs ("buy weed"), weapons or violence ("how to make a bomb")',
    });
    expect(alert.summary).not.toContain('tonight');
    expect(alert.dedupeKey).toBe(`search:user:7:1,2@${Math.floor(start.getTime() / SUPPRESS_MS)}`);
  });

  it('raises a person and term once within the window, a new term or another person at once, and the term again after it', () => {
    const detector = newDetector();
    expect(detector.inspect(searchEvent('/?q=buy+weed', 7))).toHaveLength(1);
    expect(detector.inspect(searchEvent('/?q=where+to+buy+weed', 7, 5))).toEqual([]);
    const [both] = detector.inspect(searchEvent('/?q=buy+weed+kys', 7, 6));
    expect(both.summary).toBe('user7 searched search.test for a safeguarding term: bullying or harassment ("kys")');
    expect(detector.inspect(searchEvent('/?q=buy+weed', 8, 6))).toHaveLength(1);
    expect(detector.inspect(searchEvent('/?q=buy+weed', null, 6))[0].summary).toMatch(/^an unidentified person at 10\.1\.2\.3 \(pupils\) searched/);
    expect(detector.inspect(searchEvent('/?q=buy+weed', 7, 61))).toHaveLength(1);
  });

  it('ignores events without a search: tunnels, other parameters, words inside words', () => {
    const detector = newDetector();
    const tunnel = accessEvent({ userId: 7, groupId: 1, scheme: 'https', host: 'search.test', path: null });
    expect(detector.inspect(tunnel)).toEqual([]);
    for (const path of ['/buy+weed', '/?id=buy+weed', '/?q=buy+weedkiller', '/?q=skys+the+limit']) {
      expect(detector.inspect(searchEvent(path, 7)), path).toEqual([]);
    }
  });

  it('follows the list in service when it is replaced', () => {
    const source = { current: SearchTermList.EMPTY };
    const detector = new AlertDetector({ repeatedBlocks: 10, repeatedBlocksWindowMs: 60_000 }, source);
    expect(detector.inspect(searchEvent('/?q=kys', 7))).toEqual([]);
    source.current = terms;
    expect(detector.inspect(searchEvent('/?q=kys', 7))).toHaveLength(1);
  });
});
