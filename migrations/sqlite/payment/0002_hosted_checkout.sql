-- Hosted checkout (Stripe Checkout Sessions, or the simulated provider's own page), the
-- provider's charge id and the time of the authorisation. Keep in step with
-- migrations/postgres/payment.

-- A payment made through a hosted checkout session: the session (`cs_…`), its page and expiry.
-- Until the session completes, `provider_payment_id` holds the session id (Stripe creates the
-- payment intent only when the customer pays); the change that completes it records the intent.
ALTER TABLE payments ADD COLUMN checkout_session_id TEXT;
ALTER TABLE payments ADD COLUMN checkout_url TEXT;
ALTER TABLE payments ADD COLUMN checkout_expires_at TEXT;
-- The provider's charge (`ch_…`) once the card was authorised.
ALTER TABLE payments ADD COLUMN charge_id TEXT;
-- When the payment became AUTHORIZED.
ALTER TABLE payments ADD COLUMN authorized_at TEXT;
CREATE UNIQUE INDEX payments_checkout_session_key ON payments (checkout_session_id);

-- The simulated provider's checkout sessions (its hosted page is served by this service).
CREATE TABLE simulated_checkout_sessions (
    id             TEXT        PRIMARY KEY,
    order_id       TEXT        NOT NULL,
    amount         BIGINT      NOT NULL CHECK (amount > 0),
    currency       TEXT        NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN ('open', 'complete', 'expired')),
    payment_status TEXT        NOT NULL,
    success_url    TEXT        NOT NULL,
    cancel_url     TEXT        NOT NULL,
    url            TEXT        NOT NULL,
    payment_intent TEXT        REFERENCES simulated_intents (id),
    expires_at     TEXT        NOT NULL,
    created_at     TEXT        NOT NULL,
    updated_at     TEXT        NOT NULL
);
CREATE INDEX simulated_checkout_sessions_open_idx ON simulated_checkout_sessions (expires_at) WHERE status = 'open';
