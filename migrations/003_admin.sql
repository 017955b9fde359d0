-- The admin API: sign-in sessions, API tokens, the audit chain and
-- investigations into an individual's browsing history.

-- id is the SHA-256 of the random token in the session cookie: a copy of this
-- table cannot be replayed as cookies. The CSRF token is derived from the
-- cookie's token (see admin-api/auth/csrf.ts), so nothing more is stored.
CREATE TABLE sessions (
  id            bytea PRIMARY KEY CHECK (length(id) = 32),
  school_id     int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  user_id       int NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Bearer tokens for scripts and scrapers. token_hash is the SHA-256 of the
-- token, which is shown once when it is made and never stored.
CREATE TABLE api_tokens (
  id            serial PRIMARY KEY,
  school_id     int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  user_id       int NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name          text NOT NULL CHECK (length(trim(name)) > 0),
  token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  last_used_at  timestamptz,
  revoked_at    timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Every admin change and every read of someone's history, one row each,
-- chained per school: hash = SHA-256(prev_hash || canonical JSON of the row)
-- (admin-api/audit.ts). actor_user_id has no foreign key on purpose: a
-- cascade or SET NULL would be an UPDATE or DELETE, which this table refuses.
CREATE TABLE audit_log (
  id              bigserial PRIMARY KEY,
  school_id       int NOT NULL REFERENCES schools(id),
  at              timestamptz NOT NULL,
  actor_user_id   int,
  actor_username  text NOT NULL,
  action          text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
  target          text NOT NULL,
  detail          jsonb NOT NULL DEFAULT '{}',
  prev_hash       bytea CHECK (length(prev_hash) = 32),
  hash            bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_log_school ON audit_log (school_id, id);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

-- A request to read one person's browsing history for a time window. Routes
-- come later; the window and the decision are recorded here.
CREATE TABLE investigations (
  id               serial PRIMARY KEY,
  school_id        int NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
  subject_user_id  int NOT NULL REFERENCES users(id),
  reason           text NOT NULL CHECK (length(trim(reason)) > 0),
  requested_by     int NOT NULL REFERENCES users(id),
  requested_at     timestamptz NOT NULL DEFAULT now(),
  window_start     timestamptz NOT NULL,
  window_end       timestamptz NOT NULL,
  -- After this the approval no longer grants access to the history.
  expires_at       timestamptz NOT NULL,
  status           text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'approved', 'refused', 'closed')),
  decided_by       int REFERENCES users(id),
  decided_at       timestamptz,
  decision_note    text,
  CHECK (window_end > window_start),
  CHECK ((decided_by IS NULL) = (decided_at IS NULL))
);
CREATE INDEX investigations_school ON investigations (school_id, status);
CREATE INDEX investigations_subject ON investigations (subject_user_id);
