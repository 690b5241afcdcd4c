//! Forwarding to services that run in their own processes.
//!
//! The request goes upstream with its method, path, query, body and end-to-end headers
//! (`x-request-id`, `traceparent`, `authorization`, …) plus `x-forwarded-for`; the answer
//! comes back as it is. An upstream that cannot be reached becomes a 503 problem, one that
//! does not answer in time a 504, and any other transport failure a 502.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use futures::TryStreamExt;
use kit::contract::ServiceName;
use kit::problem::{self, ApiError};

/// One upstream service.
pub struct Target {
    pub service: ServiceName,
    pub base: url::Url,
    pub client: reqwest::Client,
}

/// The HTTP client used for upstream calls.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        // A redirect is the upstream's answer for the client (e.g. the hosted payment page's
        // 303 to the shop's success URL), never something the gateway follows itself.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// A route that forwards every method to `target`.
pub fn any(target: Arc<Target>) -> MethodRouter {
    axum::routing::any(move |req: Request| forward(target.clone(), req))
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

async fn forward(target: Arc<Target>, req: Request) -> Response {
    // The matched path is appended to the base as it is, never resolved against it; a URL whose
    // path is not exactly the request's (dot segments the guard missed) is not forwarded.
    let path = req.uri().path();
    let url = format!(
        "{}{}",
        target.base.as_str().trim_end_matches('/'),
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let prefix = target.base.path().trim_end_matches('/');
    let url = match url::Url::parse(&url) {
        Ok(u) if u.path().strip_prefix(prefix) == Some(path) => u,
        _ => return ApiError::bad_request("the request path cannot be forwarded").into_response(),
    };
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    let mut headers = end_to_end(&parts.headers);
    if let Some(ip) = peer {
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let result = target
        .client
        .request(parts.method, url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    match result {
        Ok(res) => {
            let status = res.status();
            let headers = end_to_end(res.headers());
            let body = Body::from_stream(res.bytes_stream());
            let mut out = Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            out
        }
        Err(e) => upstream_error(target.service, &e).into_response(),
    }
}

fn upstream_error(service: ServiceName, e: &reqwest::Error) -> ApiError {
    tracing::warn!(%service, error = %e, "upstream call failed");
    if e.is_timeout() {
        problem::for_status(StatusCode::GATEWAY_TIMEOUT)
            .detail(format!("the {service} service did not answer in time"))
    } else if e.is_connect() {
        ApiError::unavailable(format!("the {service} service is unreachable"))
    } else {
        problem::for_status(StatusCode::BAD_GATEWAY).detail(format!("the {service} service failed to answer"))
    }
}

/// Readiness of a remote upstream: its own `/readyz` answers 200.
pub struct UpstreamReady {
    pub target: Arc<Target>,
}

#[async_trait::async_trait]
impl kit::health::Check for UpstreamReady {
    fn name(&self) -> &str {
        self.target.service.as_str()
    }
    async fn check(&self) -> Result<(), String> {
        let url = self.target.base.join("/readyz").map_err(|e| e.to_string())?;
        let res = self
            .target
            .client
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("/readyz answered {}", res.status()))
        }
    }
}
