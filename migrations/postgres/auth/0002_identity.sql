-- Self-service and revocation (docs/auth.md). Keep in step with migrations/sqlite/auth/0002_identity.sql.

-- When the owner proved the address is theirs (a verification or reset mail). Accounts that
-- existed before verification was introduced are grandfathered as verified.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;
UPDATE users SET email_verified_at = created_at;

-- Access tokens issued at or before this instant (ms since the epoch) are refused everywhere
-- (ADR 0016); the revocation feed reads the recent ones.
ALTER TABLE users ADD COLUMN tokens_valid_after_ms BIGINT;
CREATE INDEX users_tokens_valid_after_idx ON users (tokens_valid_after_ms);

-- When the session (the family's first token) began: refresh stops at its absolute lifetime.
-- NULL for tokens issued before this migration: their own created_at stands in.
ALTER TABLE refresh_tokens ADD COLUMN session_started_at TIMESTAMPTZ;

-- Single-use tokens mailed to the owner of an address (password reset, email verification),
-- stored as the hex SHA-256 of the token; times in ms since the epoch (compared in SQL on
-- both backends).
CREATE TABLE account_tokens (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- `password_reset` or `email_verification`.
    purpose        TEXT NOT NULL,
    token_hash     TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    used_at_ms     BIGINT,
    CONSTRAINT account_tokens_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_idx ON account_tokens (expires_at_ms);
