-- The simulated payment provider's own state (postgres), kept in the payment database but outside
-- the payment service's migrations: production schemas (Stripe) never contain these tables.
-- Applied by the simulator itself, idempotently, before its first use
-- (`SimulatedProvider::ensure_schema`). Intents, refunds, answers per idempotency key, the
-- webhooks it sends to this service and its hosted checkout sessions; it survives restarts.
-- A change here is a new idempotent statement at the end (`ALTER TABLE … ADD COLUMN IF NOT
-- EXISTS` on PostgreSQL; a new table on SQLite), never an edit of an existing one.

CREATE TABLE IF NOT EXISTS simulated_intents (
    id                 TEXT        PRIMARY KEY,
    order_id           TEXT        NOT NULL,
    amount             BIGINT      NOT NULL CHECK (amount > 0),
    currency           TEXT        NOT NULL,
    status             TEXT        NOT NULL,
    client_secret      TEXT        NOT NULL,
    payment_method     TEXT,
    amount_capturable  BIGINT      NOT NULL DEFAULT 0,
    amount_received    BIGINT      NOT NULL DEFAULT 0,
    amount_refunded    BIGINT      NOT NULL DEFAULT 0 CHECK (amount_refunded <= amount_received),
    last_error_code    TEXT,
    last_error_message TEXT,
    next_action        TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS simulated_refunds (
    id         TEXT        PRIMARY KEY,
    intent_id  TEXT        NOT NULL REFERENCES simulated_intents (id),
    amount     BIGINT      NOT NULL CHECK (amount > 0),
    metadata   TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS simulated_requests (
    idempotency_key TEXT        PRIMARY KEY,
    operation       TEXT        NOT NULL,
    fingerprint     TEXT        NOT NULL,
    answer          TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS simulated_webhooks (
    id              uuid        PRIMARY KEY,
    event_id        TEXT        NOT NULL UNIQUE,
    event_type      TEXT        NOT NULL,
    payload         TEXT        NOT NULL,
    attempts        BIGINT      NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS simulated_webhooks_due_idx ON simulated_webhooks (next_attempt_at) WHERE delivered_at IS NULL;

CREATE TABLE IF NOT EXISTS simulated_checkout_sessions (
    id             TEXT        PRIMARY KEY,
    order_id       TEXT        NOT NULL,
    amount         BIGINT      NOT NULL CHECK (amount > 0),
    currency       TEXT        NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN ('open', 'complete', 'expired')),
    payment_status TEXT        NOT NULL,
    success_url    TEXT        NOT NULL,
    cancel_url     TEXT        NOT NULL,
    url            TEXT        NOT NULL,
    payment_intent TEXT        REFERENCES simulated_intents (id),
    expires_at     TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS simulated_checkout_sessions_open_idx ON simulated_checkout_sessions (expires_at) WHERE status = 'open';
