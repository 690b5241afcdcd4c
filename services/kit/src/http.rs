//! The HTTP stack every service shares: request ids, access log, metrics, panic capture,
//! problem-document normalisation, health and metrics routes, graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::health::Readiness;
use crate::problem::{self, ApiError, ErrorCode, PROBLEM_JSON};

/// Header carrying the request id, set at the edge and propagated to every service.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps a service's API router with the shared middleware and adds `/healthz`, `/readyz`,
/// `/metrics` and `/info` on the same listener (`shop up`, tests). `service` labels metrics and
/// logs. Production runs split them with [`service_apps`].
pub fn service_app(service: &'static str, api: Router, readiness: Readiness) -> Router {
    let routes = api
        .merge(crate::health::routes(readiness))
        .merge(crate::metrics::routes())
        .merge(crate::info::routes(service));
    with_common_layers(service, routes)
}

/// A service's two listeners' apps.
#[derive(Clone)]
pub struct Apps {
    /// The API plus `/healthz` (and `/info` for services inside the cluster; not for the
    /// gateway, whose API port faces the internet).
    pub public: Router,
    /// `/healthz`, `/readyz` (with each dependency's error text), `/metrics`, `/info`: for the
    /// kubelet and Prometheus on the internal operations port (`SHOP_OPS_ADDR`), never routed by
    /// the Ingress.
    pub ops: Router,
    /// Both on one listener (when no operations address is configured).
    pub combined: Router,
}

/// [`service_app`] split in a public and an operations app.
pub fn service_apps(service: &'static str, api: Router, readiness: Readiness) -> Apps {
    let healthz = Router::new().route(
        "/healthz",
        axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    );
    let mut public = api.clone().merge(healthz);
    if service != "gateway" {
        public = public.merge(crate::info::routes(service));
    }
    let ops = crate::health::routes(readiness.clone())
        .merge(crate::metrics::routes())
        .merge(crate::info::routes(service));
    Apps {
        public: with_common_layers(service, public),
        ops: with_common_layers(service, ops),
        combined: service_app(service, api, readiness),
    }
}

/// The client's address: the TCP `peer`, or — with `trusted_hops = N` proxies of our own in front
/// (an ingress controller; the gateway for the services behind it) — the N-th `X-Forwarded-For`
/// entry from the right. Entries further left are whatever the client sent and are never
/// trusted; with fewer entries than hops, the peer. The one client-address rule of the platform
/// (rate limits, login throttles, logs).
pub fn client_ip(
    headers: &axum::http::HeaderMap,
    peer: Option<std::net::IpAddr>,
    trusted_hops: usize,
) -> Option<std::net::IpAddr> {
    if trusted_hops == 0 {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    entries.len().checked_sub(trusted_hops).and_then(|i| entries.get(i)).and_then(|s| s.parse().ok()).or(peer)
}

/// Process-wide HTTP options, set once at start ([`configure`]).
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// `Strict-Transport-Security: max-age=<n>; includeSubDomains` on every answer (set when
    /// the shop is served over TLS, e.g. an Ingress with a TLS secret).
    pub hsts_max_age_secs: Option<u64>,
}

static OPTIONS: std::sync::OnceLock<HttpOptions> = std::sync::OnceLock::new();

/// Sets the process-wide HTTP options (first call wins).
pub fn configure(options: HttpOptions) {
    let _ = OPTIONS.set(options);
}

/// The `Content-Security-Policy` of HTML answers (Swagger UI, the hosted payment page): only
/// this origin's scripts, no framing, no plugins.
pub const HTML_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Security headers on every answer: `nosniff`, no referrer, no framing, a restrictive CSP on
/// HTML, HSTS when configured, and `Cache-Control: no-store` on answers to requests that carry
/// credentials or come from the auth API (tokens), unless the handler chose a caching policy.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let credentials = req.headers().contains_key(header::AUTHORIZATION)
        || req.headers().contains_key(header::COOKIE)
        || req.uri().path().starts_with("/api/v1/auth");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let html =
        h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    if html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(HTML_CSP));
    }
    if credentials && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(age) = OPTIONS.get().and_then(|o| o.hsts_max_age_secs) {
        if let Ok(v) = HeaderValue::from_str(&format!("max-age={age}; includeSubDomains")) {
            h.insert(header::STRICT_TRANSPORT_SECURITY, v);
        }
    }
    res
}

/// The shared middleware stack (outermost first): request id, access log, panic capture,
/// metrics, problem normalisation. Unknown routes answer a 404 problem.
pub fn with_common_layers(service: &'static str, router: Router) -> Router {
    router
        .fallback(fallback)
        .layer(middleware::from_fn(refuse_suspicious_paths))
        .layer(middleware::from_fn(normalize_errors))
        .layer(middleware::from_fn(close_if_body_unread))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(move |req, next| crate::metrics::track(service, req, next)))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a request handler panicked").into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |req: &Request| {
                    let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", service, request_id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_millis() as u64, "served");
                })
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Answers `Connection: close` when the request had a body that nobody read (a 405, a 401 or a
/// 400 for a path parameter decided before the body was looked at). The HTTP layer then closes
/// the connection rather than read the rest, and without the header a client that reuses the
/// connection for its next request would find it closed under it.
pub async fn close_if_body_unread(req: Request, next: Next) -> Response {
    use http_body::Body as _;
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let read = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = Body::new(ReadTracked { inner: body, read: read.clone() });
    let mut res = next.run(Request::from_parts(parts, body)).await;
    if !read.load(std::sync::atomic::Ordering::Acquire) {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// A request body that records when it has been read to its end.
struct ReadTracked {
    inner: Body,
    read: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for ReadTracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None) | std::task::Poll::Ready(Some(Err(_))))
            || self.inner.is_end_stream()
        {
            self.read.store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a raw request path holds a dot segment (`.`, `..`, raw or percent-encoded, in any
/// case) or a backslash (raw or `%5C`): what URL resolution would collapse or turn into a
/// separator, reaching paths outside the route the request matched (a proxy's `{*rest}` joined
/// onto its upstream's address).
pub fn suspicious_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    if lower.contains('\\') || lower.contains("%5c") {
        return true;
    }
    lower.split('/').any(|segment| {
        let decoded = segment.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// 400 `bad_path` for [`suspicious_path`]s, whatever route (or none) they would match: no
/// service of the platform has a path that needs them.
pub async fn refuse_suspicious_paths(req: Request, next: Next) -> Response {
    if suspicious_path(req.uri().path()) {
        return ApiError::new(ErrorCode::BadPath)
            .detail("the path may not contain dot segments or backslashes")
            .into_response();
    }
    next.run(req).await
}

async fn fallback(req: Request) -> ApiError {
    ApiError::not_found(format!("no route for {} {}", req.method(), req.uri().path()))
}

/// Turns any error response whose body is not JSON (axum's 405, a body-limit 413, a timeout,
/// a plain-text rejection, …) into a problem document, keeping its status and headers.
pub async fn normalize_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    // Problem documents pass as they are, and so do deliberate JSON answers (`/readyz`).
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut err = problem::for_status(status);
    let text = String::from_utf8_lossy(&text).trim().to_string();
    if !text.is_empty() && status != StatusCode::INTERNAL_SERVER_ERROR {
        err = err.detail(text);
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        err = err.detail(format!("{path} does not support this method"));
    }
    let mut p = err.to_problem();
    p.instance = Some(path);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(serde_json::to_vec(&p).unwrap_or_default()))
}

/// Binds `addr`, serves `app` until SIGINT/SIGTERM, then drains in-flight requests.
pub async fn serve(addr: SocketAddr, app: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, app, shutdown_signal()).await
}

/// Resolves `delay` after SIGINT/SIGTERM, having called `readiness.drain()` at the signal: the
/// service answers `/readyz` with 503 `draining` while it still serves, so load balancers take it
/// out of rotation before the listener stops accepting (Kubernetes: keep the pod's grace period
/// above this delay plus the longest request). Then [`stopping`] is cancelled.
pub async fn drain_then_stop(readiness: Readiness, delay: Duration) {
    shutdown_signal().await;
    readiness.drain();
    tracing::info!(delay_secs = delay.as_secs(), "stopping: draining before the listeners close");
    tokio::time::sleep(delay).await;
    stopping().cancel();
}

static STOPPING: std::sync::OnceLock<tokio_util::sync::CancellationToken> = std::sync::OnceLock::new();

/// Cancelled when the process's listeners stop (after the drain of [`drain_then_stop`]).
/// Answers that never end by themselves — event streams — end with it, so a graceful shutdown
/// does not wait for them.
pub fn stopping() -> tokio_util::sync::CancellationToken {
    STOPPING.get_or_init(tokio_util::sync::CancellationToken::new).clone()
}

/// Serves `app` on an already-bound listener until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_trusts_only_the_configured_hops() {
        let peer: Option<std::net::IpAddr> = Some("10.0.0.9".parse().unwrap());
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(client_ip(&h, None, 0), None);
        assert_eq!(client_ip(&h, peer, 1), peer, "no header: the peer");
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.5, 198.51.100.1".parse().unwrap());
        assert_eq!(client_ip(&h, peer, 0), peer, "no trusted proxy: the header is ignored");
        assert_eq!(client_ip(&h, None, 0), None, "never the client's own claim");
        assert_eq!(client_ip(&h, peer, 1), Some("198.51.100.1".parse().unwrap()), "appended by our proxy");
        assert_eq!(client_ip(&h, peer, 2), Some("203.0.113.5".parse().unwrap()));
        assert_eq!(client_ip(&h, peer, 4), peer, "fewer entries than hops");
        h.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(client_ip(&h, peer, 1), peer, "garbage: the peer");
    }
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    fn app() -> Router {
        let api = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "ok" }))
            .route("/text-error", get(|| async { (StatusCode::CONFLICT, "plain words") }));
        service_app("test", api, Readiness::new())
    }

    #[tokio::test]
    async fn a_body_nobody_read_closes_the_connection() {
        let api = Router::new().route("/echo", axum::routing::post(|body: String| async move { body }));
        let app = service_app("test", api, Readiness::new());
        let req = |method: &str, body: &'static str| {
            Request::builder().method(method).uri("/echo").body(Body::from(body)).unwrap()
        };
        let (status, headers, _) = call(app.clone(), req("PUT", "null")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::CONNECTION], "close", "405 before the body was read");
        let res = app.clone().oneshot(req("POST", "null")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(!res.headers().contains_key(header::CONNECTION), "the handler read the body");
        let res = app.oneshot(req("PUT", "")).await.unwrap();
        assert!(!res.headers().contains_key(header::CONNECTION), "no body: nothing left unread");
    }

    async fn call(app: Router, req: Request) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let res = app.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn errors_are_problem_documents() {
        let (s, h, v) = call(app(), Request::get("/nope").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(h[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(v["code"], "not_found");

        let (s, h, v) = call(app(), Request::post("/ok").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(h[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(v["code"], "method_not_allowed");
        assert!(h.contains_key(header::ALLOW));

        let (s, _, v) = call(app(), Request::get("/text-error").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::CONFLICT);
        assert_eq!(v["detail"], "plain words");

        let (s, _, v) = call(app(), Request::get("/boom").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v["code"], "internal_error");
    }

    #[tokio::test]
    async fn sets_request_id_and_serves_health() {
        let res = app().oneshot(Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().contains_key(REQUEST_ID));
        let res = app()
            .oneshot(Request::get("/ok").header(REQUEST_ID, "abc-123").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.headers()[REQUEST_ID], "abc-123", "an incoming id is kept");
        let (s, _, v) = call(app(), Request::get("/readyz").body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["status"], "ready");
    }

    #[tokio::test]
    async fn metrics_count_requests_by_route() {
        let a = app();
        a.clone().oneshot(Request::get("/ok").body(Body::empty()).unwrap()).await.unwrap();
        let res = a.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
        let text = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(text.contains("http_requests_total"), "{text}");
        assert!(text.contains(r#"route="/ok""#), "{text}");
    }
}
