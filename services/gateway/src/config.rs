//! Gateway settings (`SHOP_GATEWAY__*`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// Origins allowed by CORS (`*` for any). `SHOP_GATEWAY__CORS_ORIGINS=["https://shop.example"]`.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted, in bytes (413 above).
    pub body_limit_bytes: usize,
    /// Time a request may take end to end before a 408 problem.
    pub request_timeout_secs: u64,
    /// Time an upstream call may take before a 504 problem (remote mode).
    pub upstream_timeout_secs: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            cors_origins: vec!["http://localhost:3000".into(), "http://127.0.0.1:3000".into()],
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            upstream_timeout_secs: 15,
        }
    }
}
