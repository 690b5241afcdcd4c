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
