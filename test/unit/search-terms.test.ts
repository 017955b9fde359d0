// Search extraction (search-text.ts) and term matching (search-terms.ts):
// which parameters are read, decoding and normalising, word boundaries and
// phrases, and bounded cost on hostile input.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalTerm, SearchTermList, termProblem, type SearchTerm } from '../../safeguarding/search-terms.js';
import { MAX_ENCODED_VALUE_CHARS, normaliseText, searchTextOf } from '../../safeguarding/search-text.js';

describe('searchTextOf', () => {
  it.each([
    ['/search?q=How+to+Kill+Myself', 'how to kill myself'],
    ['/search?q=how%20to%20kill%20myself', 'how to kill myself'],
    ['/search?q=how%2Bto', 'how to'],
    ['/s?hl=en&Q=Self-Harm&btnG=Search', 'self harm'],
    ['/results?search_query=buy%20WEED', 'buy weed'],
    ['/?s=zombie+knife', 'zombie knife'],
    ['/s?k=knife&ref=nb_sb_noss', 'knife'],
    ['/s?wd=%E4%B8%AD%E6%96%87', '中文'],
    ['/search/?text=caf%C3%A9+cr%C3%A8me', 'cafe creme'],
    ['/search?q=CAFE%CC%81', 'cafe'],
    ['/search?q=%EF%BC%AB%EF%BD%89%EF%BD%8C%EF%BD%8C', 'kill'],
    ['/search?q=%E9t%C3%A9', 'te'],
    ['/search?q=100%+sure', '100 sure'],
    ['/search?q=a=b', 'a b'],
    ['/search?q=%20%20spaced%09%0Aout%20%20', 'spaced out'],
    ['/search?flag&q=x&p=y', 'x | y'],
  ])('%s → %j', (path, expected) => {
    expect(searchTextOf(path)).toBe(expected);
  });

  it.each([
    ['/search'],
    ['/'],
    ['/?'],
    ['/?&&='],
    ['/search?q='],
    ['/search?q=+%20-'],
    ['/watch?v=kill+myself'],
    ['/page?id=42&session=how+to+kill+myself'],
    ['/page?qq=kill&queryx=kill&=kill'],
  ])('%s has no search text', (path) => {
    expect(searchTextOf(path)).toBeUndefined();
  });

  it('reads only the first MAX_ENCODED_VALUE_CHARS of a value', () => {
    const filler = 'a+'.repeat(MAX_ENCODED_VALUE_CHARS);
    expect(searchTextOf(`/?q=weed+${filler}`)?.startsWith('weed a a')).toBe(true);
    expect(searchTextOf(`/?q=${filler}weed`)).not.toContain('weed');
  });

  it('stays fast on huge and hostile query strings', () => {
    const hostile = [
      `/?${'x&'.repeat(200_000)}`,
      `/?${'q=%E9'.repeat(50_000)}`,
      `/?q=${'%'.repeat(400_000)}`,
      `/?${'q=kill+myself&'.repeat(30_000)}`,
      `/?${'longparametername'.repeat(30_000)}=q`,
    ];
    for (const path of hostile) {
      const started = performance.now();
      searchTextOf(path);
      expect(performance.now() - started, path.slice(0, 20)).toBeLessThan(1_000);
    }
  });
});

describe('normaliseText and canonicalTerm', () => {
  it('lowercases, strips diacritics and makes punctuation a single space', () => {
    expect(normaliseText('  Ünïcödé — “Quotes”, don’t! ')).toBe('unicode quotes don t');
    expect(canonicalTerm('Self-Harm')).toBe('self harm');
    expect(canonicalTerm('İstanbul')).toBe('istanbul');
  });

  it('refuses terms too short, too long or too many words', () => {
    expect(termProblem(canonicalTerm('kys'))).toBeUndefined();
    expect(termProblem(canonicalTerm('a!'))).toMatch(/at least 3/);
    expect(termProblem(canonicalTerm('--'))).toMatch(/at least 3/);
    expect(termProblem('x'.repeat(101))).toMatch(/at most 100/);
    expect(termProblem('one two three four five six seven eight nine')).toMatch(/at most 8 words/);
  });
});

let nextId = 1;
const term = (text: string, theme: SearchTerm['theme'] = 'self_harm_suicide'): SearchTerm => ({ id: nextId++, term: text, theme });
const matchedTerms = (list: SearchTermList, text: string) => list.match(text).map((t) => t.term);

describe('SearchTermList.match', () => {
  const kill = term('kill', 'weapons_violence');
  const killMyself = term('kill myself');
  const bomb = term('how to make a bomb', 'weapons_violence');
  const meth = term('how to make meth', 'drugs');
  const list = new SearchTermList([kill, killMyself, bomb, meth]);

  it('matches a word only as a whole word', () => {
    expect(matchedTerms(list, 'kill')).toEqual(['kill']);
    expect(matchedTerms(list, 'why kill bill')).toEqual(['kill']);
    expect(matchedTerms(list, 'the last kill')).toEqual(['kill']);
    for (const text of ['skill', 'skills for life', 'killing', 'killer whale', 'overkill', 'skill kills']) {
      expect(matchedTerms(list, text), text).toEqual([]);
    }
  });

  it('matches a phrase only as consecutive whole words', () => {
    expect(matchedTerms(list, 'how to kill myself now')).toEqual(['kill', 'kill myself']);
    expect(matchedTerms(list, 'kill them myself')).toEqual(['kill']);
    expect(matchedTerms(list, 'kill myselfish')).toEqual(['kill']);
    expect(matchedTerms(list, 'how to make a bomb')).toEqual(['how to make a bomb']);
    expect(matchedTerms(list, 'how to make a bombe glacee')).toEqual([]);
    expect(matchedTerms(list, 'how to make meth and how to make a bomb')).toEqual(['how to make meth', 'how to make a bomb']);
    expect(matchedTerms(list, 'how to make')).toEqual([]);
  });

  it('names each term once, and never joins words across two search parameters', () => {
    expect(matchedTerms(list, 'kill myself kill myself')).toEqual(['kill', 'kill myself']);
    expect(matchedTerms(list, searchTextOf('/?q=kill&p=myself') ?? '')).toEqual(['kill']);
  });

  it('matches through the whole extraction: encodings, case and accents', () => {
    const text = searchTextOf('/search?q=HOW%20TO+m%C3%A1ke+a%2C+B%C3%B6MB%21') ?? '';
    expect(matchedTerms(list, text)).toEqual(['how to make a bomb']);
  });

  it('an empty list matches nothing', () => {
    expect(SearchTermList.EMPTY.match('kill myself')).toEqual([]);
    expect(SearchTermList.EMPTY.size).toBe(0);
  });

  it('agrees with a whole-word regular expression on random text', () => {
    const word = fc.constantFrom('kill', 'skill', 'my', 'myself', 'self', 'harm', 'buy', 'weed', 'a', 'how', 'to', 'killmyself');
    const termWords = fc.array(word, { minLength: 1, maxLength: 3 }).map((words) => words.join(' '));
    fc.assert(
      fc.property(fc.uniqueArray(termWords, { minLength: 1, maxLength: 6 }), fc.array(word, { maxLength: 12 }), (terms, words) => {
        const text = words.join(' ');
        const compiled = new SearchTermList(terms.map((t) => term(t)));
        const expected = terms.filter((t) => new RegExp(`(^| )${t}( |$)`).test(text));
        expect(matchedTerms(compiled, text).sort()).toEqual(expected.sort());
      }),
      { numRuns: 500 },
    );
  });
});
