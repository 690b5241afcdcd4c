-- Cart service (SQL store). One row per cart (the per-cart write lock and its expiry) and one
-- row per line with a snapshot of the product taken when the line was added.
-- product_id holds sqlx's 16-byte uuid BLOB. Times are kit::db::Timestamp text (fixed-width UTC), so text order is time order.
CREATE TABLE carts (
    cart_id    TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE INDEX carts_expires_at ON carts (expires_at);

CREATE TABLE cart_lines (
    cart_id     TEXT NOT NULL,
    product_id  BLOB NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    name        TEXT NOT NULL,
    sku         TEXT NOT NULL,
    unit_amount BIGINT NOT NULL,
    currency    TEXT NOT NULL,
    image       TEXT,
    added_at    TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);
CREATE INDEX cart_lines_expires_at ON cart_lines (expires_at);
