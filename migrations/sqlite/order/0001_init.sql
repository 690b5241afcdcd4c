-- Order service (SQLite). See docs/orders.md.

-- kit::events outbox and inbox (SQLite). Include verbatim in the service's first migration.
-- Times are epoch milliseconds, the same representation as on PostgreSQL.
CREATE TABLE IF NOT EXISTS outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        BLOB NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    topic           TEXT NOT NULL,
    message_key     TEXT NOT NULL,
    envelope        TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    sent_at_ms      INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending_seq ON outbox (seq) WHERE sent_at_ms IS NULL;
CREATE INDEX IF NOT EXISTS outbox_pending_key ON outbox (message_key, seq) WHERE sent_at_ms IS NULL;
CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (sent_at_ms) WHERE sent_at_ms IS NOT NULL;

CREATE TABLE IF NOT EXISTS inbox (
    consumer_group  TEXT NOT NULL,
    event_id        BLOB NOT NULL,
    processed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);

CREATE TABLE orders (
    id                     BLOB PRIMARY KEY,
    user_id                BLOB NOT NULL,
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
    payment_id             BLOB,
    payment_status         TEXT,
    refunded_amount        BIGINT NOT NULL DEFAULT 0,
    reservation_expires_at TEXT,
    failure_reason         TEXT,
    carrier                TEXT,
    tracking_number        TEXT,
    paid_at                TEXT,
    shipped_at             TEXT,
    delivered_at           TEXT,
    cancelled_at           TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
-- One order per (customer, Idempotency-Key): a replayed checkout finds the order it made.
CREATE UNIQUE INDEX orders_idempotency ON orders (user_id, idempotency_key);
CREATE INDEX orders_user_created ON orders (user_id, created_at);
CREATE INDEX orders_status_created ON orders (status, created_at);

CREATE TABLE order_items (
    order_id    BLOB NOT NULL REFERENCES orders (id),
    line_no     INTEGER NOT NULL,
    product_id  BLOB NOT NULL,
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    unit_price  BIGINT NOT NULL CHECK (unit_price >= 0),
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    line_total  BIGINT NOT NULL CHECK (line_total >= 0),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_status_history (
    id          BLOB PRIMARY KEY,
    order_id    BLOB NOT NULL REFERENCES orders (id),
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT,
    at          TEXT NOT NULL
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
