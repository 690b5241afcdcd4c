-- The event that asked for a refund (its id and correlation id), recorded when the refund is
-- reserved: the payment.refunded event carries them whichever path records the refund — the
-- handler of the event that asked, or the provider's webhook arriving first. Keep in step with
-- migrations/sqlite/payment.
ALTER TABLE refunds ADD COLUMN causation_id TEXT;
ALTER TABLE refunds ADD COLUMN correlation_id TEXT;
