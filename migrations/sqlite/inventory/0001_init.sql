-- Inventory service schema (SQLite). Keep in step with migrations/postgres/inventory.

-- One stock row per product. The invariant available + reserved = total (all >= 0) is enforced
-- here and kept by every UPDATE (each moves units between columns in one statement).
CREATE TABLE stock (
    product_id         BLOB        PRIMARY KEY,
    sku                TEXT        NOT NULL,
    available_quantity BIGINT      NOT NULL CHECK (available_quantity >= 0),
    reserved_quantity  BIGINT      NOT NULL DEFAULT 0 CHECK (reserved_quantity >= 0),
    total_quantity     BIGINT      NOT NULL CHECK (total_quantity >= 0),
    reorder_level      BIGINT      NOT NULL DEFAULT 10 CHECK (reorder_level >= 0),
    reorder_quantity   BIGINT      NOT NULL DEFAULT 50 CHECK (reorder_quantity >= 0),
    created_at         TEXT        NOT NULL,
    updated_at         TEXT        NOT NULL,
    CONSTRAINT stock_balance CHECK (available_quantity + reserved_quantity = total_quantity)
);
CREATE INDEX stock_sku_idx ON stock (sku);

-- One reservation per order (the idempotency key of reserve/commit/release).
CREATE TABLE reservations (
    id         BLOB        PRIMARY KEY,
    order_id   BLOB        NOT NULL,
    status     TEXT        NOT NULL CHECK (status IN ('ACTIVE', 'COMMITTED', 'RELEASED', 'EXPIRED')),
    reason     TEXT,
    expires_at TEXT        NOT NULL,
    created_at TEXT        NOT NULL,
    updated_at TEXT        NOT NULL,
    CONSTRAINT reservations_order_id_key UNIQUE (order_id)
);
CREATE INDEX reservations_active_expiry_idx ON reservations (expires_at) WHERE status = 'ACTIVE';

CREATE TABLE reservation_items (
    reservation_id BLOB   NOT NULL REFERENCES reservations (id),
    product_id     BLOB   NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, product_id)
);

-- The audit trail: one row per stock movement, written in the movement's transaction.
CREATE TABLE stock_transactions (
    id                 BLOB        PRIMARY KEY,
    product_id         BLOB        NOT NULL,
    type               TEXT        NOT NULL CHECK (type IN ('PURCHASE', 'SALE', 'RETURN', 'DAMAGE',
                                       'ADJUSTMENT', 'RESERVATION', 'RELEASE', 'COMMIT', 'EXPIRY')),
    quantity           BIGINT      NOT NULL,
    available_after    BIGINT      NOT NULL,
    reserved_after     BIGINT      NOT NULL,
    total_after        BIGINT      NOT NULL,
    reference          TEXT,
    reason             TEXT,
    actor              TEXT        NOT NULL,
    created_at         TEXT        NOT NULL
);
CREATE INDEX stock_transactions_product_idx ON stock_transactions (product_id, created_at, id);

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
