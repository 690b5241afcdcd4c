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
    /// Rate limits (`SHOP_GATEWAY__RATE_LIMIT__*`).
    pub rate_limit: RateLimitConfig,
    /// The admin console (`SHOP_GATEWAY__CONSOLE__*`).
    pub console: ConsoleConfig,
    /// The event bus, when the gateway runs apart and watches Kafka for the console's event
    /// browser (the composer fills it from `SHOP_EVENTS__*`; in one process the bus's own tap is
    /// used).
    #[serde(skip)]
    pub events: Option<kit::events::EventsConfig>,
}

/// The admin console at `/admin` and its event browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsoleConfig {
    /// Serve the console and its session routes.
    pub enabled: bool,
    /// Mark the session cookies `Secure` always (they are whenever a request arrives with
    /// `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Events the event browser keeps (the gateway's own tap, when running apart).
    pub event_tap_capacity: usize,
    /// Event streams open at once.
    pub max_event_streams: usize,
    /// Serve the console's files from this directory instead of those built into the binary
    /// (development: `SHOP_GATEWAY__CONSOLE__DIR=services/gateway/console`, then edit and reload).
    pub dir: Option<std::path::PathBuf>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            secure_cookies: false,
            event_tap_capacity: kit::events::tap::DEFAULT_CAPACITY,
            max_event_streams: 32,
            dir: None,
        }
    }
}

/// Token-bucket limits per route class, per user (when a token was verified) or per client IP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Turn rate limiting off entirely (benchmarks, trusted internal traffic).
    pub enabled: bool,
    /// `POST /api/v1/auth/*` (login, register, refresh, logout) per client IP per minute.
    pub auth_per_minute: u32,
    /// Non-GET requests per user or IP per minute.
    pub write_per_minute: u32,
    /// GET/HEAD requests per user or IP per minute.
    pub read_per_minute: u32,
    /// Requests with a refused bearer token (invalid, expired, revoked) per client IP per
    /// minute; past it the answer is 429 instead of 401.
    pub failed_auth_per_minute: u32,
    /// Proxies of our own in front of the gateway that append to `X-Forwarded-For`
    /// (an ingress controller: 1). 0 uses the TCP peer address.
    pub trusted_proxy_hops: u32,
    /// Redis shared by every gateway replica: the limits then hold across replicas (one budget
    /// per client, not one per replica). Unset: each process counts for itself. The composer
    /// fills it from the platform's `SHOP_REDIS_URL` unless set here
    /// (`SHOP_GATEWAY__RATE_LIMIT__REDIS_URL`).
    #[serde(skip_serializing)]
    pub redis_url: Option<secrecy::SecretString>,
    /// CA certificates (PEM) that verify a `rediss://` `redis_url` instead of the web PKI roots
    /// (`SHOP_REDIS_CA_FILE` when the platform's Redis is used).
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// Prefix of the limiter's Redis keys.
    pub redis_prefix: String,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            auth_per_minute: 30,
            write_per_minute: 300,
            read_per_minute: 1200,
            failed_auth_per_minute: 60,
            trusted_proxy_hops: 0,
            redis_url: None,
            redis_ca_file: None,
            redis_prefix: "shop:ratelimit:".into(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            cors_origins: vec!["http://localhost:3000".into(), "http://127.0.0.1:3000".into()],
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            upstream_timeout_secs: 15,
            rate_limit: RateLimitConfig::default(),
            console: ConsoleConfig::default(),
            events: None,
        }
    }
}
