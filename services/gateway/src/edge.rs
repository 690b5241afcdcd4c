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

/// Verifies a bearer token when one is present and attaches the [`Identity`].
pub async fn authenticate(verifier: Verifier, mut req: Request, next: Next) -> Response {
    if kit::auth::bearer(req.headers()).is_some() {
        match verifier.verify_headers(req.headers()).await {
            Ok(claims) => {
                req.extensions_mut().insert(Identity::from(claims));
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    next.run(req).await
}

/// Route classes with their own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    Auth,
    Write,
    Read,
}

impl RouteClass {
    pub fn of(method: &Method, path: &str) -> RouteClass {
        if path.starts_with("/api/v1/auth/") && *method == Method::POST {
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
        }
    }
}

type Keyed = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One keyed limiter per route class.
pub struct Limits {
    auth: (Keyed, u32),
    write: (Keyed, u32),
    read: (Keyed, u32),
    trusted_proxy_hops: usize,
}

fn limiter(per_minute: u32) -> (Keyed, u32) {
    let n = NonZeroU32::new(per_minute.max(1)).expect("≥ 1");
    (RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>(), n.get())
}

impl Limits {
    pub fn new(c: &RateLimitConfig) -> Arc<Limits> {
        let limits = Arc::new(Limits {
            auth: limiter(c.auth_per_minute),
            write: limiter(c.write_per_minute),
            read: limiter(c.read_per_minute),
            trusted_proxy_hops: c.trusted_proxy_hops as usize,
        });
        // Forget idle keys so memory stays bounded by the active clients.
        let weak = Arc::downgrade(&limits);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let Some(l) = weak.upgrade() else { break };
                    for (lim, _) in [&l.auth, &l.write, &l.read] {
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
        }
    }

    /// The client's address: the TCP peer, or with `trusted_proxy_hops = N` the N-th
    /// `X-Forwarded-For` entry from the right (entries further left are client-controlled).
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        if self.trusted_proxy_hops == 0 {
            return peer;
        }
        let xff = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or("");
        let hops: Vec<&str> = xff.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        hops.len()
            .checked_sub(self.trusted_proxy_hops)
            .and_then(|i| hops.get(i))
            .and_then(|s| s.parse().ok())
            .or(peer)
    }
}

/// The rate-limiting middleware.
pub async fn rate_limit(limits: Arc<Limits>, req: Request, next: Next) -> Response {
    // Health, metrics and docs are not rate limited.
    let path = req.uri().path();
    if !path.starts_with("/api/") || path == crate::openapi::OPENAPI_PATH {
        return next.run(req).await;
    }
    let class = RouteClass::of(req.method(), path);
    let key = match req.extensions().get::<Identity>() {
        Some(id) if class != RouteClass::Auth => format!("user:{}", id.user_id),
        _ => {
            let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
            match limits.client_ip(req.headers(), peer) {
                Some(ip) => format!("ip:{ip}"),
                None => "ip:unknown".to_string(),
            }
        }
    };
    let (limiter, limit) = limits.for_class(class);
    match limiter.check_key(&key) {
        Ok(snapshot) => {
            let mut res = next.run(req).await;
            let h = res.headers_mut();
            h.insert("ratelimit-limit", HeaderValue::from(*limit));
            h.insert("ratelimit-remaining", HeaderValue::from(snapshot.remaining_burst_capacity()));
            res
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(limiter.clock().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::info!(%key, class = class.as_str(), retry_after = secs, "rate limited");
            kit::problem::for_status(StatusCode::TOO_MANY_REQUESTS)
                .detail(format!("too many {} requests; retry in {secs}s", class.as_str()))
                .header(axum::http::header::RETRY_AFTER, HeaderValue::from(secs))
                .header(axum::http::HeaderName::from_static("ratelimit-limit"), HeaderValue::from(*limit))
                .header(axum::http::HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(0u32))
                .header(axum::http::HeaderName::from_static("ratelimit-reset"), HeaderValue::from(secs))
                .into_response()
        }
    }
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
