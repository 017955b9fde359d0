-- Safeguarding search terms: words and phrases the DSL wants to hear about
-- when someone searches for them. The proxy sees a search only on plain HTTP
-- (an HTTPS URL is inside the tunnel), extracts the search text from the
-- query string and matches it word by word against the enabled terms
-- (safeguarding/search-text.ts, search-terms.ts); a match raises a
-- 'search_term' alert.
--
-- Themes: the harm types of cases (006) where they are the same concern
-- (self_harm_suicide, bullying_harassment), and the monitoring themes cases
-- do not have.
CREATE TABLE search_terms (
  id                 serial PRIMARY KEY,
  school_id          int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  -- Normalised as search text is (lowercase, no diacritics, words of letters
  -- and digits separated by one space), so a term matches what it says; the
  -- admin API normalises what the DSL types, the check is the backstop.
  term               text NOT NULL CHECK (length(term) BETWEEN 3 AND 100 AND term = lower(term) AND term !~ '^ | $|  |[[:punct:][:cntrl:]]'),
  theme              text NOT NULL CHECK (theme IN ('self_harm_suicide', 'extremism_radicalisation', 'sexual_exploitation_abuse',
                                                    'bullying_harassment', 'drugs', 'weapons_violence')),
  enabled            boolean NOT NULL DEFAULT true,
  -- NULL with added_by_username 'portcullis': shipped in the default list.
  added_by           int REFERENCES users(id) ON DELETE SET NULL,
  added_by_username  text NOT NULL,
  added_at           timestamptz NOT NULL DEFAULT now(),
  UNIQUE (school_id, term)
);

-- A running proxy reloads its terms on the policy channel, like everything
-- else it enforces (portcullis_notify_change, 001).
CREATE TRIGGER search_terms_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON search_terms
  FOR EACH STATEMENT EXECUTE FUNCTION portcullis_notify_change();

ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
  CHECK (kind IN ('illegal_content', 'monitored_category', 'repeated_blocks', 'search_term'));

-- The default list, deliberately short. Single words such as "suicide",
-- "drugs", "terrorism", "knife" or "bullying" are what pupils and teachers
-- search for in PSHE, RE, science and history; alerting on them would bury
-- the DSL in noise, and the DfE filtering and monitoring standards warn
-- against over-blocking and over-alerting getting in the way of teaching.
-- So the defaults are only phrases of first-person intent, procurement or
-- abuse that a lesson has no reason to type. The DSL adds local terms (and
-- disables any of these) through the admin API.
CREATE FUNCTION seed_search_terms(p_school_id int) RETURNS void LANGUAGE sql AS $$
  INSERT INTO search_terms (school_id, term, theme, added_by_username)
  SELECT p_school_id, term, theme, 'portcullis'
    FROM (VALUES
      ('how to kill myself', 'self_harm_suicide'),
      ('ways to kill myself', 'self_harm_suicide'),
      ('painless way to die', 'self_harm_suicide'),
      ('how to hang myself', 'self_harm_suicide'),
      ('how to cut myself', 'self_harm_suicide'),
      ('how to join isis', 'extremism_radicalisation'),
      ('join the jihad', 'extremism_radicalisation'),
      ('kill all muslims', 'extremism_radicalisation'),
      ('kill all jews', 'extremism_radicalisation'),
      ('child porn', 'sexual_exploitation_abuse'),
      ('jailbait', 'sexual_exploitation_abuse'),
      ('sell nudes', 'sexual_exploitation_abuse'),
      ('kill yourself', 'bullying_harassment'),
      ('how to bully someone', 'bullying_harassment'),
      ('how to cyberbully someone', 'bullying_harassment'),
      ('buy cocaine', 'drugs'),
      ('buy mdma', 'drugs'),
      ('buy weed', 'drugs'),
      ('how to make meth', 'drugs'),
      ('how to make a bomb', 'weapons_violence'),
      ('how to make a pipe bomb', 'weapons_violence'),
      ('buy a zombie knife', 'weapons_violence'),
      ('how to stab someone', 'weapons_violence')
    ) AS defaults (term, theme)
  ON CONFLICT (school_id, term) DO NOTHING;
$$;

SELECT seed_search_terms(id) FROM schools;

-- A school created later (the first start creates it after the migrations)
-- starts with the same list.
CREATE FUNCTION seed_search_terms_for_new_school() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM seed_search_terms(NEW.id);
  RETURN NULL;
END $$;

CREATE TRIGGER schools_seed_search_terms AFTER INSERT ON schools
  FOR EACH ROW EXECUTE FUNCTION seed_search_terms_for_new_school();
