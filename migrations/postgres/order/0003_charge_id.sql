-- The payment provider's charge id (Stripe `ch_…`), from payment.authorized / payment.captured.
ALTER TABLE orders ADD COLUMN charge_id TEXT;
