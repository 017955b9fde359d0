// Synthetic domain names shaped like list entries, to pad the real UT1 lists
// to the millions of domains a full commercial list holds. Seeded, so every
// run of a benchmark sees the same names.

/** mulberry32: a small seeded generator of numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = 'ba be bi bo bu ca co cu da de di do fa fe fi go ha he hi ho ja jo ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo wa we xa ya yo za zo an en in on un ar er ir or ur al el il ol ex ix ox st tr pr gr bl cl fl sh ch th'.split(' ');
/** Weighted towards .com as lists are. */
const TLDS = ['com', 'com', 'com', 'com', 'com', 'net', 'org', 'fr', 'de', 'co.uk', 'ru', 'info', 'io', 'nl', 'it', 'es', 'pl', 'com.br', 'xyz', 'online', 'biz', 'eu', 'be', 'ch'];
export const COMMON_SUBDOMAINS: readonly string[] = ['www', 'm', 'blog', 'shop', 'cdn', 'static', 'mail', 'en', 'fr', 'app', 'api', 'img'];

/**
 * A stream of names like list entries: a 2-5 syllable word, sometimes with a
 * number or a hyphenated second word, under a common TLD; one in five has a
 * subdomain (a common one or another word).
 */
export function syntheticNames(random: () => number): () => string {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)];
  const word = (): string => {
    let text = '';
    const syllables = 2 + Math.floor(random() * 4);
    for (let i = 0; i < syllables; i++) text += pick(SYLLABLES);
    const extra = random();
    if (extra < 0.1) text += String(Math.floor(random() * 100));
    else if (extra < 0.15) text += `-${pick(SYLLABLES)}${pick(SYLLABLES)}`;
    return text;
  };
  return () => {
    const base = `${word()}.${pick(TLDS)}`;
    const level = random();
    if (level < 0.15) return `${pick(COMMON_SUBDOMAINS)}.${base}`;
    if (level < 0.2) return `${word()}.${base}`;
    return base;
  };
}
