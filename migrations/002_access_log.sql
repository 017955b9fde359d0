-- The access log: one row per request (or CONNECT tunnel) the proxy handled.
--
-- Partitioned by UTC day (access_log_pYYYYMMDD covers [day 00:00Z, day+1 00:00Z))
-- so that retention drops whole partitions instead of deleting rows. Indexes
-- are declared on the parent so every partition gets them.
--
-- No foreign keys: a person's history must outlive their account, and the
-- writer must not pay for FK checks on every row.

CREATE TABLE access_log (
  id                uuid NOT NULL,
  time              timestamptz NOT NULL,
  -- The school of the event's group, resolved when the row is written; NULL
  -- only when that group had already been deleted.
  school_id         int,
  user_id           int,
  -- The username as the proxy saw it (kept even if the account is renamed).
  username          text,
  group_id          int NOT NULL,
  client_ip         inet NOT NULL,
  method            text NOT NULL,
  scheme            text NOT NULL CHECK (scheme IN ('http', 'https')),
  host              text NOT NULL,
  port              int NOT NULL CHECK (port BETWEEN 0 AND 65535),
  -- Path and query where the proxy saw them (plain HTTP, intercepted HTTPS).
  path              text,
  -- Every category the request falls in, most severe first; '{}' for none.
  categories        text[] NOT NULL DEFAULT '{}',
  -- The category that decided, where one did.
  category          text,
  action            text NOT NULL CHECK (action IN ('allowed', 'blocked', 'monitored')),
  rule              text NOT NULL,
  rule_kind         text NOT NULL CHECK (rule_kind IN ('illegal', 'override', 'group_rule', 'default', 'safety')),
  rule_id           int,
  status            smallint NOT NULL,
  bytes_in          bigint NOT NULL CHECK (bytes_in >= 0),
  bytes_out         bigint NOT NULL CHECK (bytes_out >= 0),
  duration_ms       int NOT NULL CHECK (duration_ms >= 0),
  -- The reference shown on the block page.
  block_ref         text,
  -- Set when the person reported this visit as accidental access.
  self_reported_at  timestamptz,
  PRIMARY KEY (id, time)
) PARTITION BY RANGE (time);

CREATE INDEX access_log_school_user_time ON access_log (school_id, user_id, time);
CREATE INDEX access_log_school_host_time ON access_log (school_id, host, time);
CREATE INDEX access_log_school_action_time ON access_log (school_id, action, time);
CREATE INDEX access_log_categories ON access_log USING gin (categories);

-- Creates the partition for one UTC day unless it exists. The advisory lock
-- (shared with retention) lets several processes call it at once.
CREATE FUNCTION access_log_ensure_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  partition_name text := 'access_log_p' || to_char(day, 'YYYYMMDD');
BEGIN
  PERFORM pg_advisory_xact_lock(7099746011);
  IF to_regclass(quote_ident(partition_name)) IS NOT NULL THEN
    RETURN NULL;
  END IF;
  EXECUTE format('CREATE TABLE %I PARTITION OF access_log FOR VALUES FROM (%L) TO (%L)',
                 partition_name,
                 day::timestamp AT TIME ZONE 'UTC',
                 (day + 1)::timestamp AT TIME ZONE 'UTC');
  RETURN partition_name;
END $$;

-- Creates the partitions for every UTC day from first_day to last_day
-- inclusive; returns the names of those it created.
CREATE FUNCTION access_log_ensure_partitions(first_day date, last_day date) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT created
  FROM generate_series(first_day, last_day, interval '1 day') AS d(day),
       LATERAL access_log_ensure_partition(d.day::date) AS created
  WHERE created IS NOT NULL
$$;

SELECT count(*) FROM access_log_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1,
                                                   (now() AT TIME ZONE 'UTC')::date + 7);

-- Daily totals per person, category and action, for reports that must not
-- scan the raw log. `day` is the school's local day (schools.timezone).
-- A request in several categories counts once in each; a request in none
-- counts under category '' (shown as "uncategorised"; no category key is
-- empty, so it cannot collide with a real one).
CREATE TABLE access_log_daily (
  school_id  int NOT NULL,
  day        date NOT NULL,
  -- NULL for requests from people the proxy could not identify.
  user_id    int,
  group_id   int NOT NULL,
  category   text NOT NULL,
  action     text NOT NULL CHECK (action IN ('allowed', 'blocked', 'monitored')),
  requests   bigint NOT NULL,
  bytes      bigint NOT NULL,
  CONSTRAINT access_log_daily_key UNIQUE NULLS NOT DISTINCT (school_id, day, user_id, group_id, category, action)
);
