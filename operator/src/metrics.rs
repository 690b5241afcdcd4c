//! Reconcile metrics, through the process-wide `metrics` recorder that `kit::metrics` renders at
//! `GET /metrics`:
//! - `shop_operator_reconciles_total` — reconcile runs;
//! - `shop_operator_reconcile_failures_total{reason}` — failures by [`crate::Error::metric_label`];
//! - `shop_operator_reconcile_duration_seconds` — histogram of reconcile durations.

use std::time::Duration;

pub fn reconciled(duration: Duration) {
    metrics::counter!("shop_operator_reconciles_total").increment(1);
    metrics::histogram!("shop_operator_reconcile_duration_seconds").record(duration.as_secs_f64());
}

pub fn failed(reason: &'static str) {
    metrics::counter!("shop_operator_reconcile_failures_total", "reason" => reason).increment(1);
}

/// The operator's HTTP endpoints: `/metrics` and `/healthz`.
pub fn router() -> axum::Router {
    kit::metrics::routes().route("/healthz", axum::routing::get(|| async { "ok" }))
}
