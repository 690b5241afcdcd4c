-- Auth service schema (PostgreSQL). Keep in step with migrations/sqlite/auth/0001_init.sql.

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    -- Normalised (trimmed, lower-cased) by the service before it reaches the database.
    email          TEXT NOT NULL,
    -- PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash
    password_hash  TEXT NOT NULL,
    first_name     TEXT,
    last_name      TEXT,
    -- JSON text array of role names, e.g. ["admin"] (portable across both backends).
    roles          TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE refresh_tokens (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Every token descending from one login shares a family; reuse revokes the family.
    family_id   UUID NOT NULL,
    -- Hex SHA-256 of the opaque token; the token itself is never stored.
    token_hash  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    -- Set once, when the token is exchanged for a new pair (single use).
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Generated signing keys (embedded mode only: with a configured key nothing is stored here).
CREATE TABLE signing_keys (
    kid              TEXT PRIMARY KEY,
    -- PKCS#8 PEM of the Ed25519 private key.
    private_key_pem  TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
