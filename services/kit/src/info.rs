//! `GET /info`: what is running — the service's name, version, git revision, build time and
//! mode — for operators (the gateway shows every service's in one call).

use std::sync::OnceLock;

use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The workspace version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision this build came from (`unknown` without git).
pub const GIT_REVISION: &str = env!("SHOP_GIT_REVISION");
const BUILD_EPOCH: &str = env!("SHOP_BUILD_EPOCH");

static MODE: OnceLock<&'static str> = OnceLock::new();

/// Records how the process runs: `embedded` (`shop up`, every service in one process) or
/// `service` (one service per process). Set once at start; `service` when never set.
pub fn set_mode(mode: &'static str) {
    let _ = MODE.set(mode);
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
}

/// This process's info for `service`.
pub fn info(service: &str) -> ServiceInfo {
    let epoch = BUILD_EPOCH.parse::<i64>().unwrap_or(0);
    let build_time = time::OffsetDateTime::from_unix_timestamp(epoch)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    ServiceInfo {
        name: service.to_string(),
        version: VERSION.to_string(),
        git_revision: GIT_REVISION.to_string(),
        build_time,
        mode: MODE.get().copied().unwrap_or("service").to_string(),
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
        assert!(!i.git_revision.is_empty());
        assert!(i.build_time.ends_with('Z'), "{}", i.build_time);
    }
}
