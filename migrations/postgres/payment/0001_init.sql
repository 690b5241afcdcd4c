-- Payment service schema (PostgreSQL). Keep in step with migrations/sqlite/payment.

-- One row per payment attempt of an order. Money in minor units; `captured_amount` and
-- `refunded_amount` never exceed what was authorised and captured.
CREATE TABLE payments (
    id                  uuid        PRIMARY KEY,
    order_id            uuid        NOT NULL,
    user_id             uuid        NOT NULL,
    amount              BIGINT      NOT NULL CHECK (amount > 0),
    currency            TEXT        NOT NULL,
    status              TEXT        NOT NULL CHECK (status IN ('REQUIRES_PAYMENT_METHOD', 'REQUIRES_CONFIRMATION',
                                        'REQUIRES_ACTION', 'AUTHORIZED', 'CAPTURED', 'PARTIALLY_REFUNDED',
                                        'REFUNDED', 'FAILED', 'CANCELLED')),
    provider            TEXT        NOT NULL CHECK (provider IN ('simulated', 'stripe')),
    provider_payment_id TEXT        NOT NULL,
    client_secret       TEXT,
    captured_amount     BIGINT      NOT NULL DEFAULT 0 CHECK (captured_amount >= 0 AND captured_amount <= amount),
    refunded_amount     BIGINT      NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0 AND refunded_amount <= captured_amount),
    failure_code        TEXT,
    failure_reason      TEXT,
    -- The provider's `next_action` (JSON text) while the customer must authenticate.
    next_action         TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT payments_provider_payment_id_key UNIQUE (provider_payment_id)
);
-- One order never has two live payments: a new attempt only after FAILED or CANCELLED.
CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id) WHERE status NOT IN ('FAILED', 'CANCELLED');
CREATE INDEX payments_order_idx ON payments (order_id, created_at);

-- Every status change, written in the transaction of the change.
CREATE TABLE payment_status_history (
    id          uuid        PRIMARY KEY,
    payment_id  uuid        NOT NULL REFERENCES payments (id),
    from_status TEXT,
    to_status   TEXT        NOT NULL,
    source      TEXT        NOT NULL CHECK (source IN ('api', 'webhook', 'event', 'sweeper')),
    reason      TEXT,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_status_history_payment_idx ON payment_status_history (payment_id, at);

-- Refunds. A PENDING row reserves its amount while the provider is called.
CREATE TABLE refunds (
    id                 uuid        PRIMARY KEY,
    payment_id         uuid        NOT NULL REFERENCES payments (id),
    amount             BIGINT      NOT NULL CHECK (amount > 0),
    reason             TEXT,
    status             TEXT        NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    provider_refund_id TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    CONSTRAINT refunds_provider_refund_id_key UNIQUE (provider_refund_id)
);
CREATE INDEX refunds_payment_idx ON refunds (payment_id, created_at);

-- Provider webhook events already processed (each is processed once).
CREATE TABLE webhook_events (
    event_id    TEXT        PRIMARY KEY,
    event_type  TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);

-- The simulated provider's own state (it survives restarts): intents, refunds, answers per
-- idempotency key, and the webhooks it sends to this service.
CREATE TABLE simulated_intents (
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

CREATE TABLE simulated_refunds (
    id         TEXT        PRIMARY KEY,
    intent_id  TEXT        NOT NULL REFERENCES simulated_intents (id),
    amount     BIGINT      NOT NULL CHECK (amount > 0),
    metadata   TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE simulated_requests (
    idempotency_key TEXT        PRIMARY KEY,
    operation       TEXT        NOT NULL,
    fingerprint     TEXT        NOT NULL,
    answer          TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE simulated_webhooks (
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
CREATE INDEX simulated_webhooks_due_idx ON simulated_webhooks (next_attempt_at) WHERE delivered_at IS NULL;

-- kit::idempotency (Idempotency-Key of POST /payments/intent and /payments/{id}/refund).
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER,
    response TEXT,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

-- kit::events outbox and inbox (PostgreSQL). Include verbatim in the service's first migration.
-- Times are epoch milliseconds, the same representation as on SQLite.
CREATE TABLE IF NOT EXISTS outbox (
    seq             BIGSERIAL PRIMARY KEY,
    event_id        UUID NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    topic           TEXT NOT NULL,
    message_key     TEXT NOT NULL,
    envelope        TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    sent_at_ms      BIGINT
);
CREATE INDEX IF NOT EXISTS outbox_pending_seq ON outbox (seq) WHERE sent_at_ms IS NULL;
CREATE INDEX IF NOT EXISTS outbox_pending_key ON outbox (message_key, seq) WHERE sent_at_ms IS NULL;
CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_at_ms) WHERE sent_at_ms IS NOT NULL;

-- Wakes the relay (LISTEN shop_outbox) when a transaction that wrote events commits.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shop_outbox', '');
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE IF NOT EXISTS inbox (
    consumer_group  TEXT NOT NULL,
    event_id        UUID NOT NULL,
    processed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);
