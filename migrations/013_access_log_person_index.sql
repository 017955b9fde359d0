-- A person's history in time order, (school_id, user_id, time), is no longer
-- kept up on every partition row by row. With a school's people interleaved,
-- each row's entry lands at a different place in the index, and keeping it up
-- was the dearest part of writing a row: about a third of Postgres's CPU per
-- row in an ad-hoc COPY of 200,000 rows from 900 people (docs/design-notes.md,
-- "Writing the access log fast"). The hourly maintenance builds it on each
-- day's partition once the day has closed (access-log/closed-day-indexes.ts),
-- as access_log_pYYYYMMDD_user_time, beside the index by host.
--
-- What every partition keeps live is (school_id, user_id): a key repeated
-- for each of a person's rows, which Postgres stores once with the list of
-- rows (btree deduplication), so today's rows of one person are still found
-- by index, and sorted by time in memory, without scanning the day.
-- Created before the old index is dropped, in this migration's transaction,
-- so no moment is without an index by person. The first maintenance run
-- after this migration rebuilds the time-ordered index on the closed days,
-- newest first.
CREATE INDEX access_log_school_user ON access_log (school_id, user_id);
DROP INDEX IF EXISTS access_log_school_user_time;
