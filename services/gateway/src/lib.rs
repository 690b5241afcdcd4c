//! The API gateway: the one public listener of the platform.
//!
//! It routes `/api/v1/<area>/…` to the services — to their routers in the same process
//! (`shop serve all`) or over HTTP to their URLs (`shop serve gateway`) — and owns the edge
//! concerns: the assembled OpenAPI document (`/api/v1/openapi.json`) and Swagger UI (`/docs`),
//! CORS, the request body limit, the request timeout, and turning upstream failures into
//! 502/503/504 problem documents.

pub mod aggregate;
pub mod config;
pub mod console;
pub mod edge;
pub mod events;
pub mod openapi;
pub mod proxy;
pub mod session;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use kit::client::{ClientPolicy, ServiceClient};
use kit::contract::ServiceName;
use kit::health::Readiness;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use config::{ConsoleConfig, GatewayConfig, RateLimitConfig};

/// How the gateway reaches one service.
pub enum Upstream {
    /// The service's router, in this process.
    Local(Router),
    /// The service's base URL (`http://catalog:8080`).
    Remote(url::Url),
}

/// Builds the gateway app over `upstreams`. `readiness` is what `/readyz` reports (the
/// in-process services' own checks, plus the upstreams' `/readyz` in remote mode). With a
/// `verifier`, bearer tokens are checked at the edge (see [`edge`]).
pub fn app(
    config: &GatewayConfig,
    upstreams: Vec<(ServiceName, Upstream)>,
    docs: utoipa::openapi::OpenApi,
    readiness: Readiness,
    verifier: Option<kit::auth::Verifier>,
) -> Router {
    let limits = config.rate_limit.enabled.then(|| edge::Limits::new(&config.rate_limit));
    let (api, checks) = api(config, upstreams, docs, verifier, limits);
    let readiness = checks.into_iter().fold(readiness, |r, c| r.with_informational("upstream", c));
    kit::http::service_app("gateway", api, readiness)
}

/// The gateway's routes over `upstreams` (without health, metrics and the common layers,
/// which [`app`] or the composer add) and the checks of its remote upstreams (informational:
/// the gateway stays ready while one service is down, and says which). `limits`: the rate
/// limits, when enabled.
pub fn api(
    config: &GatewayConfig,
    upstreams: Vec<(ServiceName, Upstream)>,
    docs: utoipa::openapi::OpenApi,
    verifier: Option<kit::auth::Verifier>,
    limits: Option<Arc<edge::Limits>>,
) -> (Router, Vec<Arc<dyn kit::health::Check>>) {
    api_with_events(
        config,
        upstreams,
        docs,
        verifier,
        limits,
        events::Events::new(None, 0, Default::default()),
    )
}

/// [`api`] with the view of the event bus the console's event browser reads.
pub fn api_with_events(
    config: &GatewayConfig,
    upstreams: Vec<(ServiceName, Upstream)>,
    docs: utoipa::openapi::OpenApi,
    verifier: Option<kit::auth::Verifier>,
    limits: Option<Arc<edge::Limits>>,
    events: events::Events,
) -> (Router, Vec<Arc<dyn kit::health::Check>>) {
    let client = proxy::client(Duration::from_secs(config.upstream_timeout_secs));
    let mut api = Router::new();
    let mut checks: Vec<Arc<dyn kit::health::Check>> = Vec::new();
    let (mut clients, mut local) = (HashMap::new(), HashSet::new());
    let policy =
        ClientPolicy { timeout: Duration::from_secs(config.upstream_timeout_secs), ..Default::default() };
    for (service, upstream) in upstreams {
        match upstream {
            Upstream::Local(router) => {
                clients
                    .insert(service, ServiceClient::router(service.as_str(), router.clone(), policy.clone()));
                local.insert(service);
                api = api.merge(router)
            }
            Upstream::Remote(base) => {
                let base_str = base.as_str().trim_end_matches('/').to_string();
                clients.insert(service, ServiceClient::http(service.as_str(), &base_str, policy.clone()));
                let target = Arc::new(proxy::Target { service, base: base.clone(), client: client.clone() });
                for prefix in service.public_prefixes() {
                    api = api
                        .route(prefix, proxy::any(target.clone()))
                        .route(&format!("{prefix}/{{*rest}}"), proxy::any(target.clone()));
                }
                checks.push(Arc::new(proxy::UpstreamReady { target }));
            }
        }
    }
    if config.console.enabled {
        let sessions = session::Sessions {
            auth: clients.get(&ServiceName::Auth).cloned(),
            verifier: verifier.clone(),
            secure_cookies: config.console.secure_cookies,
        };
        let files = match &config.console.dir {
            Some(dir) => console::Files::from_dir(dir.clone()),
            None => console::Files::embedded(),
        };
        api =
            api.merge(console::routes(files)).merge(session::routes(sessions)).merge(events::routes(events));
    }
    let mut api =
        api.merge(openapi::routes(docs)).merge(aggregate::routes(aggregate::Peers::new(clients, local)));
    // Innermost first: rate limits need the identity that authentication attaches; a refused
    // token is limited per client address inside authentication; the guard (internal headers)
    // runs before both.
    if let Some(limits) = limits.clone() {
        api = api
            .layer(axum::middleware::from_fn(move |req, next| edge::rate_limit(limits.clone(), req, next)));
    }
    if let Some(verifier) = verifier {
        api = api.layer(axum::middleware::from_fn(move |req, next| {
            edge::authenticate(verifier.clone(), limits.clone(), req, next)
        }));
    }
    let api = api
        .layer(axum::middleware::from_fn(edge::guard))
        .layer(RequestBodyLimitLayer::new(config.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(config.request_timeout_secs),
        ))
        .layer(cors(config));
    (api, checks)
}

/// The gateway as the composer sees it (`kit::component`): every other service is its peer
/// (their routers in one process, their URLs apart); the composer hands it the assembled
/// OpenAPI document and the token verifier.
pub fn service(config: GatewayConfig) -> kit::component::Service {
    kit::component::Service::new(ServiceName::Gateway, None, aggregate::openapi, |cx| async move {
        let mut upstreams = Vec::new();
        for peer in ServiceName::Gateway.peers() {
            let upstream = match cx.peer(*peer)? {
                kit::component::Peer::Local(router) => Upstream::Local(router),
                kit::component::Peer::Remote(url) => Upstream::Remote(url),
            };
            upstreams.push((*peer, upstream));
        }
        let docs = cx.openapi.clone().unwrap_or_else(aggregate::openapi);
        let limits = match config.rate_limit.enabled {
            true => Some(edge::Limits::connect(&config.rate_limit).await?),
            false => None,
        };
        // The event browser's view of the bus: the bus's own tap in one process; apart, a
        // read-only Kafka reader of the gateway's own.
        let mut tasks = Vec::new();
        let tap = match cx.bus().ok().and_then(|bus| bus.tap()) {
            Some(tap) => Some(tap),
            None => match &config.events {
                Some(ev) if config.console.enabled && ev.bus == kit::events::BusKind::Kafka => {
                    let tap = kit::events::tap::Tap::new(config.console.event_tap_capacity);
                    tasks.push(kit::events::kafka::spawn_tap(ev.clone(), tap.clone(), cx.shutdown.clone()));
                    Some(tap)
                }
                _ => None,
            },
        };
        let events = events::Events::new(tap, config.console.max_event_streams, cx.shutdown.clone());
        let (api, checks) = api_with_events(&config, upstreams, docs, cx.verifier.clone(), limits, events);
        let component = tasks.into_iter().fold(kit::component::Component::new(api), |c, t| c.task(t));
        Ok(checks.into_iter().fold(component, |c, check| c.informational(check)))
    })
}

fn cors(config: &GatewayConfig) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers(Any)
        .max_age(Duration::from_secs(600));
    if config.cors_origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let origins: Vec<_> = config.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(origins))
    }
}
