// What each list category means: a readable name, how serious its content
// is for a school, and the UK Safer Internet Centre content class it answers
// for. UT1 ships category folders with French keys and sparse descriptions;
// this table is what admins and reports show instead.
import type { Pool, PoolClient } from '../core/db.js';

export type Severity = 'none' | 'low' | 'medium' | 'high' | 'critical';

/** The content classes of the UKCIS/UK Safer Internet Centre "appropriate filtering" guidance. */
export type UkcisClass =
  | 'discrimination'
  | 'drugs'
  | 'extremism'
  | 'gambling'
  | 'malware_hacking'
  | 'pornography'
  | 'piracy'
  | 'self_harm'
  | 'violence';

export type CategorySource = 'ut1' | 'licensed';

export interface CategoryMetadata {
  key: string;
  name: string;
  description: string;
  severity: Severity;
  ukcisClass: UkcisClass | null;
  source: CategorySource;
  /** Illegal content: always blocked, for everyone; no override applies. */
  illegal: boolean;
  /** UT1's note of how the list is usually used: to block (black) or to allow (white). */
  usage: 'black' | 'white';
}

export const CATEGORY_KEY_PATTERN = /^[a-z0-9_-]{1,64}$/;

type Ut1Row = [
  key: string,
  name: string,
  description: string,
  severity: Severity,
  ukcisClass: UkcisClass | null,
  usage: 'black' | 'white',
];

// Usage is the first word of each folder's `usage` file in the UT1 snapshot.
const UT1_CATEGORIES: readonly Ut1Row[] = [
  ['adult', 'Adult', 'Adult sites, from erotica to hard pornography.', 'high', 'pornography', 'black'],
  ['agressif', 'Aggressive', 'Racist, antisemitic and hate-inciting sites.', 'high', 'discrimination', 'black'],
  ['ai', 'Artificial intelligence', 'Sites that provide artificial intelligence services (chatbots, generators).', 'low', null, 'black'],
  ['arjel', 'Licensed gambling (France)', 'Gambling sites certified by ARJEL, the French gambling authority.', 'high', 'gambling', 'white'],
  ['associations_religieuses', 'Religious associations', 'Sites of religious associations.', 'low', null, 'black'],
  ['astrology', 'Astrology', 'Astrology and horoscope sites.', 'low', null, 'black'],
  ['audio-video', 'Audio and video', 'Audio and video streaming sites.', 'low', null, 'black'],
  ['bank', 'Online banking', 'Online banks.', 'none', null, 'white'],
  ['bitcoin', 'Cryptocurrency mining', 'Sites for bitcoin and other cryptocurrency mining.', 'medium', null, 'black'],
  ['blog', 'Blogs', 'Blog hosting and blog sites.', 'low', null, 'black'],
  ['celebrity', 'Celebrity', 'Famous people, actors and the magazines that cover them.', 'low', null, 'black'],
  ['chat', 'Chat', 'Chat rooms and instant messaging sites.', 'medium', null, 'black'],
  ['child', 'Suitable for young children', 'Sites suitable for children under ten.', 'none', null, 'white'],
  ['cleaning', 'Security and clean-up tools', 'Sites to disinfect, update and protect computers.', 'none', null, 'white'],
  ['cooking', 'Cooking', 'Cooking and recipe sites.', 'none', null, 'white'],
  ['cryptojacking', 'Cryptojacking', 'Sites that mine cryptocurrency by hijacking the visitor’s computer.', 'high', 'malware_hacking', 'black'],
  ['dangerous_material', 'Dangerous material', 'Sites that describe how to make bombs and other dangerous material.', 'high', 'violence', 'black'],
  ['dating', 'Dating', 'Dating and matchmaking sites.', 'high', null, 'black'],
  ['ddos', 'DDoS services', 'Denial-of-service ("stresser" or "booter") services.', 'high', 'malware_hacking', 'black'],
  ['dialer', 'Dialers', 'Sites distributing premium-rate dialer software.', 'high', 'malware_hacking', 'black'],
  ['doh', 'DNS over HTTPS', 'DNS-over-HTTPS resolvers, which can bypass the school’s filtering.', 'medium', null, 'black'],
  ['download', 'Software downloads', 'Sites offering software downloads.', 'low', null, 'white'],
  ['drogue', 'Drugs', 'Sites about illegal drugs and other substance misuse.', 'high', 'drugs', 'black'],
  ['dynamic-dns', 'Dynamic DNS', 'Dynamic DNS providers, often used by short-lived or malicious sites.', 'low', null, 'black'],
  ['educational_games', 'Educational games', 'Online educational games.', 'none', null, 'white'],
  ['examen_pix', 'PIX exam (France)', 'Sites allowed during the French PIX digital skills exam only.', 'none', null, 'white'],
  ['exceptions_liste_bu', 'Exceptions to the French academic list', 'Hosts inside liste_bu domains that the academic allow list must not cover.', 'low', null, 'black'],
  ['fakenews', 'Fake news', 'Sites that publish fabricated news.', 'medium', null, 'black'],
  ['filehosting', 'File hosting', 'Sites that host files, pictures and videos for anyone.', 'low', null, 'black'],
  ['financial', 'Financial information', 'Sites with financial information and trading.', 'low', null, 'black'],
  ['forums', 'Forums', 'Discussion forums.', 'low', null, 'black'],
  ['gambling', 'Gambling', 'Gambling, betting and casino sites.', 'high', 'gambling', 'black'],
  ['games', 'Games', 'Online and downloadable games.', 'low', null, 'black'],
  ['hacking', 'Hacking', 'Hacking tools and tutorials.', 'high', 'malware_hacking', 'black'],
  ['jobsearch', 'Job search', 'Job search sites.', 'none', null, 'white'],
  ['lingerie', 'Lingerie', 'Lingerie sites.', 'medium', null, 'black'],
  ['liste_blanche', 'General allow list (France)', 'Sites UT1 recommends always allowing, mostly French education.', 'none', null, 'white'],
  ['liste_bu', 'Academic sites (France)', 'French educational and library sites; very locally oriented.', 'none', null, 'white'],
  ['malware', 'Malware', 'Sites that deliver malware.', 'high', 'malware_hacking', 'black'],
  ['manga', 'Manga', 'Manga and cartoon sites.', 'low', null, 'black'],
  ['marketingware', 'Marketingware', 'Aggressive marketing and pop-up sites.', 'low', null, 'black'],
  ['mixed_adult', 'Mixed adult content', 'Sites with unstructured adult sections among other content.', 'medium', 'pornography', 'black'],
  ['mobile-phone', 'Mobile phone content', 'Ringtones and other mobile phone content.', 'low', null, 'black'],
  ['phishing', 'Phishing', 'Phishing sites (upstream keeps it as a copy of malware).', 'high', 'malware_hacking', 'black'],
  ['press', 'News and press', 'News and magazine sites.', 'none', null, 'black'],
  ['publicite', 'Advertising', 'Advertising and ad-serving sites.', 'low', null, 'black'],
  ['radio', 'Internet radio', 'Internet radio sites.', 'low', null, 'black'],
  ['reaffected', 'Changed ownership', 'Domains whose owner has changed since they were listed.', 'low', null, 'black'],
  ['redirector', 'Proxies and redirectors', 'Web proxies and redirectors used to get round filtering.', 'high', null, 'black'],
  ['remote-control', 'Remote control', 'Remote desktop control services.', 'medium', null, 'black'],
  ['residential-proxies', 'Residential proxies', 'Residential proxy services used to get round filtering.', 'high', null, 'black'],
  ['sect', 'Sects', 'Sites of groups described as sects or cults.', 'medium', null, 'black'],
  ['sexual_education', 'Sex education', 'Sex education sites that can be mistaken for pornography.', 'none', null, 'white'],
  ['shopping', 'Shopping', 'Online shops and marketplaces.', 'low', null, 'black'],
  ['shortener', 'URL shorteners', 'URL shortening services.', 'low', null, 'black'],
  ['social_networks', 'Social networks', 'Social networking sites.', 'medium', null, 'black'],
  ['special', 'Special', 'A small list UT1 keeps for special cases.', 'low', null, 'black'],
  ['sports', 'Sports', 'Sports sites.', 'low', null, 'black'],
  ['stalkerware', 'Stalkerware', 'Sellers of spying software aimed at monitoring other people.', 'high', 'malware_hacking', 'black'],
  ['strict_redirector', 'Proxies, strict', 'Redirectors plus search engine caches and image search.', 'high', null, 'black'],
  ['strong_redirector', 'Proxies, strong', 'Redirectors plus some search terms on the large search engines.', 'high', null, 'black'],
  ['translation', 'Translation', 'Translation sites.', 'none', null, 'white'],
  ['tricheur', 'Cheating', 'Sites that explain how to cheat in exams.', 'medium', null, 'black'],
  ['tricheur_pix', 'Cheating, PIX exam (France)', 'Sites blocked during the French PIX exam only.', 'medium', null, 'black'],
  ['update', 'Software updates', 'Update sites for software and operating systems.', 'none', null, 'white'],
  ['vpn', 'VPN services', 'VPN services, which can bypass the school’s filtering.', 'medium', null, 'black'],
  ['warez', 'Warez', 'Pirated software, films and music.', 'high', 'piracy', 'black'],
  ['webhosting', 'Web hosting', 'Web hosting providers.', 'low', null, 'black'],
  ['webmail', 'Webmail', 'Webmail services.', 'low', null, 'black'],
];

// Lists a school may hold only under licence; no entries ship with Portcullis.
const LICENSED_CATEGORIES: readonly CategoryMetadata[] = [
  {
    key: 'iwf',
    name: 'IWF child sexual abuse list',
    description: 'Internet Watch Foundation list of child sexual abuse image URLs.',
    severity: 'critical',
    // UKCIS treats illegal content separately from its content classes; none fits.
    ukcisClass: null,
    source: 'licensed',
    illegal: true,
    usage: 'black',
  },
  {
    key: 'ctiru',
    name: 'Unlawful terrorist content (CTIRU)',
    description: 'Police-assessed list of unlawful terrorist content (Counter Terrorism Internet Referral Unit).',
    severity: 'critical',
    ukcisClass: 'extremism',
    source: 'licensed',
    illegal: true,
    usage: 'black',
  },
];

export const CATEGORY_METADATA: readonly CategoryMetadata[] = [
  ...UT1_CATEGORIES.map(
    ([key, name, description, severity, ukcisClass, usage]): CategoryMetadata => ({
      key,
      name,
      description,
      severity,
      ukcisClass,
      source: 'ut1',
      illegal: false,
      usage,
    }),
  ),
  ...LICENSED_CATEGORIES,
];

const byKey = new Map(CATEGORY_METADATA.map((m) => [m.key, m]));

/** Known metadata for `key`, or a plain description for a category an import brought that we do not know. */
export function metadataFor(key: string): CategoryMetadata {
  return (
    byKey.get(key) ?? {
      key,
      name: key,
      description: `List category "${key}" found in an import; no description is known.`,
      severity: 'low',
      ukcisClass: null,
      source: 'ut1',
      illegal: false,
      usage: 'black',
    }
  );
}

export function isKnownCategory(key: string): boolean {
  return byKey.has(key);
}

/**
 * Inserts or updates the rows of the given categories (every known one by
 * default). With `overwrite` false, existing rows are left as they are: for
 * categories we know nothing about, an admin's edits win over our defaults.
 */
export async function upsertCategoryMetadata(
  db: Pool | PoolClient,
  categories: readonly CategoryMetadata[] = CATEGORY_METADATA,
  overwrite = true,
): Promise<void> {
  for (const m of categories) {
    if (!CATEGORY_KEY_PATTERN.test(m.key)) throw new Error(`category key "${m.key}" must match ${CATEGORY_KEY_PATTERN}`);
  }
  const column = <K extends keyof CategoryMetadata>(k: K) => categories.map((m) => m[k]);
  await db.query(
    `INSERT INTO categories (key, name, description, severity, ukcis_class, source, illegal, usage)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::text[])
     ON CONFLICT (key) DO ${
       overwrite
         ? `UPDATE SET name = excluded.name, description = excluded.description, severity = excluded.severity,
              ukcis_class = excluded.ukcis_class, source = excluded.source, illegal = excluded.illegal,
              usage = excluded.usage
            WHERE (categories.name, categories.description, categories.severity, categories.ukcis_class,
                   categories.source, categories.illegal, categories.usage)
              IS DISTINCT FROM (excluded.name, excluded.description, excluded.severity, excluded.ukcis_class,
                                excluded.source, excluded.illegal, excluded.usage)`
         : 'NOTHING'
     }`,
    [
      column('key'),
      column('name'),
      column('description'),
      column('severity'),
      column('ukcisClass'),
      column('source'),
      column('illegal'),
      column('usage'),
    ],
  );
}
