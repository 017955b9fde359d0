-- The index by host, (school_id, host, time), is no longer declared on the
-- parent, where every partition had to keep it up row by row: it cost
-- Postgres about a third of its CPU per access-log row written. The access
-- log's hourly maintenance builds it on each day's partition once the day has
-- closed (access-log/closed-day-indexes.ts), as access_log_pYYYYMMDD_host_time.
-- Dropping the parent's index drops every partition's copy; the first
-- maintenance run after this migration rebuilds them, newest day first.
DROP INDEX IF EXISTS access_log_school_host_time;
