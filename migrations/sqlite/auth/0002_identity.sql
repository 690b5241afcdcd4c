-- Self-service and revocation (docs/auth.md). Keep in step with migrations/postgres/auth/0002_identity.sql.

ALTER TABLE users ADD COLUMN email_verified_at TEXT;
UPDATE users SET email_verified_at = created_at;

ALTER TABLE users ADD COLUMN tokens_valid_after_ms BIGINT;
CREATE INDEX users_tokens_valid_after_idx ON users (tokens_valid_after_ms);

ALTER TABLE refresh_tokens ADD COLUMN session_started_at TEXT;

CREATE TABLE account_tokens (
    id             BLOB PRIMARY KEY NOT NULL,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose        TEXT NOT NULL,
    token_hash     TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    used_at_ms     BIGINT,
    CONSTRAINT account_tokens_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_idx ON account_tokens (expires_at_ms);
