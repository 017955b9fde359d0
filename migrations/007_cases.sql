-- Harmful-content cases, as the admin API runs them (admin-api/routes/cases.ts).
-- The process, after the UK Report Harmful Content (SWGfL) guidance:
--   new → triage → referred (illegal: police, IWF or CEOP; the case stops there)
--                → reported_to_platform → resolved (the platform acted)
--                                       → escalated_to_rhc (no action 48 h after the
--                                         platform report) → resolved or closed
-- 006 had no 'new' or 'resolved' state and nowhere to keep the platform, the
-- URLs, or the references of each step; this adds them.
ALTER TABLE cases DROP CONSTRAINT cases_state_check;
ALTER TABLE cases ADD CONSTRAINT cases_state_check
  CHECK (state IN ('new', 'triage', 'referred', 'reported_to_platform', 'escalated_to_rhc', 'resolved', 'closed'));
ALTER TABLE cases ALTER COLUMN state SET DEFAULT 'new';

ALTER TABLE cases
  -- The platform or service the content is on; `location` (006) holds its name.
  ADD COLUMN urls                  text[] NOT NULL DEFAULT '{}',
  -- Triage's decision: NULL until made.
  ADD COLUMN illegal               boolean,
  ADD COLUMN referred_to           text CHECK (referred_to IN ('police', 'iwf', 'ceop')),
  ADD COLUMN referral_reference    text,
  ADD COLUMN referred_at           timestamptz,
  ADD COLUMN platform_reported_at  timestamptz,
  ADD COLUMN platform_reference    text,
  ADD COLUMN rhc_escalated_at      timestamptz,
  ADD COLUMN rhc_reference         text,
  ADD COLUMN outcome               text,
  ADD COLUMN ended_at              timestamptz,
  ADD CONSTRAINT cases_referral_complete CHECK ((state = 'referred') = (referred_to IS NOT NULL AND referral_reference IS NOT NULL)),
  ADD CONSTRAINT cases_escalation_after_report CHECK (rhc_escalated_at IS NULL OR platform_reported_at IS NOT NULL);
