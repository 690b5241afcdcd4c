//! Edge security: bearer tokens verified before anything reaches a service, and rate limits
//! per client IP and per user.
//!
//! - A request with `Authorization: Bearer …` is verified against the auth service's JWKS; an
//!   invalid, expired, wrong-audience, wrong-issuer, `alg: none`, HMAC-confusion or unknown-key
//!   token is refused here with a 401 problem. The verified [`Identity`] travels with the request
//!   (in-process services read it directly; services running apart verify the same token again).
//! - Rate limits are token buckets (GCRA, `governor`) per route class — `auth` (login, register,
//!   refresh), `write` (non-GET), `read` (GET/HEAD) — keyed by user id when a token was verified,
//!   else by client IP. Every answer carries `RateLimit-Limit`/`RateLimit-Remaining`; a refusal is a
//!   429 problem with `Retry-After` and `RateLimit-Reset`.
//! - With Redis configured the buckets live there (the same GCRA in one Lua script, on the
//!   server's clock), so every gateway replica draws from one budget per client. When Redis
//!   fails mid-flight the process falls back to its own buckets (logged and counted in
//!   `shop_gateway_ratelimit_fallback_total`) rather than refusing or waving traffic through.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use kit::auth::{Identity, Verifier};
use kit::problem::ApiError;

use crate::config::RateLimitConfig;
use crate::session;

pub use kit::http::suspicious_path;

/// Whether a client-sent header is one only the platform's services may send (`x-internal-token`
/// and any other `x-internal-*`): the gateway drops them from every request it receives.
pub fn internal_header(name: &str) -> bool {
    name.len() >= 10 && name[..10].eq_ignore_ascii_case("x-internal")
}

/// Before authentication and rate limits: drops the platform's internal headers a client sent.
/// (Dot segments and backslashes were refused by the common layers, [`suspicious_path`].)
pub async fn guard(mut req: Request, next: Next) -> Response {
    let headers = req.headers_mut();
    let internal: Vec<_> = headers.keys().filter(|k| internal_header(k.as_str())).cloned().collect();
    for name in internal {
        tracing::debug!(header = %name, "client-sent internal header dropped");
        headers.remove(name);
    }
    next.run(req).await
}

/// Verifies a bearer token when one is present and attaches the [`Identity`]. A refused bearer
/// token spends a token of the client address's `failed_auth` bucket first: past that limit the
/// answer is 429, so guessing tokens is as limited as guessing passwords.
///
/// Without one, an API request carrying the admin console's session cookie is authenticated
/// with the cookie's token ([`crate::session`]): a state-changing request must pass the CSRF
/// check first, and the token then travels on as `Authorization: Bearer`, so every service
/// sees an ordinary caller. A cookie whose token has expired (or is not valid, or was revoked)
/// is ignored: the request goes on anonymously, public routes answer as usual and the others say
/// 401 `token_missing`, on which the console renews its session. The session routes read their
/// cookies on their own.
pub async fn authenticate(
    verifier: Verifier,
    limits: Option<Arc<Limits>>,
    mut req: Request,
    next: Next,
) -> Response {
    if kit::auth::bearer(req.headers()).is_some() {
        match verifier.verify_headers(req.headers()).await {
            Ok(claims) => {
                req.extensions_mut().insert(Identity::from(claims));
            }
            Err(e) => {
                if let Some(limits) = limits {
                    let key = ip_key(&limits, &req);
                    if let Verdict::Limited { retry_after } = limits.check(RouteClass::FailedAuth, &key).await
                    {
                        return limited(RouteClass::FailedAuth, limits.failed_auth.1, &key, retry_after);
                    }
                }
                return ApiError::from(e).into_response();
            }
        }
    } else if let Some(token) = session::cookie(req.headers(), session::SESSION_COOKIE).map(str::to_string) {
        let path = req.uri().path();
        if path.starts_with("/api/") && !path.starts_with(session::SESSION_PATH) {
            if session::is_unsafe(req.method()) {
                if let Err(e) = session::check_csrf(req.headers()) {
                    return e.into_response();
                }
            }
            let verified = verifier.verify(&token).await;
            session::strip_session_cookies(req.headers_mut());
            match verified {
                Ok(claims) => {
                    if let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) {
                        req.headers_mut().insert(axum::http::header::AUTHORIZATION, bearer);
                        req.extensions_mut().insert(Identity::from(claims));
                    }
                }
                Err(e @ kit::auth::TokenError::KeysUnavailable(_)) => {
                    return ApiError::from(e).into_response()
                }
                Err(_) => {}
            }
        }
    }
    next.run(req).await
}

fn ip_key(limits: &Limits, req: &Request) -> String {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    match limits.client_ip(req.headers(), peer) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_string(),
    }
}

/// Route classes with their own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    Auth,
    Write,
    Read,
    /// Refused bearer tokens, per client address (see [`authenticate`]).
    FailedAuth,
}

impl RouteClass {
    pub fn of(method: &Method, path: &str) -> RouteClass {
        if (path.starts_with("/api/v1/auth/") || path.starts_with(session::SESSION_PATH))
            && *method == Method::POST
        {
            RouteClass::Auth
        } else if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            RouteClass::Read
        } else {
            RouteClass::Write
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            RouteClass::Auth => "auth",
            RouteClass::Write => "write",
            RouteClass::Read => "read",
            RouteClass::FailedAuth => "failed_auth",
        }
    }
}

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One keyed limiter per route class, in this process and — when configured — in Redis.
pub struct Limits {
    auth: (Keyed, u32),
    write: (Keyed, u32),
    read: (Keyed, u32),
    failed_auth: (Keyed, u32),
    trusted_proxy_hops: usize,
    shared: Option<Shared>,
}

/// GCRA over Redis: `KEYS[1]` the bucket, `ARGV[1]` the emission interval in ms, `ARGV[2]` the
/// burst. Answers `{allowed, retry_after_ms, remaining}`; the theoretical arrival time is kept
/// with an expiry, so idle clients cost nothing.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local allow_at = tat + period - burst * period
if now < allow_at then
  return {0, allow_at - now, 0}
end
local new_tat = tat + period
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return {1, 0, math.floor((now - (new_tat - burst * period)) / period)}
"#;

struct Shared {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
}

/// What a limiter says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed { remaining: u32 },
    Limited { retry_after: Duration },
}

fn limiter(per_minute: u32) -> (Keyed, u32) {
    let n = NonZeroU32::new(per_minute.max(1)).expect("≥ 1");
    (RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>(), n.get())
}

impl Limits {
    /// Limits counted in this process.
    pub fn new(c: &RateLimitConfig) -> Arc<Limits> {
        Limits::build(c, None)
    }

    /// Limits shared through Redis when `c.redis_url` is set (connected now: an unreachable
    /// Redis is a start-up error naming the key and the server), in this process otherwise.
    pub async fn connect(c: &RateLimitConfig) -> anyhow::Result<Arc<Limits>> {
        let Some(url) = &c.redis_url else { return Ok(Limits::build(c, None)) };
        let ca = c.redis_ca_file.as_deref().map(|file| kit::redis::Ca {
            file,
            key: "SHOP_GATEWAY__RATE_LIMIT__REDIS_CA_FILE / SHOP_REDIS_CA_FILE",
        });
        let (conn, shown) =
            kit::redis::connect(url, "SHOP_GATEWAY__RATE_LIMIT__REDIS_URL", "the rate-limit Redis", ca)
                .await?;
        let shared = Shared { conn, script: redis::Script::new(GCRA), prefix: c.redis_prefix.clone() };
        tracing::info!(redis = %shown, "rate limits shared through Redis");
        Ok(Limits::build(c, Some(shared)))
    }

    fn build(c: &RateLimitConfig, shared: Option<Shared>) -> Arc<Limits> {
        let limits = Arc::new(Limits {
            auth: limiter(c.auth_per_minute),
            write: limiter(c.write_per_minute),
            read: limiter(c.read_per_minute),
            failed_auth: limiter(c.failed_auth_per_minute),
            trusted_proxy_hops: c.trusted_proxy_hops as usize,
            shared,
        });
        // Forget idle keys so memory stays bounded by the active clients.
        let weak = Arc::downgrade(&limits);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let Some(l) = weak.upgrade() else { break };
                    for (lim, _) in [&l.auth, &l.write, &l.read, &l.failed_auth] {
                        lim.retain_recent();
                        lim.shrink_to_fit();
                    }
                }
            });
        }
        limits
    }

    fn for_class(&self, class: RouteClass) -> &(Keyed, u32) {
        match class {
            RouteClass::Auth => &self.auth,
            RouteClass::Write => &self.write,
            RouteClass::Read => &self.read,
            RouteClass::FailedAuth => &self.failed_auth,
        }
    }

    /// The client's address ([`kit::http::client_ip`] with this gateway's trusted hops).
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        kit::http::client_ip(headers, peer, self.trusted_proxy_hops)
    }

    /// Takes one token of `class` for `key`: from Redis when shared, from this process's buckets
    /// otherwise (or when Redis fails).
    pub async fn check(&self, class: RouteClass, key: &str) -> Verdict {
        let (limiter, limit) = self.for_class(class);
        if let Some(shared) = &self.shared {
            let period_ms = (60_000 / u64::from((*limit).max(1))).max(1);
            let mut conn = shared.conn.clone();
            let answer: redis::RedisResult<Vec<i64>> = shared
                .script
                .key(format!("{}{}:{key}", shared.prefix, class.as_str()))
                .arg(period_ms)
                .arg(*limit)
                .invoke_async(&mut conn)
                .await;
            match answer.as_deref() {
                Ok([1, _, remaining]) => {
                    return Verdict::Allowed { remaining: u32::try_from(*remaining).unwrap_or(0) }
                }
                Ok([0, retry_ms, _]) => {
                    return Verdict::Limited {
                        retry_after: Duration::from_millis(u64::try_from(*retry_ms).unwrap_or(0)),
                    }
                }
                other => {
                    metrics::counter!(kit::contract::metrics::GATEWAY_RATELIMIT_FALLBACK.name).increment(1);
                    tracing::warn!(answer = ?other.map_err(|e| e.to_string()), "rate-limit Redis failed; counting in this process");
                }
            }
        }
        match limiter.check_key(&key.to_string()) {
            Ok(snapshot) => Verdict::Allowed { remaining: snapshot.remaining_burst_capacity() },
            Err(not_until) => {
                Verdict::Limited { retry_after: not_until.wait_time_from(limiter.clock().now()) }
            }
        }
    }
}

/// The rate-limiting middleware.
pub async fn rate_limit(limits: Arc<Limits>, req: Request, next: Next) -> Response {
    // Every path of the API router (the documents and unknown paths too); health and metrics
    // live outside it.
    let class = RouteClass::of(req.method(), req.uri().path());
    let key = match req.extensions().get::<Identity>() {
        Some(id) if class != RouteClass::Auth => format!("user:{}", id.user_id),
        _ => ip_key(&limits, &req),
    };
    let limit = limits.for_class(class).1;
    match limits.check(class, &key).await {
        Verdict::Allowed { remaining } => {
            let mut res = next.run(req).await;
            let h = res.headers_mut();
            h.insert("ratelimit-limit", HeaderValue::from(limit));
            h.insert("ratelimit-remaining", HeaderValue::from(remaining));
            res
        }
        Verdict::Limited { retry_after } => limited(class, limit, &key, retry_after),
    }
}

fn limited(class: RouteClass, limit: u32, key: &str, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    tracing::info!(%key, class = class.as_str(), retry_after = secs, "rate limited");
    let what = match class {
        RouteClass::FailedAuth => "refused tokens".to_string(),
        _ => format!("{} requests", class.as_str()),
    };
    kit::problem::for_status(StatusCode::TOO_MANY_REQUESTS)
        .detail(format!("too many {what}; retry in {secs}s"))
        .header(axum::http::header::RETRY_AFTER, HeaderValue::from(secs))
        .header(axum::http::HeaderName::from_static("ratelimit-limit"), HeaderValue::from(limit))
        .header(axum::http::HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(0u32))
        .header(axum::http::HeaderName::from_static("ratelimit-reset"), HeaderValue::from(secs))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(RouteClass::of(&Method::POST, "/api/v1/auth/login"), RouteClass::Auth);
        assert_eq!(RouteClass::of(&Method::GET, "/api/v1/auth/me"), RouteClass::Read);
        assert_eq!(RouteClass::of(&Method::DELETE, "/api/v1/products/x"), RouteClass::Write);
        assert_eq!(RouteClass::of(&Method::GET, "/api/v1/products"), RouteClass::Read);
    }

    #[test]
    fn dot_segments_and_backslashes_are_suspicious() {
        for p in [
            "/api/v1/orders/../readyz",
            "/api/v1/orders/%2e%2e/%2e%2e/%2e%2e/readyz",
            "/api/v1/orders/%2E%2e/metrics",
            "/api/v1/orders/.%2e/info",
            "/api/v1/orders/%2e./info",
            "/api/v1/orders/./x",
            "/api/v1/orders/%2e",
            "/api/v1/orders/..",
            "/api/v1/orders\\..\\readyz",
            "/api/v1/orders/%5c..%5Creadyz",
        ] {
            assert!(suspicious_path(p), "{p}");
        }
        for p in ["/api/v1/orders/a.b", "/api/v1/products/...", "/api/v1/orders/.well", "/api/v1/x%2e/y"] {
            assert!(!suspicious_path(p), "{p}");
        }
        assert!(internal_header("x-internal-token") && internal_header("X-Internal-Anything"));
        assert!(!internal_header("x-request-id") && !internal_header("x-intern"));
    }

    #[tokio::test]
    async fn client_ip_trusts_only_configured_hops() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        let direct = Limits::new(&RateLimitConfig { trusted_proxy_hops: 0, ..Default::default() });
        assert_eq!(direct.client_ip(&h, Some(peer)), Some(peer));
        let one = Limits::new(&RateLimitConfig { trusted_proxy_hops: 1, ..Default::default() });
        assert_eq!(one.client_ip(&h, Some(peer)), Some("203.0.113.7".parse().unwrap()));
        let many = Limits::new(&RateLimitConfig { trusted_proxy_hops: 5, ..Default::default() });
        assert_eq!(many.client_ip(&h, Some(peer)), Some(peer), "too few hops: fall back to the peer");
    }
}
