-- Security emails (reset and verification links, ADR 0016). Keep in step with
-- migrations/postgres/notification/0002_security_mail.sql.
ALTER TABLE notifications ADD COLUMN secret TEXT;
ALTER TABLE notifications ADD COLUMN secret_expires_at TEXT;
CREATE INDEX notifications_secret ON notifications (secret_expires_at) WHERE secret IS NOT NULL;
