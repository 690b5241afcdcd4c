//! HTTP handlers, the router and the OpenAPI document of the order service.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kit::auth::Identity;
use kit::client::verify_internal;
use kit::extract::{optional_json, Json, Path, Query};
use kit::idempotency;
use kit::openapi::{responses as r, Problems, ServiceSecurity};
use kit::pagination::{Page, PageParams};
use kit::problem::{ErrorCode, FieldError};
use kit::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::config::{RateBand, ShippingMethod};
use crate::model::*;
use crate::saga::{PlaceRequest, Saga};
use crate::store::{Actor, OrderFilter, Patch};

/// Who may read an order: another service (internal token) or a signed-in user.
pub enum Caller {
    Service,
    User(Identity),
}

impl Caller {
    fn can_see(&self, order: &Order) -> bool {
        match self {
            Caller::Service => true,
            Caller::User(who) => who.can_see(order.user_id),
        }
    }
}

impl FromRequestParts<Saga> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, saga: &Saga) -> Result<Self, Self::Rejection> {
        if let Some(verdict) = verify_internal(&parts.headers, saga.config.internal_token.as_ref()) {
            return verdict.map(|()| Caller::Service);
        }
        Identity::from_request_parts(parts, saga).await.map(Caller::User)
    }
}

fn created(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body.clone())).into_response();
    if status == StatusCode::CREATED || status == StatusCode::ACCEPTED {
        if let Some(id) = body.get("id").and_then(|v| v.as_str()) {
            if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/orders/{id}")) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
        }
    }
    resp
}

/// What an order-creating request asks for; `lines: None` means "the caller's cart".
struct Placement {
    operation: &'static str,
    fingerprint: String,
    lines: Option<Vec<(Uuid, i64)>>,
    address: Address,
    shipping_method: Option<String>,
    notes: Option<String>,
}

async fn place_idempotently(
    saga: &Saga,
    who: &Identity,
    headers: &HeaderMap,
    p: Placement,
) -> ApiResult<Response> {
    let Placement { operation, fingerprint, lines, address, shipping_method, notes } = p;
    // Unverified accounts may browse and fill a cart, not order (docs/auth.md).
    if !who.email_verified {
        return Err(ApiError::new(ErrorCode::EmailUnverified)
            .detail("open the verification link we mailed (or ask for a new one) before placing an order"));
    }
    let key = idempotency::key_from_headers(headers)?;
    validate_order_input(lines.as_deref(), &address, notes.as_deref()).map_err(ApiError::invalid_fields)?;
    let scope = format!("{}:{operation}", who.user_id);
    let authorization = headers.get(header::AUTHORIZATION).cloned();
    let (status, body) = idempotency::run(saga.store.db(), &scope, &key, &fingerprint, || async {
        let from_cart = lines.is_none();
        let lines = match lines {
            Some(l) => l,
            None => saga.cart_lines(authorization.as_ref()).await?,
        };
        if from_cart && lines.is_empty() {
            return Err(ApiError::new(ErrorCode::CartEmpty)
                .detail("the cart is empty: add items before checking out"));
        }
        validate_order_input(Some(&lines), &address, notes.as_deref()).map_err(ApiError::invalid_fields)?;
        let req = PlaceRequest {
            lines: merge_lines(lines),
            address,
            shipping_method: shipping_method.unwrap_or_else(|| "standard".into()),
            notes,
            idempotency_key: Some(format!("{operation}:{key}")),
        };
        let (status, order) = saga.place(who, req).await?;
        if from_cart && status == StatusCode::CREATED {
            saga.clear_cart(authorization.as_ref()).await;
        }
        Ok((status, serde_json::to_value(order).map_err(ApiError::internal)?))
    })
    .await?;
    Ok(created(status, body))
}

/// Check out the caller's cart: prices from the catalog, stock reserved, cart emptied.
///
/// Requires `Idempotency-Key`: the same key and body replay the first answer; the same key
/// with another body is refused (422 `idempotency_key_reused`). 409 `cart_empty`,
/// `insufficient_stock` or `product_unavailable` (the order is recorded as FAILED);
/// 422 for an address, shipping method or notes that are not acceptable; 403
/// `email_unverified` before the account's email address is verified; 409 `unpaid_order_limit`
/// or `unpaid_unit_limit` past what one customer may hold unpaid at once; 503 when the cart or
/// the catalog cannot be asked.
#[utoipa::path(
    post, path = "/api/v1/orders/checkout", tag = "orders",
    request_body = CheckoutRequest,
    params(kit::idempotency::IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Order placed, stock reserved: status AWAITING_PAYMENT", body = Order),
        (status = 200, description = "The order this Idempotency-Key already made", body = Order),
        (status = 202, description = "Order placed (PENDING); the stock reservation is being retried", body = Order),
        r::Write, r::Forbidden, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn checkout(
    State(saga): State<Saga>,
    who: Identity,
    headers: HeaderMap,
    Json(req): Json<CheckoutRequest>,
) -> ApiResult<Response> {
    let p = Placement {
        operation: "checkout",
        fingerprint: idempotency::fingerprint(&req),
        lines: None,
        address: req.shipping_address,
        shipping_method: req.shipping_method,
        notes: req.notes,
    };
    place_idempotently(&saga, &who, &headers, p).await
}

/// Place an order for explicit items (client prices are ignored; the catalog's apply).
///
/// Requires `Idempotency-Key` (as checkout). 409 `insufficient_stock` or `product_unavailable`
/// (a product that does not exist or is not for sale); 422 for an address, shipping method or
/// notes that are not acceptable; 403 `email_unverified` before the account's email address is
/// verified; 409 `unpaid_order_limit` or `unpaid_unit_limit` past what one customer may hold
/// unpaid at once; 503 when the catalog cannot be asked.
#[utoipa::path(
    post, path = "/api/v1/orders", tag = "orders",
    request_body = CreateOrderRequest,
    params(kit::idempotency::IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Order placed, stock reserved: status AWAITING_PAYMENT", body = Order),
        (status = 200, description = "The order this Idempotency-Key already made", body = Order),
        (status = 202, description = "Order placed (PENDING); the stock reservation is being retried", body = Order),
        r::Write, r::Forbidden, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn create_order(
    State(saga): State<Saga>,
    who: Identity,
    headers: HeaderMap,
    Json(req): Json<CreateOrderRequest>,
) -> ApiResult<Response> {
    let p = Placement {
        operation: "order",
        fingerprint: idempotency::fingerprint(&req),
        lines: Some(req.items.iter().map(|l| (l.product_id, l.quantity)).collect()),
        address: req.shipping_address,
        shipping_method: req.shipping_method,
        notes: req.notes,
    };
    place_idempotently(&saga, &who, &headers, p).await
}

/// The query of `GET /api/v1/orders`: the page and the filter (nothing else).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<u32>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only orders whose customer email contains this text (case-insensitive).
    pub email: Option<String>,
}

/// The caller's orders, newest first (admins: everyone's).
#[utoipa::path(
    get, path = "/api/v1/orders", tag = "orders",
    params(OrderQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of orders (without history)", body = Page<Order>),
        r::List,
    )
)]
pub async fn list_orders(
    State(saga): State<Saga>,
    who: Identity,
    Query(q): Query<OrderQuery>,
) -> ApiResult<axum::Json<Page<Order>>> {
    let page = PageParams { page: q.page, page_size: q.page_size }.validate()?;
    let status = q.status;
    let user = if who.is_admin() { None } else { Some(who.user_id) };
    let email = q.email.filter(|e| !e.trim().is_empty());
    let (items, total) = saga.store.list_filtered(&OrderFilter { user, status, email }, page).await?;
    Ok(axum::Json(Page::new(items, page, total)))
}

/// Period of `GET /api/v1/orders/summary`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Orders created at or after this time (RFC 3339); default: since the first.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Orders created before this time (RFC 3339); default: until now.
    #[param(format = DateTime)]
    pub to: Option<String>,
}

/// Order counts and revenue of a period.
#[derive(Debug, Clone, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    /// Orders created in the period.
    pub orders: i64,
    /// How many of them are in each status (statuses without orders are left out).
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// Per currency: the totals of the period's paid orders minus what was refunded.
    pub revenue: Vec<kit::money::Money>,
}

/// Order counts by status and revenue for a period (admin): the console's dashboard.
#[utoipa::path(
    get, path = "/api/v1/orders/summary", tag = "orders",
    params(SummaryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Counts and revenue", body = OrderSummary),
        r::Read, r::Forbidden, r::Unprocessable,
    )
)]
pub async fn summary(
    State(saga): State<Saga>,
    who: Identity,
    Query(q): Query<SummaryQuery>,
) -> ApiResult<axum::Json<OrderSummary>> {
    who.require_admin()?;
    let mut errors = Vec::new();
    let mut time = |field: &str, v: Option<String>| {
        // Exactly an RFC 3339 time, as the document's `date-time` says.
        let v = v?;
        match time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339) {
            Ok(t) => Some(kit::db::Timestamp::from(t)),
            Err(_) => {
                errors.push(FieldError { field: field.into(), message: "must be an RFC 3339 time".into() });
                None
            }
        }
    };
    let (from, to) = (time("from", q.from), time("to", q.to));
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let (statuses, revenue) = saga.store.summary(from, to).await?;
    Ok(axum::Json(OrderSummary {
        orders: statuses.iter().map(|(_, n)| n).sum(),
        by_status: statuses.into_iter().collect(),
        revenue: revenue
            .into_iter()
            .map(|(currency, amount)| kit::money::Money::new(amount, &currency))
            .collect(),
    }))
}

async fn visible(saga: &Saga, caller: &Caller, id: Uuid) -> ApiResult<Order> {
    match saga.store.get(id).await? {
        Some(o) if caller.can_see(&o) => Ok(o),
        // Someone else's order is reported as absent (no IDOR oracle).
        _ => Err(ApiError::not_found(format!("order {id}"))),
    }
}

/// One order: items, totals, address, payment status, history.
#[utoipa::path(
    get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    security(("bearer" = []), ("internal" = [])),
    responses(
        (status = 200, description = "The order", body = Order),
        r::Read, r::NotFound,
    )
)]
pub async fn get_order(
    State(saga): State<Saga>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Order>> {
    visible(&saga, &caller, id).await.map(axum::Json)
}

/// Cancel an order: customers before it ships, admins until it is delivered. Reserved stock
/// is released (or returned, once committed) and a payment is voided or refunded.
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    request_body(content = Option<CancelRequest>, description = "Optional reason"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled (now or before)", body = Order),
        r::Write, r::NotFound, r::Conflict,
    )
)]
pub async fn cancel_order(
    State(saga): State<Saga>,
    who: Identity,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<Order>> {
    let req: CancelRequest = optional_json(&headers, &body)?;
    if req.reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON_LEN) {
        return Err(ApiError::invalid_fields(vec![FieldError {
            field: "reason".into(),
            message: "must be at most 500 characters".into(),
        }]));
    }
    let order = visible(&saga, &Caller::User(who.clone()), id).await?;
    let admin = who.is_admin();
    if !admin && !order.status.customer_may_cancel() && order.status != OrderStatus::Cancelled {
        return Err(ApiError::conflict(
            ErrorCode::IllegalTransition,
            format!("the order is {} and can no longer be cancelled by the customer", order.status),
        ));
    }
    let reason = req
        .reason
        .unwrap_or_else(|| if admin { "cancelled by an admin" } else { "cancelled by the customer" }.into());
    let patch = Patch { failure_reason: Some(reason.clone()), ..Default::default() };
    let actor = Actor::user(who.user_id, admin);
    let t = saga.store.transition(id, OrderStatus::Cancelled, None, &actor, Some(&reason), patch).await?;
    Ok(axum::Json(t.order()))
}

/// Move an order through fulfilment (admin): `PROCESSING`, `SHIPPED` (carrier and tracking
/// number required), `DELIVERED`, or `CANCELLED`.
#[utoipa::path(
    patch, path = "/api/v1/orders/{id}/status", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    request_body = StatusUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order in its new status", body = Order),
        r::Write, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn update_status(
    State(saga): State<Saga>,
    who: Identity,
    Path(id): Path<Uuid>,
    Json(req): Json<StatusUpdate>,
) -> ApiResult<axum::Json<Order>> {
    apply_status(&saga, &who, id, req).await
}

async fn apply_status(
    saga: &Saga,
    who: &Identity,
    id: Uuid,
    req: StatusUpdate,
) -> ApiResult<axum::Json<Order>> {
    who.require_admin()?;
    let mut errors = Vec::new();
    let mut patch = Patch::default();
    match req.status {
        OrderStatus::Processing | OrderStatus::Delivered => {}
        OrderStatus::Cancelled => patch.failure_reason = req.reason.clone().or(Some("cancelled by an admin".into())),
        OrderStatus::Shipped => {
            for (field, value) in [("carrier", &req.carrier), ("trackingNumber", &req.tracking_number)] {
                match value.as_deref() {
                    Some(v) if !v.trim().is_empty() && v.chars().count() <= MAX_SHIPPING_REF_LEN => {}
                    _ => errors.push(FieldError { field: field.into(), message: "required for SHIPPED (1 to 100 characters)".into() }),
                }
            }
            patch.carrier = req.carrier.as_deref().map(|s| s.trim().to_string());
            patch.tracking_number = req.tracking_number.as_deref().map(|s| s.trim().to_string());
        }
        other => errors.push(FieldError {
            field: "status".into(),
            message: format!("{other} is set by the checkout saga, not by hand (allowed: PROCESSING, SHIPPED, DELIVERED, CANCELLED)"),
        }),
    }
    if req.reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON_LEN) {
        errors.push(FieldError { field: "reason".into(), message: "must be at most 500 characters".into() });
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    if saga.store.get(id).await?.is_none() {
        return Err(ApiError::not_found(format!("order {id}")));
    }
    let actor = Actor::user(who.user_id, true);
    let reason = req.reason.as_deref().or(patch.failure_reason.as_deref()).map(str::to_string);
    let t = saga.store.transition(id, req.status, None, &actor, reason.as_deref(), patch).await?;
    Ok(axum::Json(t.order()))
}

/// Where the parcel is: carrier, tracking number, shipping and delivery times, history.
#[utoipa::path(
    get, path = "/api/v1/orders/{id}/tracking", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    security(("bearer" = []), ("internal" = [])),
    responses(
        (status = 200, description = "Tracking", body = Tracking),
        r::Read, r::NotFound,
    )
)]
pub async fn tracking(
    State(saga): State<Saga>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Tracking>> {
    let o = visible(&saga, &caller, id).await?;
    let s = o.shipment.clone();
    Ok(axum::Json(Tracking {
        order_id: o.id,
        status: o.status,
        shipment_id: s.as_ref().map(|s| s.id),
        shipment_status: s.as_ref().map(|s| s.status),
        carrier: s.as_ref().and_then(|s| s.carrier.clone()).or(o.carrier),
        tracking_number: s.as_ref().and_then(|s| s.tracking_number.clone()).or(o.tracking_number),
        shipped_at: s.as_ref().and_then(|s| s.shipped_at).or(o.shipped_at),
        delivered_at: s.as_ref().and_then(|s| s.delivered_at).or(o.delivered_at),
        events: o.history.unwrap_or_default(),
    }))
}

/// The shipment of an order: a draft until paid, then ready, shipped, delivered (or cancelled).
#[utoipa::path(
    get, path = "/api/v1/orders/{id}/shipment", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    security(("bearer" = []), ("internal" = [])),
    responses(
        (status = 200, description = "The shipment", body = Shipment),
        r::Read, r::NotFound,
    )
)]
pub async fn get_shipment(
    State(saga): State<Saga>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Shipment>> {
    let o = visible(&saga, &caller, id).await?;
    o.shipment.map(axum::Json).ok_or_else(|| ApiError::not_found(format!("shipment of order {id}")))
}

/// Hand the order's shipment to the carrier (admin): the order becomes `SHIPPED`.
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/shipment/ship", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    request_body = ShipRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order, shipped", body = Order),
        r::Write, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn ship(
    State(saga): State<Saga>,
    who: Identity,
    Path(id): Path<Uuid>,
    Json(req): Json<ShipRequest>,
) -> ApiResult<axum::Json<Order>> {
    let update = StatusUpdate {
        status: OrderStatus::Shipped,
        carrier: Some(req.carrier),
        tracking_number: Some(req.tracking_number),
        reason: None,
    };
    apply_status(&saga, &who, id, update).await
}

/// Record the delivery (admin): the order becomes `DELIVERED`.
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/shipment/deliver", tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order, delivered", body = Order),
        r::Read, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn deliver(
    State(saga): State<Saga>,
    who: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Order>> {
    let update =
        StatusUpdate { status: OrderStatus::Delivered, carrier: None, tracking_number: None, reason: None };
    apply_status(&saga, &who, id, update).await
}

/// The shipping methods and their rates (public).
#[utoipa::path(
    get, path = "/api/v1/orders/shipping-methods", tag = "orders",
    responses((status = 200, description = "Shipping methods", body = Vec<ShippingMethod>), r::Always)
)]
pub async fn shipping_methods(State(saga): State<Saga>) -> axum::Json<Vec<ShippingMethod>> {
    axum::Json(saga.config.shipping_methods.clone())
}

/// The order service's `/api/v1/...` routes (no common layers; the composer adds them and the
/// token verifier extension).
pub fn router(saga: Saga) -> Router {
    Router::new()
        .route("/api/v1/orders", get(list_orders).post(create_order))
        .route("/api/v1/orders/checkout", post(checkout))
        .route("/api/v1/orders/shipping-methods", get(shipping_methods))
        .route("/api/v1/orders/summary", get(summary))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .route("/api/v1/orders/{id}/status", axum::routing::patch(update_status))
        .route("/api/v1/orders/{id}/tracking", get(tracking))
        .route("/api/v1/orders/{id}/shipment", get(get_shipment))
        .route("/api/v1/orders/{id}/shipment/ship", post(ship))
        .route("/api/v1/orders/{id}/shipment/deliver", post(deliver))
        .with_state(saga)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        checkout, create_order, list_orders, get_order, cancel_order, update_status, tracking, get_shipment, ship,
        deliver, shipping_methods, summary,
    ),
    components(schemas(
        Order, OrderItem, OrderStatus, Address, CheckoutRequest, CreateOrderRequest, OrderLineRequest,
        CancelRequest, StatusUpdate, Tracking, HistoryEntry, ShippingMethod, Shipment, ShipmentStatus, ShipRequest,
        RateBand, OrderSummary,
    )),
    modifiers(&ServiceSecurity, &Problems),
    tags((name = "orders", description = "Checkout, orders, their status machine, cancellation and tracking"))
)]
struct OrderApi;

/// The OpenAPI document of the order service's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OrderApi::openapi()
}
