-- Notification service (PostgreSQL). See docs/notifications.md.

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

-- One message on one channel. Idempotent per (event, channel): a redelivered event inserts nothing.
CREATE TABLE notifications (
    id                UUID PRIMARY KEY,
    event_id          UUID NOT NULL,
    event_type        TEXT NOT NULL,
    user_id           UUID,
    order_id          UUID,
    recipient         TEXT NOT NULL,
    notification_type TEXT NOT NULL,
    channel           TEXT NOT NULL,
    subject           TEXT NOT NULL,
    content           TEXT NOT NULL,
    html              TEXT,
    status            TEXT NOT NULL,
    retry_count       BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT,
    next_attempt_at   TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    sent_at           TIMESTAMPTZ,
    CONSTRAINT notifications_event_channel UNIQUE (event_id, channel)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX notifications_user ON notifications (user_id, created_at);
CREATE INDEX notifications_created ON notifications (created_at);

-- Where to reach a user (learned from events that carry it, or filled by the composer).
CREATE TABLE contacts (
    user_id    UUID PRIMARY KEY,
    email      TEXT,
    name       TEXT,
    phone      TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Order → customer, learned from order events (payment events carry only the order id).
CREATE TABLE known_orders (
    order_id UUID PRIMARY KEY,
    user_id  UUID NOT NULL
);

-- Carrier and tracking number, learned from shipment.shipped (order.shipped carries only the id).
CREATE TABLE shipments (
    shipment_id     UUID PRIMARY KEY,
    order_id        UUID NOT NULL,
    carrier         TEXT NOT NULL,
    tracking_number TEXT NOT NULL
);
CREATE INDEX shipments_order ON shipments (order_id);
