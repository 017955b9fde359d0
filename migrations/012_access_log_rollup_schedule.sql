-- When each day's rollup (access_log_daily) was last done, and which days
-- late rows have reached since. The hourly maintenance used to roll up
-- yesterday again every hour of today, so that late rows were counted: a full
-- pass over a busy day's rows twenty-four times, and still nothing for a day
-- before yesterday whose rows came back from a spool after a long outage.
-- Now a closed day is rolled up once more, by the first run a grace period
-- after the day ended everywhere (access-log/rollup.ts), and a spool replay
-- marks the days of the rows it adds, however old, for the next run.
CREATE TABLE access_log_rollups (
  day           date PRIMARY KEY,
  -- The maintenance's clock when the rollup ran; it counted the rows committed by then.
  rolled_up_at  timestamptz NOT NULL
);

CREATE TABLE access_log_rollup_stale (
  -- A school-local day, as access_log_daily.day.
  day         date PRIMARY KEY,
  -- Bumped by each replay that marks the day again: a rollup clears the mark
  -- only if no replay has bumped it since the rollup began to read the log.
  generation  bigint NOT NULL DEFAULT 1,
  marked_at   timestamptz NOT NULL DEFAULT now()
);
