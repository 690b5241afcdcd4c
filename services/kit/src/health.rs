//! Liveness (`/healthz`) and readiness (`/readyz`, which checks real dependencies).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One dependency a service needs to serve traffic.
#[async_trait::async_trait]
pub trait Check: Send + Sync {
    fn name(&self) -> &str;
    async fn check(&self) -> Result<(), String>;
}

/// The set of readiness checks of a service (or of every service in `serve all`). A
/// *critical* check that fails makes the service unready; an *informational* one (the gateway's
/// view of its upstreams) is reported with its error but leaves the status alone. Once
/// [`Readiness::drain`] was called (the process is stopping) the report is `draining` and
/// unready, so load balancers stop sending traffic before the listener closes.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Arc<dyn Check>, bool)>,
    draining: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub name: String,
    /// `up` or `down`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: u64,
    /// `false` for an informational check, whose failure does not make the service unready.
    pub critical: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadinessReport {
    /// `ready`, `unavailable` (a critical check failed) or `draining` (the process is stopping).
    pub status: String,
    pub checks: Vec<CheckReport>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check, reported under `prefix/name` (e.g. `catalog/database`).
    pub fn with(mut self, prefix: &str, check: Arc<dyn Check>) -> Self {
        let name =
            if prefix.is_empty() { check.name().to_string() } else { format!("{prefix}/{}", check.name()) };
        self.checks.push((name, check, true));
        self
    }

    /// Adds an informational check: reported, but its failure leaves the service ready.
    pub fn with_informational(mut self, prefix: &str, check: Arc<dyn Check>) -> Self {
        self = self.with(prefix, check);
        if let Some(last) = self.checks.last_mut() {
            last.2 = false;
        }
        self
    }

    /// From now on the service reports `draining` (it is shutting down).
    pub fn drain(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn merge(mut self, other: Readiness) -> Self {
        self.checks.extend(other.checks);
        self
    }

    pub async fn report(&self) -> ReadinessReport {
        let runs = self.checks.iter().map(|(name, c, critical)| async move {
            let start = Instant::now();
            let res = match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
            };
            CheckReport {
                name: name.clone(),
                status: if res.is_ok() { "up" } else { "down" }.into(),
                error: res.err(),
                latency_ms: start.elapsed().as_millis() as u64,
                critical: *critical,
            }
        });
        let checks = futures::future::join_all(runs).await;
        let ready = checks.iter().all(|c| c.status == "up" || !c.critical);
        let status = if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            "draining"
        } else if ready {
            "ready"
        } else {
            "unavailable"
        };
        ReadinessReport { status: status.into(), checks }
    }
}

/// `GET /healthz` and `GET /readyz`.
pub fn routes(readiness: Readiness) -> Router {
    Router::new().route("/healthz", get(|| async { Json(serde_json::json!({ "status": "ok" })) })).route(
        "/readyz",
        get(move || {
            let readiness = readiness.clone();
            async move {
                let report = readiness.report().await;
                let status =
                    if report.status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                if status != StatusCode::OK {
                    tracing::warn!(?report, "not ready");
                }
                (status, Json(report)).into_response()
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, bool);
    #[async_trait::async_trait]
    impl Check for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        async fn check(&self) -> Result<(), String> {
            if self.1 {
                Ok(())
            } else {
                Err("refused".into())
            }
        }
    }

    #[tokio::test]
    async fn reports_each_dependency() {
        let r = Readiness::new().with("svc", Arc::new(Fixed("db", true)));
        assert_eq!(r.report().await.status, "ready");
        let r = r.with("svc", Arc::new(Fixed("broker", false)));
        let rep = r.report().await;
        assert_eq!(rep.status, "unavailable");
        assert_eq!(rep.checks[1].name, "svc/broker");
        assert_eq!(rep.checks[1].error.as_deref(), Some("refused"));
    }

    #[tokio::test]
    async fn informational_checks_do_not_make_the_service_unready_and_draining_does() {
        let r = Readiness::new()
            .with("", Arc::new(Fixed("db", true)))
            .with_informational("upstream", Arc::new(Fixed("catalog", false)));
        let rep = r.report().await;
        assert_eq!(rep.status, "ready");
        assert_eq!(rep.checks[1].status, "down");
        assert!(!rep.checks[1].critical && rep.checks[0].critical);
        let clone = r.clone();
        r.drain();
        assert_eq!(clone.report().await.status, "draining", "every clone sees the drain");
    }
}
