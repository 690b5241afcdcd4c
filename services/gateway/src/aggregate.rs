//! Endpoints the gateway answers itself by asking several services at once:
//!
//! - `GET /api/v1/bff/orders/{id}`: an order with its products (current catalog view) and its
//!   payments, in one call (the backend-for-frontend "request aggregation"). The order is
//!   required; products and payments are best effort — a part that cannot be fetched is left
//!   out and named in `degraded`.
//! - `GET /api/v1/info`: `/info` of every service, for operators.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kit::client::{Call, ServiceClient};
use kit::contract::ServiceName;
use kit::extract::Path;
use kit::info::ServiceInfo;
use kit::openapi::{responses as r, BearerSecurity, Problems};
use kit::ApiError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Clients of the services, by name; `local` ones run in this process.
#[derive(Clone, Default)]
pub struct Peers {
    clients: Arc<HashMap<ServiceName, ServiceClient>>,
    local: Arc<HashSet<ServiceName>>,
}

impl Peers {
    pub fn new(clients: HashMap<ServiceName, ServiceClient>, local: HashSet<ServiceName>) -> Peers {
        Peers { clients: Arc::new(clients), local: Arc::new(local) }
    }

    fn get(&self, s: ServiceName) -> Result<&ServiceClient, ApiError> {
        self.clients
            .get(&s)
            .ok_or_else(|| ApiError::unavailable(format!("the {s} service is not configured")))
    }
}

/// The answer of `GET /api/v1/bff/orders/{id}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The order, as `GET /api/v1/orders/{id}` returns it.
    #[schema(value_type = Object)]
    pub order: Value,
    /// The order's products as the catalog shows them now (name, slug, images, price).
    #[schema(value_type = Vec<Object>)]
    pub products: Vec<Value>,
    /// The latest payment of the order, if any.
    #[schema(value_type = Option<Object>)]
    pub payment: Option<Value>,
    /// `AUTHORIZED`, `CAPTURED`, … of the latest payment; `NONE` without one.
    pub payment_status: String,
    /// Parts that could not be fetched (`products`, `payments`): the rest is still current.
    pub degraded: Vec<String>,
}

fn forward(call: Call, headers: &HeaderMap) -> Call {
    let mut call = call;
    for name in [header::AUTHORIZATION, kit::http::REQUEST_ID] {
        if let Some(v) = headers.get(&name) {
            call = call.header(name, v.clone());
        }
    }
    call
}

/// An order with its products and payment status in one call.
#[utoipa::path(
    get, path = "/api/v1/bff/orders/{id}", tag = "gateway",
    params(("id" = Uuid, Path, description = "Order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order, its products and payments", body = OrderView),
        r::Read, r::NotFound, r::ServiceUnavailable,
    )
)]
pub async fn order_view(
    State(peers): State<Peers>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let orders = peers.get(ServiceName::Order)?;
    let reply = orders.send(forward(Call::get(format!("/api/v1/orders/{id}")), &headers)).await?;
    if !reply.status.is_success() {
        // The order service's verdict (401, 404, …) as it gave it.
        let mut resp = (reply.status, reply.body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, "application/problem+json".parse().expect("static"));
        return Ok(resp);
    }
    let order: Value = reply.json("order")?;
    let ids: Vec<Value> = order["items"]
        .as_array()
        .map(|a| a.iter().map(|i| i["productId"].clone()).collect())
        .unwrap_or_default();

    let products = async {
        let catalog = peers.get(ServiceName::Catalog).ok()?;
        let call = forward(
            Call::post("/api/v1/products/batch", &serde_json::json!({ "ids": ids })).idempotent(),
            &headers,
        );
        match catalog.json::<Value>(call).await {
            Ok(Ok(v)) => Some(v.get("products").and_then(Value::as_array).cloned().unwrap_or_default()),
            _ => None,
        }
    };
    let payments = async {
        let payment = peers.get(ServiceName::Payment).ok()?;
        match payment.send(forward(Call::get(format!("/api/v1/payments/order/{id}")), &headers)).await {
            Ok(r) if r.status.is_success() => serde_json::from_slice::<Vec<Value>>(&r.body).ok(),
            Ok(r) if r.status == StatusCode::NOT_FOUND => Some(Vec::new()),
            _ => None,
        }
    };
    let (products, payments) = tokio::join!(products, payments);
    let mut degraded = Vec::new();
    if products.is_none() {
        degraded.push("products".to_string());
    }
    if payments.is_none() {
        degraded.push("payments".to_string());
    }
    let payment = payments.and_then(|p| p.into_iter().next());
    let payment_status = payment
        .as_ref()
        .and_then(|p| p["status"].as_str())
        .unwrap_or(if degraded.iter().any(|d| d == "payments") { "UNKNOWN" } else { "NONE" })
        .to_string();
    let view = OrderView { order, products: products.unwrap_or_default(), payment, payment_status, degraded };
    Ok(Json(view).into_response())
}

/// One row of `GET /api/v1/info`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub name: String,
    /// `up` when the service answered.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<ServiceInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The version, revision, build time, mode and configuration warnings of every service (admin:
/// build details help whoever attacks a known version).
#[utoipa::path(
    get, path = "/api/v1/info", tag = "gateway", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every service's `/info`", body = Vec<ServiceStatus>),
        r::Always, r::Forbidden,
    )
)]
pub async fn all_info(
    State(peers): State<Peers>,
    id: kit::auth::Identity,
) -> kit::ApiResult<Json<Vec<ServiceStatus>>> {
    id.require_admin()?;
    let mut names: Vec<ServiceName> = peers.clients.keys().copied().collect();
    names.sort();
    let asks = names.into_iter().map(|name| {
        let client = peers.clients.get(&name).cloned();
        let local = peers.local.contains(&name);
        async move {
            if local {
                let info = kit::info::info(name.as_str());
                return ServiceStatus {
                    name: name.to_string(),
                    status: "up".into(),
                    info: Some(info),
                    error: None,
                };
            }
            let answer = match client {
                Some(c) => c.json::<ServiceInfo>(Call::get("/info")).await,
                None => {
                    return ServiceStatus {
                        name: name.to_string(),
                        status: "down".into(),
                        info: None,
                        error: None,
                    }
                }
            };
            match answer {
                Ok(Ok(info)) => ServiceStatus {
                    name: name.to_string(),
                    status: "up".into(),
                    info: Some(info),
                    error: None,
                },
                Ok(Err(r)) => ServiceStatus {
                    name: name.to_string(),
                    status: "down".into(),
                    info: None,
                    error: Some(format!("answered {}", r.status)),
                },
                Err(e) => ServiceStatus {
                    name: name.to_string(),
                    status: "down".into(),
                    info: None,
                    error: Some(e.to_string()),
                },
            }
        }
    });
    let mut rows = futures::future::join_all(asks).await;
    rows.insert(
        0,
        ServiceStatus {
            name: "gateway".into(),
            status: "up".into(),
            info: Some(kit::info::info("gateway")),
            error: None,
        },
    );
    Ok(Json(rows))
}

/// The gateway's own aggregate routes.
pub fn routes(peers: Peers) -> Router {
    Router::new()
        .route("/api/v1/bff/orders/{id}", get(order_view))
        .route("/api/v1/info", get(all_info))
        .with_state(peers)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        order_view, all_info,
        crate::session::sign_in, crate::session::current, crate::session::refresh, crate::session::sign_out,
        crate::events::list, crate::events::stream,
    ),
    components(schemas(
        OrderView, ServiceStatus, ServiceInfo,
        crate::session::SignIn, crate::session::SessionUser, crate::session::SessionView,
        crate::events::EventView, crate::events::RecentEvents,
    )),
    modifiers(&BearerSecurity, &Problems),
    tags(
        (name = "gateway", description = "Answers the gateway composes from several services"),
        (name = "console", description = "The admin console's cookie session and its view of the event bus"),
    )
)]
struct AggregateApi;

/// The OpenAPI document of the gateway's own routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <AggregateApi as utoipa::OpenApi>::openapi()
}
