-- Investigations end early: who closed one, when and why. decided_by and
-- decided_at stay the governors' approval or refusal, so closing never
-- overwrites who approved.
ALTER TABLE investigations
  ADD COLUMN closed_by   int REFERENCES users(id),
  ADD COLUMN closed_at   timestamptz,
  ADD COLUMN close_note  text,
  ADD CONSTRAINT investigations_closed_by_and_at CHECK ((closed_by IS NULL) = (closed_at IS NULL)),
  ADD CONSTRAINT investigations_closed_status CHECK ((status = 'closed') = (closed_at IS NOT NULL)),
  ADD CONSTRAINT investigations_expiry_after_request CHECK (expires_at > requested_at);

