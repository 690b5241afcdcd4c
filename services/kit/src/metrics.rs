//! Prometheus metrics: one process-wide recorder, rendered at `GET /metrics`. Every metric is
//! described once in [`contract::metrics`] (names, labels, meaning); code records through
//! those constants.
//!
//! HTTP metrics: `http_requests_total{service,method,route,status}` and
//! `http_request_duration_seconds{service,method,route,status}` (histogram). The route label is
//! the matched route template (`/api/v1/products/{id}`), never the raw path, and the method label
//! is one of the nine standard methods or `OTHER` ([`method_label`]): neither a client's paths nor
//! its made-up methods can create series.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide recorder once and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .expect("valid buckets");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then this one stays local.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// `# HELP` for every metric of [`contract::metrics::ALL`] the services export.
fn describe() {
    use contract::metrics::{Exporter, Kind, ALL};
    for m in ALL.iter().filter(|m| m.exporter == Exporter::Services) {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// `GET /metrics` in the Prometheus text format.
pub fn routes() -> Router {
    let h = handle();
    Router::new().route(
        "/metrics",
        get(move || {
            let h = h.clone();
            async move {
                h.run_upkeep();
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response()
            }
        }),
    )
}

/// The `method` label: a standard method's name, `OTHER` for any extension method (HTTP allows
/// any token there, and every distinct label value would be a new series kept forever).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Middleware recording request count and latency, labelled with `service`.
pub async fn track(service: &'static str, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let res = next.run(req).await;
    let labels = [
        ("service", service.to_string()),
        ("method", method.to_string()),
        ("route", route),
        ("status", res.status().as_u16().to_string()),
    ];
    metrics::counter!(crate::contract::metrics::HTTP_REQUESTS.name, &labels).increment(1);
    metrics::histogram!(crate::contract::metrics::HTTP_REQUEST_DURATION.name, &labels)
        .record(start.elapsed().as_secs_f64());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_methods_share_one_label() {
        assert_eq!(method_label(&axum::http::Method::PATCH), "PATCH");
        for m in ["PURGE", "X1234", "get"] {
            assert_eq!(method_label(&axum::http::Method::from_bytes(m.as_bytes()).unwrap()), "OTHER", "{m}");
        }
    }
}
