//! Reconcile metrics, through the process-wide `metrics` recorder (Prometheus), served with
//! `/healthz` by a minimal HTTP/1 server ([`serve`]):
//! - `shop_operator_reconciles_total` — reconcile runs;
//! - `shop_operator_reconcile_failures_total{reason}` — failures by [`crate::Error::metric_label`];
//! - `shop_operator_reconcile_duration_seconds` — histogram of reconcile durations;
//! - `shop_operator_leader` — 1 while this replica reconciles (holds the Lease, or runs without
//!   leader election), 0 while it stands by.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

pub fn reconciled(duration: Duration) {
    metrics::counter!("shop_operator_reconciles_total").increment(1);
    metrics::histogram!("shop_operator_reconcile_duration_seconds").record(duration.as_secs_f64());
}

pub fn failed(reason: &'static str) {
    metrics::counter!("shop_operator_reconcile_failures_total", "reason" => reason).increment(1);
}

/// Whether this replica leads (see [`crate::lease`]).
pub fn set_leader(leading: bool) {
    let _ = handle();
    metrics::gauge!("shop_operator_leader").set(if leading { 1.0 } else { 0.0 });
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets of `*_duration_seconds` histograms (reconciles take milliseconds to tens of seconds).
const DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; then this one stays local.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The response to one request: `GET /metrics` (Prometheus text format), `GET /healthz`
/// (`ok`), 405 for another method on those paths, 404 otherwise.
pub fn respond(method: &Method, path: &str, metrics: &PrometheusHandle) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut res = Response::new(Full::new(Bytes::from(body)));
        *res.status_mut() = status;
        res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
        res
    };
    const TEXT: &str = "text/plain; charset=utf-8";
    match (path, method == Method::GET || method == Method::HEAD) {
        ("/metrics", true) => {
            metrics.run_upkeep();
            reply(StatusCode::OK, "text/plain; version=0.0.4", metrics.render())
        }
        ("/healthz", true) => reply(StatusCode::OK, TEXT, "ok".into()),
        ("/metrics" | "/healthz", false) => {
            let mut res = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed".into());
            res.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            res
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found".into()),
    }
}

/// Serves `/metrics` and `/healthz` on `listener` (HTTP/1.1, one task per connection) until the
/// task is dropped or aborted.
pub async fn serve(listener: TcpListener) {
    let metrics = handle();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let res = respond(req.method(), req.uri().path(), &metrics);
                async move { Ok::<_, Infallible>(res) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_metrics_and_health_over_http() {
        let _ = handle();
        reconciled(Duration::from_millis(20));
        failed("kube_api");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener));
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let health = get("/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(health.ends_with("ok"), "{health}");
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
        assert!(metrics.contains("shop_operator_reconciles_total"), "{metrics}");
        assert!(metrics.contains("shop_operator_reconcile_failures_total{reason=\"kube_api\"}"), "{metrics}");
        assert!(metrics.contains("shop_operator_reconcile_duration_seconds_bucket"), "{metrics}");
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }

    #[test]
    fn other_methods_are_refused() {
        let res = respond(&Method::POST, "/metrics", &handle());
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD");
    }
}
