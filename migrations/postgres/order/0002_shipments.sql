-- One shipment per order: a draft (PENDING_PAYMENT) at checkout, READY once paid, then
-- SHIPPED (carrier, tracking number) and DELIVERED, or CANCELLED with the order. See docs/orders.md.
CREATE TABLE shipments (
    id              UUID PRIMARY KEY,
    order_id        UUID NOT NULL UNIQUE REFERENCES orders (id),
    status          TEXT NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'READY', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
    method          TEXT NOT NULL,
    carrier         TEXT,
    tracking_number TEXT,
    shipped_at      TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
