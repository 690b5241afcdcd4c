-- scripts/bench: :orders captured payments of history in the payment database (see order.sql).
\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE h AS
SELECT g, md5('hist-order-' || g)::uuid AS order_id, md5('hist-payment-' || g)::uuid AS id,
       md5('hist-user-' || (g % 1000))::uuid AS user_id, 'pi_hist_' || g AS pi,
       now() - make_interval(secs => (:orders - g) * 0.5 + 86400) AS at
FROM generate_series(1, :orders) g;
INSERT INTO simulated_intents (id, order_id, amount, currency, status, client_secret, payment_method,
    amount_capturable, amount_received, created_at, updated_at)
SELECT pi, order_id::text, 4999, 'usd', 'succeeded', pi || '_secret', 'pm_card_visa', 0, 4999, at, at FROM h;
INSERT INTO simulated_requests (idempotency_key, operation, fingerprint, answer, created_at)
SELECT 'hist-' || op || '-' || g, op, md5(op || g), '{"id":"' || pi || '"}', at
FROM h, (VALUES ('create'), ('confirm'), ('capture')) v(op);
INSERT INTO simulated_webhooks (id, event_id, event_type, payload, attempts, next_attempt_at, delivered_at, created_at)
SELECT md5('hist-wh-' || t || '-' || g)::uuid, 'evt_hist_' || t || '_' || g, t, '{"id":"evt","object":"event"}', 1, at,
    at, at
FROM h, (VALUES ('payment_intent.created'), ('payment_intent.amount_capturable_updated'), ('payment_intent.succeeded')) v(t);
INSERT INTO webhook_events (event_id, event_type, received_at)
SELECT 'evt_hist_' || t || '_' || g, t, at
FROM h, (VALUES ('payment_intent.created'), ('payment_intent.amount_capturable_updated'), ('payment_intent.succeeded')) v(t);
INSERT INTO payments (id, order_id, user_id, amount, currency, status, provider, provider_payment_id, client_secret,
    captured_amount, refunded_amount, created_at, updated_at, charge_id, authorized_at)
SELECT id, order_id, user_id, 4999, 'USD', 'CAPTURED', 'simulated', pi, pi || '_secret', 4999, 0, at, at,
    'ch_hist_' || g, at FROM h;
INSERT INTO payment_status_history (id, payment_id, from_status, to_status, source, reason, at)
SELECT md5('hist-psh-' || s || '-' || g)::uuid, id, f, t, src, r, at
FROM h, (VALUES (1, NULL, 'REQUIRES_PAYMENT_METHOD', 'api', 'created'), (2, 'REQUIRES_PAYMENT_METHOD', 'AUTHORIZED', 'api', 'confirmed'),
             (3, 'AUTHORIZED', 'CAPTURED', 'event', 'captured')) v(s, f, t, src, r);
INSERT INTO idempotency_keys (scope, idem_key, fingerprint, status_code, response, created_at_ms)
SELECT user_id || ':intent', md5('hist-pkey-' || g), md5('fp' || g), 201, '{"id":"' || id || '"}',
    (extract(epoch FROM at) * 1000)::bigint FROM h;
INSERT INTO outbox (event_id, event_type, topic, message_key, envelope, created_at_ms)
SELECT md5('hist-pev-' || s || '-' || g)::uuid, t, 'payments', order_id::text,
    '{"specversion":"1.0","id":"' || md5('hist-pev-' || s || '-' || g)::uuid || '","source":"/shop/payment","type":"' || t
    || '","subject":"' || order_id || '","datacontenttype":"application/json","data":{"orderId":"' || order_id
    || '","paymentId":"' || id || '","amount":{"amount":4999,"currency":"USD"},"chargeId":"ch_hist_' || g || '"}}',
    (extract(epoch FROM at) * 1000)::bigint
FROM h, (VALUES (1, 'payment.authorized'), (2, 'payment.captured')) v(s, t)
ORDER BY g, s;
DELETE FROM outbox WHERE event_id IN
    (SELECT md5('hist-pev-' || s || '-' || g)::uuid FROM h, generate_series(1, 2) s);
INSERT INTO inbox (consumer_group, event_id, processed_at_ms)
SELECT 'payment', md5('hist-oev-4-' || g)::uuid, (extract(epoch FROM at) * 1000)::bigint FROM h;
COMMIT;
