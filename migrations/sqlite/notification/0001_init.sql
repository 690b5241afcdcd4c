-- Notification service (SQLite). See docs/notifications.md.

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

-- One message on one channel. Idempotent per (event, channel): a redelivered event inserts nothing.
CREATE TABLE notifications (
    id                BLOB PRIMARY KEY,
    event_id          BLOB NOT NULL,
    event_type        TEXT NOT NULL,
    user_id           BLOB,
    order_id          BLOB,
    recipient         TEXT NOT NULL,
    notification_type TEXT NOT NULL,
    channel           TEXT NOT NULL,
    subject           TEXT NOT NULL,
    content           TEXT NOT NULL,
    html              TEXT,
    status            TEXT NOT NULL,
    retry_count       INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    next_attempt_at   TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    sent_at           TEXT,
    CONSTRAINT notifications_event_channel UNIQUE (event_id, channel)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX notifications_user ON notifications (user_id, created_at);
CREATE INDEX notifications_created ON notifications (created_at);

CREATE TABLE contacts (
    user_id    BLOB PRIMARY KEY,
    email      TEXT,
    name       TEXT,
    phone      TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE known_orders (
    order_id BLOB PRIMARY KEY,
    user_id  BLOB NOT NULL
);

CREATE TABLE shipments (
    shipment_id     BLOB PRIMARY KEY,
    order_id        BLOB NOT NULL,
    carrier         TEXT NOT NULL,
    tracking_number TEXT NOT NULL
);
CREATE INDEX shipments_order ON shipments (order_id);
