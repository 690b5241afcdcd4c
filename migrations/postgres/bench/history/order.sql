-- scripts/bench: :orders paid orders of history in the order database, written with SQL rather
-- than through the API (ids are md5-derived, times lie in the past). The outbox rows are
-- written pending and then deleted, as the relay deletes what it published (ADR 0018).
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE h AS
SELECT g, md5('hist-order-' || g)::uuid AS id, md5('hist-user-' || (g % 1000))::uuid AS user_id,
       md5('hist-product-' || (g % 600))::uuid AS product_id,
       now() - make_interval(secs => (:orders - g) * 0.5 + 86400) AS at
FROM generate_series(1, :orders) g;

INSERT INTO orders (id, user_id, status, currency, subtotal, shipping_cost, tax, total, shipping_method,
    shipping_address, customer_email, notes, idempotency_key, payment_id, payment_status, refunded_amount,
    reservation_expires_at, paid_at, created_at, updated_at, charge_id)
SELECT id, user_id, 'PAID', 'USD', 4999, 0, 0, 4999, 'standard',
    '{"name":"Ada Lovelace","line1":"12 Analytical Row","city":"Springfield","postalCode":"12345","country":"US"}',
    'hist-' || g || '@example.com', NULL, 'checkout:' || md5('hist-key-' || g), md5('hist-payment-' || g)::uuid,
    'CAPTURED', 0, at + interval '15 minutes', at, at, at, 'ch_hist_' || g
FROM h;
INSERT INTO order_items (order_id, line_no, product_id, sku, name, unit_price, quantity, line_total)
SELECT id, 0, product_id, 'SKU-HIST', 'History product', 4999, 1, 4999 FROM h;
INSERT INTO order_status_history (id, order_id, from_status, to_status, actor, reason, at)
SELECT md5('hist-osh-' || s || '-' || g)::uuid, id, f, t, a, r, at
FROM h, (VALUES (1, NULL, 'PENDING', 'user', 'order placed'), (2, 'PENDING', 'AWAITING_PAYMENT', 'user', 'stock reserved'),
             (3, 'AWAITING_PAYMENT', 'PAID', 'event:payment.authorized', 'payment authorized')) v(s, f, t, a, r);
INSERT INTO shipments (id, order_id, status, method, created_at, updated_at)
SELECT md5('hist-ship-' || g)::uuid, id, 'READY', 'standard', at, at FROM h;
INSERT INTO idempotency_keys (scope, idem_key, fingerprint, status_code, response, created_at_ms)
SELECT user_id || ':checkout', md5('hist-key-' || g), md5('fp' || g), 201, '{"id":"' || id || '"}',
    (extract(epoch FROM at) * 1000)::bigint FROM h;
INSERT INTO outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
SELECT md5('hist-oev-' || s || '-' || g)::uuid, t, 'orders', id::text,
    '{"specversion":"1.0","id":"' || md5('hist-oev-' || s || '-' || g)::uuid || '","source":"/shop/order","type":"' || t
    || '","subject":"' || id || '","datacontenttype":"application/json","data":{"orderId":"' || id || '","userId":"'
    || user_id || '","total":{"amount":4999,"currency":"USD"},"items":[{"productId":"' || product_id || '","quantity":1}]}}',
    (extract(epoch FROM at) * 1000)::bigint
FROM h, (VALUES (1, 'order.status_changed'), (2, 'order.placed'), (3, 'order.status_changed'), (4, 'order.confirmed')) v(s, t)
ORDER BY g, s;
DELETE FROM outbox WHERE event_id IN
    (SELECT md5('hist-oev-' || s || '-' || g)::uuid FROM h, generate_series(1, 4) s);
INSERT INTO inbox (consumer_group, event_id, processed_at_ms)
SELECT 'order', md5('hist-pev-' || s || '-' || g)::uuid, (extract(epoch FROM at) * 1000)::bigint
FROM h, generate_series(1, 2) s;
COMMIT;
