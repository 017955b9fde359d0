-- Running the filter from the admin API.
--
-- A group rule is a decision like an override, and the school's record of
-- "what is blocked or allowed and why" (the DfE filtering record) lists both,
-- so rules now carry the same who, why and when. Rules that predate this
-- (the default policy a school is seeded with) say so.
ALTER TABLE group_rules
  ADD COLUMN reason      text NOT NULL DEFAULT 'default policy for a new school',
  ADD COLUMN decided_by  text NOT NULL DEFAULT 'portcullis',
  ADD COLUMN decided_at  timestamptz NOT NULL DEFAULT now();
