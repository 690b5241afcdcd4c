-- scripts/bench: :orders committed reservations of history in the inventory database (see order.sql).
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE h AS
SELECT g, md5('hist-order-' || g)::uuid AS order_id, md5('hist-res-' || g)::uuid AS id,
       md5('hist-product-' || (g % 600))::uuid AS product_id,
       now() - make_interval(secs => (:orders - g) * 0.5 + 86400) AS at
FROM generate_series(1, :orders) g;
INSERT INTO reservations (id, order_id, status, reason, expires_at, created_at, updated_at)
SELECT id, order_id, 'COMMITTED', NULL, at + interval '15 minutes', at, at FROM h;
INSERT INTO reservation_items (reservation_id, product_id, quantity) SELECT id, product_id, 1 FROM h;
INSERT INTO stock_transactions (id, product_id, type, quantity, available_after, reserved_after, total_after,
    reference, reason, actor, created_at)
SELECT md5('hist-stx-' || t || '-' || g)::uuid, product_id, t, -1, 100, 0, 100, order_id::text, NULL, 'service', at
FROM h, (VALUES ('RESERVATION'), ('COMMIT')) v(t);
INSERT INTO outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
SELECT md5('hist-iev-' || t || '-' || g)::uuid, t, 'inventory', order_id::text,
    '{"specversion":"1.0","id":"' || md5('hist-iev-' || t || '-' || g)::uuid || '","source":"/shop/inventory","type":"'
    || t || '","subject":"' || order_id || '","datacontenttype":"application/json","data":{"orderId":"' || order_id
    || '","reservationId":"' || id || '","items":[{"productId":"' || product_id || '","quantity":1}]}}',
    (extract(epoch FROM at) * 1000)::bigint
FROM h, (VALUES ('inventory.reserved'), ('inventory.committed')) v(t)
ORDER BY g, t DESC;
DELETE FROM outbox WHERE event_id IN
    (SELECT md5('hist-iev-' || t || '-' || g)::uuid FROM h, (VALUES ('inventory.reserved'), ('inventory.committed')) v(t));
INSERT INTO inbox (consumer_group, event_id, processed_at_ms)
SELECT 'inventory', md5('hist-' || e || '-' || g)::uuid, (extract(epoch FROM at) * 1000)::bigint
FROM h, (VALUES ('oev-2'), ('pev-1'), ('pev-2')) v(e);
COMMIT;
