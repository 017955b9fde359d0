// The DSL's safeguarding search terms, compiled for matching on the
// access-log path: a map from each term's first word to the terms that
// start with it, built once per change of the list. Matching walks the
// search text's words (already normalised by search-text.ts, words separated
// by one space), looks each up once, and checks a phrase's following words
// in place, so "kill" never matches "skill" and a phrase matches only as
// consecutive words.
import { normaliseText } from './search-text.js';

export const SEARCH_TERM_THEMES = [
  'self_harm_suicide',
  'extremism_radicalisation',
  'sexual_exploitation_abuse',
  'bullying_harassment',
  'drugs',
  'weapons_violence',
] as const;
export type SearchTermTheme = (typeof SEARCH_TERM_THEMES)[number];

/** For alert summaries: how the DSL reads each theme. */
export const THEME_LABELS: Record<SearchTermTheme, string> = {
  self_harm_suicide: 'self-harm or suicide',
  extremism_radicalisation: 'extremism or radicalisation',
  sexual_exploitation_abuse: 'sexual exploitation or abuse',
  bullying_harassment: 'bullying or harassment',
  drugs: 'drugs',
  weapons_violence: 'weapons or violence',
};

/** Limits on a term (also checked by the database): shorter terms match too much, longer ones never. */
export const TERM_MIN_CHARS = 3;
export const TERM_MAX_CHARS = 100;
export const TERM_MAX_WORDS = 8;

export interface SearchTerm {
  id: number;
  /** Normalised: canonicalTerm() of what the DSL typed. */
  term: string;
  theme: SearchTermTheme;
}

const SPACE = 0x20;

/** A term as stored and matched: normalised exactly as search text is, so "Self-Harm" is "self harm". */
export function canonicalTerm(typed: string): string {
  return normaliseText(typed);
}

/** Why a canonical term cannot be used, or undefined when it can. */
export function termProblem(term: string): string | undefined {
  if (term.replaceAll(' ', '').length < TERM_MIN_CHARS) return `must have at least ${TERM_MIN_CHARS} letters or digits`;
  if (term.length > TERM_MAX_CHARS) return `must be at most ${TERM_MAX_CHARS} characters`;
  if (term.split(' ').length > TERM_MAX_WORDS) return `must be at most ${TERM_MAX_WORDS} words`;
  return undefined;
}

export class SearchTermList {
  static readonly EMPTY = new SearchTermList([]);

  private readonly byFirstWord = new Map<string, SearchTerm[]>();
  private readonly longestFirstWord: number;
  readonly size: number;

  constructor(terms: readonly SearchTerm[]) {
    let longest = 0;
    for (const term of terms) {
      const firstWord = term.term.split(' ', 1)[0];
      longest = Math.max(longest, firstWord.length);
      const same = this.byFirstWord.get(firstWord);
      if (same) same.push(term);
      else this.byFirstWord.set(firstWord, [term]);
    }
    this.longestFirstWord = longest;
    this.size = terms.length;
  }

  /** The terms in normalised search text, each once, in the order they first appear. */
  match(text: string): SearchTerm[] {
    const found: SearchTerm[] = [];
    if (this.size === 0) return found;
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf(' ', start);
      if (end === -1) end = text.length;
      // No term starts with a word longer than the longest first word: skip it without a slice.
      const candidates = end - start <= this.longestFirstWord ? this.byFirstWord.get(text.slice(start, end)) : undefined;
      if (candidates) {
        for (const candidate of candidates) {
          if (!found.includes(candidate) && this.phraseAt(text, start, candidate.term)) found.push(candidate);
        }
      }
      start = end + 1;
    }
    return found;
  }

  private phraseAt(text: string, start: number, phrase: string): boolean {
    const after = start + phrase.length;
    return (after === text.length || text.charCodeAt(after) === SPACE) && text.startsWith(phrase, start);
  }
}
