-- One shipment per order: a draft (PENDING_PAYMENT) at checkout, READY once paid, then
-- SHIPPED (carrier, tracking number) and DELIVERED, or CANCELLED with the order. See docs/orders.md.
CREATE TABLE shipments (
    id              BLOB PRIMARY KEY,
    order_id        BLOB NOT NULL UNIQUE REFERENCES orders (id),
    status          TEXT NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'READY', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
    method          TEXT NOT NULL,
    carrier         TEXT,
    tracking_number TEXT,
    shipped_at      TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
