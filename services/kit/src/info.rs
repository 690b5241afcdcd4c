//! `GET /info`: what is running — the service's name, version, git revision, build time and
//! mode — for operators (the gateway shows every service's in one call).

use std::sync::OnceLock;

use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The workspace version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

static MODE: OnceLock<&'static str> = OnceLock::new();
static DEMO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static BUILD: OnceLock<(&'static str, i64)> = OnceLock::new();

/// Records the git revision and build time (Unix seconds) of the binary; the `shop` binary
/// calls it at start with what its build script found. Unset: `unknown` and the epoch.
pub fn set_build(git_revision: &'static str, build_epoch: i64) {
    let _ = BUILD.set((git_revision, build_epoch));
}

/// Records how the process runs: `embedded` (`shop up`, every service in one process) or
/// `service` (one service per process). Set once at start; `service` when never set.
pub fn set_mode(mode: &'static str) {
    let _ = MODE.set(mode);
}

/// Marks this process as the local demo (`shop up`): demo accounts, simulated payments and
/// other conveniences are expected there and not warned about.
pub fn set_demo(demo: bool) {
    DEMO.store(demo, std::sync::atomic::Ordering::SeqCst);
}

/// Whether this process is the local demo (`shop up`).
pub fn is_demo() -> bool {
    DEMO.load(std::sync::atomic::Ordering::SeqCst)
}

/// Records a configuration an operator must know about (shown in `GET /info`'s `warnings`).
pub fn warn(warning: impl Into<String>) {
    let warning = warning.into();
    let mut w = WARNINGS.lock().expect("warnings lock");
    if !w.contains(&warning) {
        w.push(warning);
    }
}

/// The answer of `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    #[schema(example = "catalog")]
    pub name: String,
    #[schema(example = "0.1.0")]
    pub version: String,
    #[schema(example = "8cc4f79a1b2c")]
    pub git_revision: String,
    /// RFC 3339, UTC.
    pub build_time: String,
    /// `embedded` or `service`.
    pub mode: String,
    /// Configurations an operator must know about, e.g. simulated payments outside the demo.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// This process's info for `service`.
pub fn info(service: &str) -> ServiceInfo {
    let (revision, epoch) = BUILD.get().copied().unwrap_or(("unknown", 0));
    let build_time = time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    ServiceInfo {
        name: service.to_string(),
        version: VERSION.to_string(),
        git_revision: revision.to_string(),
        build_time,
        mode: MODE.get().copied().unwrap_or("service").to_string(),
        warnings: WARNINGS.lock().map(|w| w.clone()).unwrap_or_default(),
    }
}

/// The `/info` route of `service`.
pub fn routes(service: &'static str) -> Router {
    Router::new().route("/info", get(move || async move { Json(info(service)) }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn info_names_the_build() {
        let i = super::info("catalog");
        assert_eq!(i.name, "catalog");
        assert_eq!(i.version, env!("CARGO_PKG_VERSION"));
        super::set_build("0123456789ab", 1_700_000_000);
        let i = super::info("catalog");
        assert_eq!(i.git_revision, "0123456789ab");
        assert_eq!(i.build_time, "2023-11-14T22:13:20Z");
    }
}
