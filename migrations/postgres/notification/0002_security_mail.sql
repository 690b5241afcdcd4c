-- Security emails (reset and verification links, ADR 0016). Keep in step with
-- migrations/sqlite/notification/0002_security_mail.sql.
--
-- The stored content carries a placeholder where the link's token goes; the token itself is
-- kept here only until the message is sent, fails for good, or the link expires.
ALTER TABLE notifications ADD COLUMN secret TEXT;
ALTER TABLE notifications ADD COLUMN secret_expires_at TIMESTAMPTZ;
CREATE INDEX notifications_secret ON notifications (secret_expires_at) WHERE secret IS NOT NULL;
