-- The PostgreSQL ceiling of scripts/bench: one checkout's write set (every row a checkout to PAID
-- inserts, updates and deletes, the saga's events and their consumers included), in ONE
-- transaction, so that pgbench measures what the durable state of a checkout costs the database
-- alone: pgbench -n -c 8 -f checkout.sql -D products=N (after setup.sql). It runs against every
-- service's migrations applied in one database, one schema per service, so it breaks, and must be
-- updated, when a table it writes changes. Keep it equal to what the services write: scripts/bench
-- prints the rows a checkout inserts, updates and deletes next to the ceiling.
\set p random(1, :products)
\set n random(1, 2000000000)
BEGIN;
-- cart: add the line; emptied at checkout
INSERT INTO cart.carts (cart_id, expires_at) VALUES ('user:' || :n, now() + interval '30 days')
    ON CONFLICT (cart_id) DO UPDATE SET expires_at = excluded.expires_at;
INSERT INTO cart.cart_lines (cart_id, product_id, quantity, name, sku, unit_amount, currency, image, added_at, expires_at)
    VALUES ('user:' || :n, md5('bench-product-' || :p)::uuid, 1, 'Bench product', 'BENCH-' || :p, 4999, 'USD', NULL, now(), now() + interval '30 days');
UPDATE cart.cart_lines SET expires_at = now() + interval '30 days' WHERE cart_id = 'user:' || :n;
DELETE FROM cart.cart_lines WHERE cart_id = 'user:' || :n;
DELETE FROM cart.carts WHERE cart_id = 'user:' || :n;
-- order: the idempotency key, the order, its line, history and shipment, two transitions, the payment status
INSERT INTO "order".idempotency_keys (scope, idem_key, fingerprint, created_at_ms) VALUES (:n || ':checkout', md5(:n::text), md5('fp' || :n), 0);
INSERT INTO "order".orders (id, user_id, status, currency, subtotal, shipping_cost, tax, total, shipping_method, shipping_address,
    customer_email, notes, idempotency_key, created_at, updated_at)
    VALUES (md5('o' || :n)::uuid, md5('u' || :n)::uuid, 'PENDING', 'USD', 4999, 0, 0, 4999, 'standard',
    '{"name":"Ada Lovelace","line1":"12 Analytical Row","city":"Springfield","postalCode":"12345","country":"US"}',
    'bench@example.com', NULL, 'checkout:' || md5(:n::text), now(), now());
INSERT INTO "order".order_items (order_id, line_no, product_id, sku, name, unit_price, quantity, line_total)
    VALUES (md5('o' || :n)::uuid, 0, md5('bench-product-' || :p)::uuid, 'BENCH-' || :p, 'Bench product', 4999, 1, 4999);
INSERT INTO "order".order_status_history (id, order_id, from_status, to_status, actor, reason, at)
    VALUES (md5('h1' || :n)::uuid, md5('o' || :n)::uuid, NULL, 'PENDING', 'user:x', 'order placed', now());
INSERT INTO "order".shipments (id, order_id, status, method, created_at, updated_at)
    VALUES (md5('s' || :n)::uuid, md5('o' || :n)::uuid, 'PENDING_PAYMENT', 'standard', now(), now());
-- inventory: the reservation (the oversell guard is the conditional update)
INSERT INTO inventory.reservations (id, order_id, status, expires_at, created_at, updated_at)
    VALUES (md5('r' || :n)::uuid, md5('o' || :n)::uuid, 'ACTIVE', now() + interval '15 minutes', now(), now());
UPDATE inventory.stock SET available_quantity = available_quantity - 1, reserved_quantity = reserved_quantity + 1, updated_at = now()
    WHERE product_id = md5('bench-product-' || :p)::uuid AND available_quantity >= 1;
INSERT INTO inventory.reservation_items (reservation_id, product_id, quantity) VALUES (md5('r' || :n)::uuid, md5('bench-product-' || :p)::uuid, 1);
INSERT INTO inventory.stock_transactions (id, product_id, type, quantity, available_after, reserved_after, total_after, reference, actor, created_at)
    VALUES (md5('t1' || :n)::uuid, md5('bench-product-' || :p)::uuid, 'RESERVATION', -1, 0, 1, 1, 'o', 'service', now());
INSERT INTO inventory.outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
    VALUES (md5('ie1' || :n)::uuid, 'inventory.reserved', 'inventory', md5('o' || :n), repeat('x', 420), 0);
-- order: AWAITING_PAYMENT with order.placed, the idempotent answer
UPDATE "order".orders SET status = 'AWAITING_PAYMENT', updated_at = now(), reservation_expires_at = now() WHERE id = md5('o' || :n)::uuid;
INSERT INTO "order".order_status_history (id, order_id, from_status, to_status, actor, reason, at)
    VALUES (md5('h2' || :n)::uuid, md5('o' || :n)::uuid, 'PENDING', 'AWAITING_PAYMENT', 'user:x', 'stock reserved', now());
UPDATE "order".shipments SET status = 'PENDING_PAYMENT', updated_at = now() WHERE order_id = md5('o' || :n)::uuid;
INSERT INTO "order".outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
    VALUES (md5('oe1' || :n)::uuid, 'order.status_changed', 'orders', md5('o' || :n), repeat('x', 380), 0),
           (md5('oe2' || :n)::uuid, 'order.placed', 'orders', md5('o' || :n), repeat('x', 620), 0);
UPDATE "order".idempotency_keys SET status_code = 201, response = repeat('x', 1400) WHERE scope = :n || ':checkout' AND idem_key = md5(:n::text);
-- payment: the intent (provider state, its webhook queue, the payment row), confirmed: AUTHORIZED
INSERT INTO payment.idempotency_keys (scope, idem_key, fingerprint, created_at_ms) VALUES (:n || ':intent', md5(:n::text), md5('fp' || :n), 0);
INSERT INTO payment.simulated_requests (idempotency_key, operation, fingerprint, answer, created_at) VALUES ('c' || :n, 'create', 'f', '', now());
INSERT INTO payment.simulated_intents (id, order_id, amount, currency, status, client_secret, created_at, updated_at)
    VALUES ('pi_' || :n, md5('o' || :n), 4999, 'usd', 'requires_payment_method', 'pi_' || :n || '_secret', now(), now());
INSERT INTO payment.simulated_webhooks (id, event_id, event_type, payload, attempts, next_attempt_at, created_at)
    VALUES (md5('w1' || :n)::uuid, 'evt1_' || :n, 'payment_intent.created', repeat('x', 900), 0, now(), now());
UPDATE payment.simulated_requests SET answer = repeat('x', 700) WHERE idempotency_key = 'c' || :n;
INSERT INTO payment.payments (id, order_id, user_id, amount, currency, status, provider, provider_payment_id, client_secret, created_at, updated_at)
    VALUES (md5('p' || :n)::uuid, md5('o' || :n)::uuid, md5('u' || :n)::uuid, 4999, 'USD', 'REQUIRES_PAYMENT_METHOD', 'simulated', 'pi_' || :n, 'pi_' || :n || '_secret', now(), now());
INSERT INTO payment.payment_status_history (id, payment_id, from_status, to_status, source, reason, at)
    VALUES (md5('ph1' || :n)::uuid, md5('p' || :n)::uuid, NULL, 'REQUIRES_PAYMENT_METHOD', 'api', 'created', now());
UPDATE payment.idempotency_keys SET status_code = 201, response = repeat('x', 700) WHERE scope = :n || ':intent' AND idem_key = md5(:n::text);
INSERT INTO payment.simulated_requests (idempotency_key, operation, fingerprint, answer, created_at) VALUES ('f' || :n, 'confirm', 'f', '', now());
UPDATE payment.simulated_intents SET status = 'requires_capture', payment_method = 'pm_card_visa', amount_capturable = 4999, updated_at = now() WHERE id = 'pi_' || :n;
INSERT INTO payment.simulated_webhooks (id, event_id, event_type, payload, attempts, next_attempt_at, created_at)
    VALUES (md5('w2' || :n)::uuid, 'evt2_' || :n, 'payment_intent.amount_capturable_updated', repeat('x', 900), 0, now(), now());
UPDATE payment.simulated_requests SET answer = repeat('x', 700) WHERE idempotency_key = 'f' || :n;
UPDATE payment.payments SET status = 'AUTHORIZED', updated_at = now(), authorized_at = now() WHERE id = md5('p' || :n)::uuid;
INSERT INTO payment.payment_status_history (id, payment_id, from_status, to_status, source, reason, at)
    VALUES (md5('ph2' || :n)::uuid, md5('p' || :n)::uuid, 'REQUIRES_PAYMENT_METHOD', 'AUTHORIZED', 'api', 'confirmed', now());
INSERT INTO payment.outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
    VALUES (md5('pe1' || :n)::uuid, 'payment.authorized', 'payments', md5('o' || :n), repeat('x', 450), 0);
-- order: payment.authorized → commit the stock, PAID with order.confirmed
UPDATE inventory.reservations SET status = 'COMMITTED', updated_at = now() WHERE order_id = md5('o' || :n)::uuid AND status = 'ACTIVE';
UPDATE inventory.stock SET reserved_quantity = reserved_quantity - 1, total_quantity = total_quantity - 1, updated_at = now()
    WHERE product_id = md5('bench-product-' || :p)::uuid AND reserved_quantity >= 1;
INSERT INTO inventory.stock_transactions (id, product_id, type, quantity, available_after, reserved_after, total_after, reference, actor, created_at)
    VALUES (md5('t2' || :n)::uuid, md5('bench-product-' || :p)::uuid, 'COMMIT', -1, 0, 0, 0, 'o', 'service', now());
INSERT INTO inventory.outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
    VALUES (md5('ie2' || :n)::uuid, 'inventory.committed', 'inventory', md5('o' || :n), repeat('x', 330), 0);
UPDATE "order".orders SET status = 'PAID', updated_at = now(), paid_at = now(), payment_id = md5('p' || :n)::uuid, payment_status = 'AUTHORIZED' WHERE id = md5('o' || :n)::uuid;
INSERT INTO "order".order_status_history (id, order_id, from_status, to_status, actor, reason, at)
    VALUES (md5('h3' || :n)::uuid, md5('o' || :n)::uuid, 'AWAITING_PAYMENT', 'PAID', 'event:payment.authorized', 'payment authorized', now());
UPDATE "order".shipments SET status = 'READY', updated_at = now() WHERE order_id = md5('o' || :n)::uuid;
INSERT INTO "order".outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
    VALUES (md5('oe3' || :n)::uuid, 'order.status_changed', 'orders', md5('o' || :n), repeat('x', 400), 0),
           (md5('oe4' || :n)::uuid, 'order.confirmed', 'orders', md5('o' || :n), repeat('x', 330), 0);
-- payment: order.confirmed → capture (provider state, webhook queue), payment.captured
INSERT INTO payment.inbox (consumer_group, event_id, processed_at_ms) VALUES ('payment', md5('oe4' || :n)::uuid, 0);
INSERT INTO payment.simulated_requests (idempotency_key, operation, fingerprint, answer, created_at) VALUES ('k' || :n, 'capture', 'f', '', now());
UPDATE payment.simulated_intents SET status = 'succeeded', amount_capturable = 0, amount_received = 4999, updated_at = now() WHERE id = 'pi_' || :n;
INSERT INTO payment.simulated_webhooks (id, event_id, event_type, payload, attempts, next_attempt_at, created_at)
    VALUES (md5('w3' || :n)::uuid, 'evt3_' || :n, 'payment_intent.succeeded', repeat('x', 900), 0, now(), now());
UPDATE payment.simulated_requests SET answer = repeat('x', 700) WHERE idempotency_key = 'k' || :n;
UPDATE payment.payments SET status = 'CAPTURED', captured_amount = 4999, updated_at = now() WHERE id = md5('p' || :n)::uuid;
INSERT INTO payment.payment_status_history (id, payment_id, from_status, to_status, source, reason, at)
    VALUES (md5('ph3' || :n)::uuid, md5('p' || :n)::uuid, 'AUTHORIZED', 'CAPTURED', 'event', 'captured', now());
INSERT INTO payment.outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
    VALUES (md5('pe2' || :n)::uuid, 'payment.captured', 'payments', md5('o' || :n), repeat('x', 450), 0);
-- payment: the provider's three webhooks, received once each and marked delivered
INSERT INTO payment.webhook_events (event_id, event_type, received_at)
    VALUES ('evt1_' || :n, 'payment_intent.created', now()), ('evt2_' || :n, 'payment_intent.amount_capturable_updated', now()),
           ('evt3_' || :n, 'payment_intent.succeeded', now());
UPDATE payment.simulated_webhooks SET delivered_at = now(), attempts = attempts + 1 WHERE id IN (md5('w1' || :n)::uuid, md5('w2' || :n)::uuid, md5('w3' || :n)::uuid);
-- order: payment.captured → the payment status
UPDATE "order".orders SET payment_status = 'CAPTURED', updated_at = now() WHERE id = md5('o' || :n)::uuid;
-- inventory: its own consumers (order.placed, payment.authorized, payment.captured: already done)
INSERT INTO inventory.inbox (consumer_group, event_id, processed_at_ms)
    VALUES ('inventory', md5('oe2' || :n)::uuid, 0), ('inventory', md5('pe1' || :n)::uuid, 0), ('inventory', md5('pe2' || :n)::uuid, 0);
-- notification: every event it reads (eight), two emails planned and sent, the customer's contact
INSERT INTO notification.inbox (consumer_group, event_id, processed_at_ms)
    VALUES ('notification', md5('oe1' || :n)::uuid, 0), ('notification', md5('oe2' || :n)::uuid, 0), ('notification', md5('oe3' || :n)::uuid, 0),
           ('notification', md5('oe4' || :n)::uuid, 0), ('notification', md5('pe1' || :n)::uuid, 0), ('notification', md5('pe2' || :n)::uuid, 0),
           ('notification', md5('ie1' || :n)::uuid, 0), ('notification', md5('ie2' || :n)::uuid, 0);
INSERT INTO notification.contacts (user_id, email, name, updated_at) VALUES (md5('u' || :n)::uuid, 'bench@example.com', 'Ada', now())
    ON CONFLICT (user_id) DO UPDATE SET updated_at = excluded.updated_at;
INSERT INTO notification.known_orders (order_id, user_id) VALUES (md5('o' || :n)::uuid, md5('u' || :n)::uuid) ON CONFLICT DO NOTHING;
INSERT INTO notification.notifications (id, event_id, event_type, user_id, order_id, recipient, notification_type, channel, subject,
    content, html, status, retry_count, next_attempt_at, created_at)
    VALUES (md5('n1' || :n)::uuid, md5('oe2' || :n)::uuid, 'order.placed', md5('u' || :n)::uuid, md5('o' || :n)::uuid, 'bench@example.com',
            'ORDER_CONFIRMATION', 'email', 'Your order', repeat('x', 600), repeat('x', 1500), 'PENDING', 0, now(), now()),
           (md5('n2' || :n)::uuid, md5('oe4' || :n)::uuid, 'order.confirmed', md5('u' || :n)::uuid, md5('o' || :n)::uuid, 'bench@example.com',
            'PAYMENT_CONFIRMATION', 'email', 'Payment received', repeat('x', 500), repeat('x', 1300), 'PENDING', 0, now(), now());
UPDATE notification.notifications SET status = 'SENT', sent_at = now() WHERE id IN (md5('n1' || :n)::uuid, md5('n2' || :n)::uuid);
-- every outbox row published: marked sent
UPDATE "order".outbox SET sent_at_ms = 1 WHERE event_id IN (md5('oe1' || :n)::uuid, md5('oe2' || :n)::uuid, md5('oe3' || :n)::uuid, md5('oe4' || :n)::uuid);
UPDATE inventory.outbox SET sent_at_ms = 1 WHERE event_id IN (md5('ie1' || :n)::uuid, md5('ie2' || :n)::uuid);
UPDATE payment.outbox SET sent_at_ms = 1 WHERE event_id IN (md5('pe1' || :n)::uuid, md5('pe2' || :n)::uuid);
COMMIT;
