-- Core schema: schools, people, categories and lists, policy.
--
-- Tables that belong to a school carry school_id so that one deployment can
-- serve a trust and the schema distributes by school_id. Categories and list
-- entries are shared reference data (the same UT1 lists serve every school;
-- on a distributed Postgres they are reference tables), so they carry none.

CREATE TABLE schools (
  id          serial PRIMARY KEY,
  name        text NOT NULL,
  timezone    text NOT NULL DEFAULT 'Europe/London',
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Weekly windows in the school's time zone, e.g.
-- [{"days":[1,2,3,4,5],"start":"08:30","end":"15:30"}] (ISO weekdays, 1 = Monday).
-- term_time_only: the windows apply on term days only (see calendar_periods).
CREATE TABLE schedules (
  id              serial PRIMARY KEY,
  school_id       int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  key             text NOT NULL,
  name            text NOT NULL,
  windows         jsonb NOT NULL,
  term_time_only  boolean NOT NULL DEFAULT false,
  UNIQUE (school_id, key)
);

-- Term dates and holidays. A day is a term day when some term covers it and
-- no holiday does; with no terms recorded, every day is a term day.
CREATE TABLE calendar_periods (
  id         serial PRIMARY KEY,
  school_id  int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('term', 'holiday')),
  name       text NOT NULL,
  starts_on  date NOT NULL,
  ends_on    date NOT NULL,
  CHECK (ends_on >= starts_on)
);

CREATE TABLE groups (
  id              serial PRIMARY KEY,
  school_id       int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  key             text NOT NULL,
  name            text NOT NULL,
  -- What happens to a request no rule decides.
  default_action  text NOT NULL DEFAULT 'allow' CHECK (default_action IN ('allow', 'block')),
  -- The group of people the proxy cannot identify. Exactly one per school.
  is_default      boolean NOT NULL DEFAULT false,
  UNIQUE (school_id, key)
);
CREATE UNIQUE INDEX groups_one_default ON groups (school_id) WHERE is_default;

CREATE TABLE users (
  id             serial PRIMARY KEY,
  school_id      int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  username       text NOT NULL CHECK (username = lower(username) AND username ~ '^[a-z0-9][a-z0-9._@-]{0,127}$'),
  display_name   text NOT NULL DEFAULT '',
  group_id       int NOT NULL REFERENCES groups(id),
  roles          text[] NOT NULL DEFAULT '{}'
                 CHECK (roles <@ ARRAY['staff', 'it_admin', 'dsl', 'headteacher', 'governor']::text[]),
  password_hash  text,
  disabled       boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (school_id, username)
);

-- Client addresses that identify a person (a staff laptop) or a group (a
-- pupil suite). The most specific range wins.
CREATE TABLE ip_assignments (
  id         serial PRIMARY KEY,
  school_id  int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  cidr       cidr NOT NULL,
  user_id    int REFERENCES users(id) ON DELETE CASCADE,
  group_id   int REFERENCES groups(id) ON DELETE CASCADE,
  note       text NOT NULL DEFAULT '',
  CHECK ((user_id IS NULL) <> (group_id IS NULL)),
  UNIQUE (school_id, cidr)
);

CREATE TABLE categories (
  id            smallserial PRIMARY KEY,
  key           text NOT NULL UNIQUE CHECK (key ~ '^[a-z0-9_-]{1,64}$'),
  name          text NOT NULL,
  description   text NOT NULL DEFAULT '',
  severity      text NOT NULL DEFAULT 'low' CHECK (severity IN ('none', 'low', 'medium', 'high', 'critical')),
  -- UK Safer Internet Centre content class, where one fits.
  ukcis_class   text CHECK (ukcis_class IN ('discrimination', 'drugs', 'extremism', 'gambling', 'malware_hacking',
                                            'pornography', 'piracy', 'self_harm', 'violence')),
  -- Where the list comes from: ut1, licensed (IWF, CTIRU), local.
  source        text NOT NULL DEFAULT 'ut1',
  -- Illegal content: always blocked, for everyone, whatever the overrides.
  illegal       boolean NOT NULL DEFAULT false,
  -- UT1's own note of the list's usual use (black or white).
  usage         text NOT NULL DEFAULT 'black' CHECK (usage IN ('black', 'white'))
);

-- kind 'domain': the value and all its subdomains; kind 'url': host/path prefix.
-- source 'import' rows are replaced by the next import; 'local' rows are an
-- admin's own additions and survive it.
-- No foreign key to categories and no index beyond the primary key: the table
-- holds millions of rows written in bulk, where each per-row check or index
-- more than doubles the import time. The importer creates categories before
-- their entries; categories are never deleted, only disabled.
CREATE TABLE list_entries (
  category_id  smallint NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('domain', 'url')),
  value        text NOT NULL,
  source       text NOT NULL DEFAULT 'import' CHECK (source IN ('import', 'local')),
  PRIMARY KEY (category_id, kind, value)
);

-- A completed blocklist import, for the record and for "lists last updated".
CREATE TABLE list_imports (
  id            serial PRIMARY KEY,
  source        text NOT NULL,
  imported_at   timestamptz NOT NULL DEFAULT now(),
  categories    int NOT NULL,
  domains       int NOT NULL,
  urls          int NOT NULL,
  duration_ms   int NOT NULL
);

-- Local decisions that take precedence over the category rules: the school's
-- record of what is allowed or blocked and why.
CREATE TABLE overrides (
  id          serial PRIMARY KEY,
  school_id   int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  action      text NOT NULL CHECK (action IN ('allow', 'block')),
  kind        text NOT NULL CHECK (kind IN ('domain', 'url')),
  value       text NOT NULL,
  -- NULL: applies to every group.
  group_id    int REFERENCES groups(id) ON DELETE CASCADE,
  reason      text NOT NULL CHECK (length(trim(reason)) > 0),
  decided_by  text NOT NULL,
  decided_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz
);
CREATE INDEX overrides_school ON overrides (school_id);

CREATE TABLE group_rules (
  id           serial PRIMARY KEY,
  school_id    int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  group_id     int NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
  category_id  smallint NOT NULL REFERENCES categories(id) ON DELETE CASCADE,
  -- block_during: blocked while the schedule is active, allowed outside it.
  -- monitor: allowed, and flagged for the safeguarding lead.
  action       text NOT NULL CHECK (action IN ('allow', 'block', 'block_during', 'monitor')),
  schedule_id  int REFERENCES schedules(id) ON DELETE RESTRICT,
  CHECK ((action = 'block_during') = (schedule_id IS NOT NULL)),
  UNIQUE (group_id, category_id)
);

-- Every change to what the proxy enforces is announced on one channel; the
-- payload names the table so a listener can skip work it does not need
-- (a rule change must not rebuild five million list entries).
CREATE FUNCTION portcullis_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('portcullis_policy', TG_TABLE_NAME);
  RETURN NULL;
END $$;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['schools', 'schedules', 'calendar_periods', 'groups', 'users', 'ip_assignments',
                           'categories', 'list_entries', 'overrides', 'group_rules']
  LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_notify_change()', t || '_notify', t);
  END LOOP;
END $$;
