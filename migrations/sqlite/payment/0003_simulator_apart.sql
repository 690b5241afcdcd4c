-- The simulated provider keeps its tables itself (services/payment/src/provider/
-- simulated_schema/sqlite.sql, applied when the simulator is in use): the payment service's own
-- schema — what production runs with Stripe — has none of them. A shop that used the simulator
-- loses the simulator's in-flight state (open simulated intents and sessions) once; the
-- payments themselves are untouched. Keep in step with migrations/postgres/payment.
DROP TABLE IF EXISTS simulated_checkout_sessions;
DROP TABLE IF EXISTS simulated_refunds;
DROP TABLE IF EXISTS simulated_webhooks;
DROP TABLE IF EXISTS simulated_requests;
DROP TABLE IF EXISTS simulated_intents;
