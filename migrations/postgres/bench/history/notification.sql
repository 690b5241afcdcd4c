-- scripts/bench: the notifications of :orders orders of history (see order.sql).
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE h AS
SELECT g, md5('hist-order-' || g)::uuid AS order_id, md5('hist-user-' || (g % 1000))::uuid AS user_id,
       now() - make_interval(secs => (:orders - g) * 0.5 + 86400) AS at
FROM generate_series(1, :orders) g;
INSERT INTO contacts (user_id, email, name, updated_at)
SELECT DISTINCT ON (user_id) user_id, 'hist-' || g || '@example.com', 'Ada Lovelace', at FROM h ORDER BY user_id, g
ON CONFLICT DO NOTHING;
INSERT INTO known_orders (order_id, user_id) SELECT order_id, user_id FROM h;
INSERT INTO notifications (id, event_id, event_type, user_id, order_id, recipient, notification_type, channel, subject,
    content, html, status, retry_count, next_attempt_at, created_at, sent_at)
SELECT md5('hist-ntf-' || s || '-' || g)::uuid, md5('hist-oev-' || s || '-' || g)::uuid, t, user_id, order_id,
    'hist-' || g || '@example.com', nt, 'email', 'Your order', 'Thank you for your order.', '<p>Thank you</p>', 'SENT', 0,
    at, at, at
FROM h, (VALUES (2, 'order.placed', 'ORDER_CONFIRMATION'), (4, 'order.confirmed', 'PAYMENT_CONFIRMATION')) v(s, t, nt);
INSERT INTO inbox (consumer_group, event_id, processed_at_ms)
SELECT 'notification', md5('hist-' || e || '-' || g)::uuid, (extract(epoch FROM at) * 1000)::bigint
FROM h, (VALUES ('oev-1'), ('oev-2'), ('oev-3'), ('oev-4'), ('pev-1'), ('pev-2'), ('iev-inventory.reserved'),
             ('iev-inventory.committed')) v(e);
COMMIT;
