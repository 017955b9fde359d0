-- A person's history in time order, (school_id, user_id, time), is no longer
-- kept up on every partition row by row. With a school's people interleaved,
-- each row's entry lands at a different place in the index, and keeping it up
-- was the dearest part of writing a row: about a third of Postgres's CPU per
-- row in an ad-hoc COPY of 200,000 rows from 900 people (docs/design-notes.md,
-- "Writing the access log fast"). The hourly maintenance builds it on each
-- day's partition once the day has closed (access-log/closed-day-indexes.ts),
-- as access_log_pYYYYMMDD_user_time, beside the index by host.
--
-- What the open days keep live is (school_id, user_id): a key repeated for
-- each of a person's rows, which Postgres stores once with the list of rows
-- (btree deduplication), so today's rows of one person are still found by
-- index, and sorted by time in memory, without scanning the day.
--
-- Declared ON ONLY the parent, so that this migration does not build it on
-- every day already kept (a year of a busy school's log would hold up the
-- start, and with it the school's web access, for as long as that takes):
-- each partition created from now on gets it, and the days not yet closed
-- get it here. The closed days lose the old index with the parent's; the
-- maintenance run at start builds their time-ordered one, newest day first,
-- and until it reaches a day a history of that day scans it.
DROP INDEX IF EXISTS access_log_school_user_time;
CREATE INDEX access_log_school_user ON ONLY access_log (school_id, user_id);
DO $$
DECLARE
  open_day record;
BEGIN
  FOR open_day IN
    SELECT c.relname AS partition
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'access_log'::regclass
       AND c.relname ~ '^access_log_p\d{8}$'
       AND c.relname >= 'access_log_p' || to_char((now() AT TIME ZONE 'UTC')::date, 'YYYYMMDD')
  LOOP
    EXECUTE format('CREATE INDEX %I ON %I (school_id, user_id)', open_day.partition || '_school_id_user_id_idx', open_day.partition);
    EXECUTE format('ALTER INDEX access_log_school_user ATTACH PARTITION %I', open_day.partition || '_school_id_user_id_idx');
  END LOOP;
END $$;
