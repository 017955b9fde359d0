-- Cheaper indexes for the access log, whose writer must keep up with tens of
-- thousands of rows a second (see docs/design-notes.md, "Writing the access
-- log fast"). Every query that reads access_log keeps an index:
--   a person's history, and marking a self-reported visit   (school_id, user_id, time)
--   by host                                                  (school_id, host, time)
--   blocked sites in a period (reports)                      (school_id, action, time), now blocked/monitored rows only
--   a block by its reference (reporting accidental access)   (school_id, block_ref), new, blocked rows only
--   an event by id (incident reports, alerts)                the primary key (id, time)

-- The GIN index on categories cost more per row written than any btree and
-- served no query: the only category filter (a person's history) applies to
-- rows the (school_id, user_id, time) index has already narrowed, and
-- reports by category read the daily rollup.
DROP INDEX IF EXISTS access_log_categories;

-- Allowed rows, nine in ten, are never looked up by action: reports ask for
-- blocked (or monitored) requests, and a history filters within a person's rows.
DROP INDEX IF EXISTS access_log_school_action_time;
CREATE INDEX access_log_school_action_time ON access_log (school_id, action, time)
  WHERE action IN ('blocked', 'monitored');

-- findOwnBlock looked a block reference up by scanning a school's blocked rows.
CREATE INDEX access_log_school_block_ref ON access_log (school_id, block_ref) WHERE block_ref IS NOT NULL;
