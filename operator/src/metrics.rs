//! Reconcile metrics, through the process-wide `metrics` recorder (Prometheus), served with
//! `/healthz` by a minimal HTTP/1 server ([`serve`]). Every metric is described in
//! `contract::metrics` (the operator's are `shop_operator_*`):
//! - `shop_operator_reconciles_total` — reconcile runs;
//! - `shop_operator_reconcile_failures_total{reason}` — failures by [`crate::Error::metric_label`];
//! - `shop_operator_reconcile_duration_seconds` — histogram of reconcile durations;
//! - `shop_operator_reconcile_step_duration_seconds{step}` — each step of a pass;
//! - `shop_operator_platform_phase{namespace,platform,phase}` — 1 for each platform's phase;
//! - `shop_operator_managed_objects{namespace,platform,kind}` — objects of the last pass
//!   (counted by `ensure_applied` inside [`tallied`]);
//! - `shop_operator_leader` — 1 while this replica reconciles (holds the Lease, or runs without
//!   leader election), 0 while it stands by.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use contract::metrics as m;

use crate::crd::Phase;

pub fn reconciled(duration: Duration) {
    metrics::counter!(m::OPERATOR_RECONCILES.name).increment(1);
    metrics::histogram!(m::OPERATOR_RECONCILE_DURATION.name).record(duration.as_secs_f64());
}

pub fn failed(reason: &'static str) {
    metrics::counter!(m::OPERATOR_RECONCILE_FAILURES.name, "reason" => reason).increment(1);
}

/// Whether this replica leads (see [`crate::lease`]).
pub fn set_leader(leading: bool) {
    let _ = handle();
    metrics::gauge!(m::OPERATOR_LEADER.name).set(if leading { 1.0 } else { 0.0 });
}

/// One step of a reconcile pass took `duration`.
pub fn step(step: &'static str, duration: Duration) {
    metrics::histogram!(m::OPERATOR_STEP_DURATION.name, "step" => step).record(duration.as_secs_f64());
}

/// Every phase, for the 0/1 gauge.
const PHASES: [Phase; 6] =
    [Phase::Pending, Phase::Provisioning, Phase::Ready, Phase::Progressing, Phase::Degraded, Phase::Deleting];

/// The platform `namespace/name` is in `phase` (`None`: it is gone).
pub fn phase(namespace: &str, name: &str, phase: Option<Phase>) {
    for p in PHASES {
        let labels = [
            ("namespace", namespace.to_string()),
            ("platform", name.to_string()),
            ("phase", p.as_str().to_string()),
        ];
        metrics::gauge!(m::OPERATOR_PHASE.name, &labels).set(if Some(p) == phase { 1.0 } else { 0.0 });
    }
}

tokio::task_local! {
    static TALLY: RefCell<BTreeMap<&'static str, u64>>;
}

/// Counts one object of `kind` that the current pass applied or found up to date (no-op
/// outside [`tallied`]).
pub fn count_object(kind: &'static str) {
    let _ = TALLY.try_with(|t| *t.borrow_mut().entry(kind).or_default() += 1);
}

/// Runs a reconcile pass, counting the objects it manages by kind.
pub async fn tallied<F: Future>(pass: F) -> (F::Output, BTreeMap<&'static str, u64>) {
    TALLY
        .scope(RefCell::new(BTreeMap::new()), async {
            let out = pass.await;
            (out, TALLY.with(|t| t.take()))
        })
        .await
}

/// The kinds each platform had in its last pass, so that a kind no longer managed drops to 0.
static KINDS: Mutex<BTreeMap<(String, String), BTreeSet<&'static str>>> = Mutex::new(BTreeMap::new());

/// Sets `shop_operator_managed_objects` of `namespace/name` from a pass's tally (an empty
/// tally, as after deletion, sets every kind it had to 0).
pub fn managed(namespace: &str, name: &str, tally: &BTreeMap<&'static str, u64>) {
    let mut kinds = KINDS.lock().unwrap_or_else(|e| e.into_inner());
    let known = kinds.entry((namespace.to_string(), name.to_string())).or_default();
    known.extend(tally.keys().copied());
    for kind in known.iter() {
        let labels = [
            ("namespace", namespace.to_string()),
            ("platform", name.to_string()),
            ("kind", kind.to_string()),
        ];
        metrics::gauge!(m::OPERATOR_MANAGED_OBJECTS.name, &labels)
            .set(tally.get(kind).copied().unwrap_or(0) as f64);
    }
    if tally.is_empty() {
        kinds.remove(&(namespace.to_string(), name.to_string()));
    }
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
            for d in m::ALL.iter().filter(|d| d.exporter == m::Exporter::Operator) {
                match d.kind {
                    m::Kind::Counter => metrics::describe_counter!(d.name, d.help),
                    m::Kind::Gauge => metrics::describe_gauge!(d.name, d.help),
                    m::Kind::Histogram => metrics::describe_histogram!(d.name, d.help),
                }
            }
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
