-- Safeguarding workflows: reports from staff, unblock requests, alerts for
-- the DSL, and harmful-content cases (SWGfL Report Harmful Content style).
--
-- Links to access_log rows are uuid arrays, not foreign keys: access_log is
-- partitioned and its rows are dropped whole by retention, while a report or
-- an alert must outlive them.

-- "I reached this by accident" and "I received inappropriate content".
CREATE TABLE incident_reports (
  id                serial PRIMARY KEY,
  school_id         int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  kind              text NOT NULL CHECK (kind IN ('accidental_access', 'inappropriate_content')),
  reporter_user_id  int NOT NULL REFERENCES users(id),
  reported_at       timestamptz NOT NULL DEFAULT now(),
  -- accidental_access: the block it is about, as the block page showed it.
  block_ref         text,
  url               text,
  category          text,
  blocked_at        timestamptz,
  -- inappropriate_content: how it arrived.
  channel           text CHECK (channel IN ('email', 'message', 'link')),
  description       text NOT NULL DEFAULT '',
  access_log_ids    uuid[] NOT NULL DEFAULT '{}',
  status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'genuine_mistake', 'needs_follow_up')),
  outcome_note      text,
  decided_by        int REFERENCES users(id),
  decided_at        timestamptz,
  CHECK ((kind = 'accidental_access') = (block_ref IS NOT NULL)),
  CHECK ((kind = 'inappropriate_content') = (channel IS NOT NULL)),
  CHECK ((status = 'open') = (decided_at IS NULL))
);
CREATE INDEX incident_reports_school ON incident_reports (school_id, status, id);
CREATE INDEX incident_reports_reporter ON incident_reports (reporter_user_id, id);

-- "I need this for teaching".
CREATE TABLE unblock_requests (
  id                 serial PRIMARY KEY,
  school_id          int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  requester_user_id  int NOT NULL REFERENCES users(id),
  requested_at       timestamptz NOT NULL DEFAULT now(),
  block_ref          text NOT NULL,
  url                text NOT NULL,
  category           text,
  -- What an approval allows: the whole host (domain) or a host/path prefix (url).
  target_kind        text NOT NULL CHECK (target_kind IN ('domain', 'url')),
  target             text NOT NULL,
  reason             text NOT NULL CHECK (length(trim(reason)) > 0),
  status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'refused')),
  decided_by         int REFERENCES users(id),
  decided_at         timestamptz,
  decision_note      text,
  override_id        int REFERENCES overrides(id) ON DELETE SET NULL,
  CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX unblock_requests_school ON unblock_requests (school_id, status, id);
CREATE INDEX unblock_requests_requester ON unblock_requests (requester_user_id, id);

-- Alerts for the DSL. dedupe_key names the trigger, so one trigger raises
-- one alert however many proxy processes see it.
CREATE TABLE alerts (
  id                      serial PRIMARY KEY,
  school_id               int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  kind                    text NOT NULL CHECK (kind IN ('illegal_content', 'monitored_category', 'repeated_blocks')),
  dedupe_key              text NOT NULL,
  raised_at               timestamptz NOT NULL DEFAULT now(),
  user_id                 int,
  username                text,
  client_ip               inet NOT NULL,
  host                    text NOT NULL,
  category                text,
  summary                 text NOT NULL,
  access_log_ids          uuid[] NOT NULL CHECK (cardinality(access_log_ids) > 0),
  acknowledged_by         int REFERENCES users(id),
  acknowledged_at         timestamptz,
  acknowledge_note        text,
  -- Webhook delivery: none (no webhook configured), pending, delivered, failed (gave up).
  webhook_state           text NOT NULL CHECK (webhook_state IN ('none', 'pending', 'delivered', 'failed')),
  webhook_attempts        int NOT NULL DEFAULT 0,
  webhook_next_attempt_at timestamptz,
  webhook_last_error      text,
  webhook_delivered_at    timestamptz,
  UNIQUE (school_id, dedupe_key),
  CHECK ((acknowledged_by IS NULL) = (acknowledged_at IS NULL))
);
CREATE INDEX alerts_school ON alerts (school_id, id);
CREATE INDEX alerts_webhook_due ON alerts (webhook_next_attempt_at) WHERE webhook_state = 'pending';

-- Harmful-content cases. state follows the Report Harmful Content process:
-- triage → referred (illegal: police, IWF or CEOP) and closed, or
-- triage → reported_to_platform → escalated_to_rhc (platform silent past its
-- deadline) → closed; or resolved by the platform → closed.
CREATE TABLE cases (
  id                       serial PRIMARY KEY,
  school_id                int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  opened_by                int NOT NULL REFERENCES users(id),
  opened_at                timestamptz NOT NULL DEFAULT now(),
  harm_type                text NOT NULL CHECK (harm_type IN ('threats', 'impersonation', 'bullying_harassment', 'self_harm_suicide',
                                                               'online_abuse', 'violent_content', 'unwanted_sexual_advances',
                                                               'pornographic_content')),
  location                 text NOT NULL CHECK (length(trim(location)) > 0),
  affected_role            text NOT NULL CHECK (affected_role IN ('pupil', 'staff')),
  affected_age_band        text NOT NULL CHECK (affected_age_band IN ('under_13', '13_to_17', '18_or_over')),
  summary                  text NOT NULL CHECK (length(trim(summary)) > 0),
  state                    text NOT NULL DEFAULT 'triage'
                           CHECK (state IN ('triage', 'referred', 'reported_to_platform', 'escalated_to_rhc', 'closed')),
  -- When the case next needs someone to act; NULL when it waits on nobody.
  deadline_at              timestamptz
);
CREATE INDEX cases_school ON cases (school_id, id);
CREATE INDEX cases_deadline ON cases (school_id, deadline_at) WHERE deadline_at IS NOT NULL;

CREATE TABLE case_events (
  id          bigserial PRIMARY KEY,
  case_id     int NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_user_id int NOT NULL REFERENCES users(id),
  actor_username text NOT NULL,
  kind        text NOT NULL,
  -- State after the event.
  state       text NOT NULL,
  detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_events_case ON case_events (case_id, id);

-- Evidence: a URL, a description, or a screenshot (PNG or JPEG, checked by
-- its signature, size-limited by the route) kept in the database with the case.
CREATE TABLE case_evidence (
  id            serial PRIMARY KEY,
  case_id       int NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
  added_by      int NOT NULL REFERENCES users(id),
  added_at      timestamptz NOT NULL DEFAULT now(),
  kind          text NOT NULL CHECK (kind IN ('url', 'description', 'screenshot')),
  text          text,
  media_type    text CHECK (media_type IN ('image/png', 'image/jpeg')),
  content       bytea,
  sha256        bytea CHECK (length(sha256) = 32),
  CHECK ((kind = 'screenshot') = (content IS NOT NULL AND media_type IS NOT NULL AND sha256 IS NOT NULL)),
  CHECK ((kind = 'screenshot') = (text IS NULL))
);
CREATE INDEX case_evidence_case ON case_evidence (case_id, id);
