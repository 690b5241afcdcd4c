-- Order service (PostgreSQL). See docs/orders.md.

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

CREATE TABLE orders (
    id                     UUID PRIMARY KEY,
    user_id                UUID NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('PENDING', 'AWAITING_PAYMENT', 'PAID', 'PROCESSING',
                               'SHIPPED', 'DELIVERED', 'CANCELLED', 'FAILED')),
    currency               TEXT NOT NULL,
    subtotal               BIGINT NOT NULL CHECK (subtotal >= 0),
    shipping_cost          BIGINT NOT NULL CHECK (shipping_cost >= 0),
    tax                    BIGINT NOT NULL CHECK (tax >= 0),
    total                  BIGINT NOT NULL CHECK (total >= 0),
    shipping_method        TEXT NOT NULL,
    shipping_address       TEXT NOT NULL,
    customer_email         TEXT,
    notes                  TEXT,
    idempotency_key        TEXT,
    payment_id             UUID,
    payment_status         TEXT,
    refunded_amount        BIGINT NOT NULL DEFAULT 0,
    reservation_expires_at TIMESTAMPTZ,
    failure_reason         TEXT,
    carrier                TEXT,
    tracking_number        TEXT,
    paid_at                TIMESTAMPTZ,
    shipped_at             TIMESTAMPTZ,
    delivered_at           TIMESTAMPTZ,
    cancelled_at           TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
-- One order per (customer, Idempotency-Key): a replayed checkout finds the order it made.
CREATE UNIQUE INDEX orders_idempotency ON orders (user_id, idempotency_key);
CREATE INDEX orders_user_created ON orders (user_id, created_at);
CREATE INDEX orders_status_created ON orders (status, created_at);

CREATE TABLE order_items (
    order_id    UUID NOT NULL REFERENCES orders (id),
    line_no     INTEGER NOT NULL,
    product_id  UUID NOT NULL,
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    unit_price  BIGINT NOT NULL CHECK (unit_price >= 0),
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    line_total  BIGINT NOT NULL CHECK (line_total >= 0),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_status_history (
    id          UUID PRIMARY KEY,
    order_id    UUID NOT NULL REFERENCES orders (id),
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX order_status_history_order ON order_status_history (order_id, at);

-- kit::idempotency
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER,
    response TEXT,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
