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
use crate::problem::{self, ApiError, PROBLEM_JSON};

/// Header carrying the request id, set at the edge and propagated to every service.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps a service's API router with the shared middleware and adds `/healthz`, `/readyz`,
/// `/metrics`. `service` labels metrics and logs.
pub fn service_app(service: &'static str, api: Router, readiness: Readiness) -> Router {
    let routes = api
        .merge(crate::health::routes(readiness))
        .merge(crate::metrics::routes())
        .merge(crate::info::routes(service));
    with_common_layers(service, routes)
}

/// The shared middleware stack (outermost first): request id, access log, panic capture,
/// metrics, problem normalisation. Unknown routes answer a 404 problem.
pub fn with_common_layers(service: &'static str, router: Router) -> Router {
    router
        .fallback(fallback)
        .layer(middleware::from_fn(normalize_errors))
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
