-- Email delivery of alerts (SMTP_URL, ALERT_EMAIL_FROM, ALERT_EMAIL_TO), kept
-- on the alert beside the webhook's: none (email not configured when the
-- alert was raised), pending, delivered, failed (gave up).
ALTER TABLE alerts
  ADD COLUMN email_state           text NOT NULL DEFAULT 'none' CHECK (email_state IN ('none', 'pending', 'delivered', 'failed')),
  ADD COLUMN email_attempts        int NOT NULL DEFAULT 0,
  ADD COLUMN email_next_attempt_at timestamptz,
  ADD COLUMN email_last_error      text,
  ADD COLUMN email_delivered_at    timestamptz;
CREATE INDEX alerts_email_due ON alerts (email_next_attempt_at) WHERE email_state = 'pending';
