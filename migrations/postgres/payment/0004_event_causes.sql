-- The event that asked for a refund or a capture (its id and correlation id), recorded before the
-- provider is called: the payment.refunded / payment.captured event carries them whichever path
-- records the change — the handler of the event that asked, or the provider's webhook first. Keep in step with
-- migrations/sqlite/payment.
ALTER TABLE refunds ADD COLUMN causation_id TEXT;
ALTER TABLE refunds ADD COLUMN correlation_id TEXT;
ALTER TABLE payments ADD COLUMN capture_causation_id TEXT;
ALTER TABLE payments ADD COLUMN capture_correlation_id TEXT;
