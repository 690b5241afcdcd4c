//! HTTP handlers, the router and the OpenAPI document of the inventory.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use kit::auth::{Identity, MaybeIdentity};
use kit::extract::{Json, Path, Query};
use kit::openapi::{responses as r, Problems, ServiceSecurity};
use kit::pagination::{Page, PageParams};
use kit::problem::FieldError;
use kit::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::model::*;
use crate::store::{insufficient_stock, Origin, ReserveOutcome, Transition};
use crate::InventoryState;

/// Header carrying the internal service credential.
pub use kit::client::INTERNAL_TOKEN_HEADER;

/// A caller of the reservation endpoints: another service (internal token) or an admin.
#[derive(Debug, Clone)]
pub struct ServiceCaller(pub Origin);

impl FromRequestParts<InventoryState> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &InventoryState) -> Result<Self, Self::Rejection> {
        if let Some(verdict) =
            kit::client::verify_internal(&parts.headers, state.config.internal_token.as_ref())
        {
            return verdict.map(|()| ServiceCaller(Origin::service()));
        }
        let who = Identity::from_request_parts(parts, state).await?;
        who.require_admin()?;
        Ok(ServiceCaller(Origin::user(who.user_id)))
    }
}

/// The query of `GET /api/v1/inventory`: the page and the filter (nothing else).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StockQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<u32>,
    /// Only products whose available quantity is at or below their reorder level.
    pub low_stock: Option<bool>,
}

/// List stock rows (admin), by SKU.
#[utoipa::path(
    get, path = "/api/v1/inventory", tag = "inventory",
    params(StockQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of stock rows", body = Page<Stock>),
        r::List, r::Admin,
    )
)]
pub async fn list_stock(
    State(st): State<InventoryState>,
    who: Identity,
    Query(q): Query<StockQuery>,
) -> ApiResult<Json<Page<Stock>>> {
    who.require_admin()?;
    let page = PageParams { page: q.page, page_size: q.page_size }.validate()?;
    let (items, total) = st.store.list(q.low_stock.unwrap_or(false), page).await?;
    Ok(Json(Page::new(items, page, total)))
}

/// Stock of one product: everyone sees `availableQuantity` and `inStock`; admins see the
/// full row.
#[utoipa::path(
    get, path = "/api/v1/inventory/{productId}", tag = "inventory",
    params(("productId" = Uuid, Path, description = "Product id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Full row (admin) or availability", body = StockView),
        r::Read, r::NotFound,
    )
)]
pub async fn get_stock(
    State(st): State<InventoryState>,
    MaybeIdentity(who): MaybeIdentity,
    Path(product_id): Path<Uuid>,
) -> ApiResult<Json<StockView>> {
    let stock = st
        .store
        .get(product_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no stock for product {product_id}")))?;
    Ok(Json(if who.as_ref().is_some_and(Identity::is_admin) {
        StockView::Full(stock)
    } else {
        StockView::Public(Availability::from(&stock))
    }))
}

/// Create the stock row of a product (admin).
#[utoipa::path(
    post, path = "/api/v1/inventory", tag = "inventory",
    request_body = NewStock,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Stock,
            headers(("Location" = String, description = "URL of the stock row"))),
        r::Write, r::Admin, r::Conflict,
    )
)]
pub async fn create_stock(
    State(st): State<InventoryState>,
    who: Identity,
    Json(input): Json<NewStock>,
) -> ApiResult<impl IntoResponse> {
    who.require_admin()?;
    let stock = st.store.create(&input, &Origin::user(who.user_id)).await?;
    let location = format!("/api/v1/inventory/{}", stock.product_id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(stock)))
}

/// Change SKU and re-order settings (admin). Quantities change only through adjustments.
#[utoipa::path(
    put, path = "/api/v1/inventory/{productId}", tag = "inventory",
    params(("productId" = Uuid, Path, description = "Product id")),
    request_body = StockSettings,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated row", body = Stock),
        r::Write, r::Admin, r::NotFound,
    )
)]
pub async fn update_stock(
    State(st): State<InventoryState>,
    who: Identity,
    Path(product_id): Path<Uuid>,
    Json(input): Json<StockSettings>,
) -> ApiResult<Json<Stock>> {
    who.require_admin()?;
    Ok(Json(st.store.update_settings(product_id, &input).await?))
}

/// Record a stock movement (admin): PURCHASE/RETURN add, DAMAGE/SALE subtract, ADJUSTMENT is
/// signed. Available stock never goes below zero.
#[utoipa::path(
    post, path = "/api/v1/inventory/{productId}/adjust", tag = "inventory",
    params(("productId" = Uuid, Path, description = "Product id")),
    request_body = AdjustRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The row after the movement", body = Stock),
        r::Write, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn adjust_stock(
    State(st): State<InventoryState>,
    who: Identity,
    Path(product_id): Path<Uuid>,
    Json(input): Json<AdjustRequest>,
) -> ApiResult<Json<Stock>> {
    who.require_admin()?;
    Ok(Json(st.store.adjust(product_id, &input, &Origin::user(who.user_id)).await?))
}

/// The audit trail of a product, newest first (admin).
#[utoipa::path(
    get, path = "/api/v1/inventory/{productId}/transactions", tag = "inventory",
    params(("productId" = Uuid, Path, description = "Product id"), PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of movements", body = Page<StockTransaction>),
        r::List, r::Admin, r::NotFound,
    )
)]
pub async fn list_transactions(
    State(st): State<InventoryState>,
    who: Identity,
    Path(product_id): Path<Uuid>,
    Query(pp): Query<PageParams>,
) -> ApiResult<Json<Page<StockTransaction>>> {
    who.require_admin()?;
    let page = pp.validate()?;
    if st.store.get(product_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no stock for product {product_id}")));
    }
    let (items, total) = st.store.transactions(product_id, page).await?;
    Ok(Json(Page::new(items, page, total)))
}

/// Reserve stock for an order (services: `x-internal-token`, or admin). All lines or none.
///
/// 201 with a new reservation; 200 with the existing one when the order already holds an
/// active or committed reservation with the same lines (idempotent retry).
#[utoipa::path(
    post, path = "/api/v1/inventory/reservations", tag = "inventory",
    request_body = ReserveRequest,
    security(("bearer" = []), ("internal" = [])),
    responses(
        (status = 201, description = "Reserved", body = Reservation),
        (status = 200, description = "Already reserved (replay)", body = Reservation),
        r::Write, r::Admin, r::Conflict,
    )
)]
pub async fn create_reservation(
    State(st): State<InventoryState>,
    ServiceCaller(origin): ServiceCaller,
    Json(req): Json<ReserveRequest>,
) -> ApiResult<axum::response::Response> {
    match st.store.reserve(req.order_id, &req.items, &origin).await? {
        ReserveOutcome::Created(r) => {
            let location = format!("/api/v1/inventory/reservations/{}", r.order_id);
            Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(r)).into_response())
        }
        ReserveOutcome::Existing(r) => Ok((StatusCode::OK, Json(r)).into_response()),
        ReserveOutcome::Insufficient(s) => Err(insufficient_stock(&s)),
        ReserveOutcome::AlreadyProcessed => Err(ApiError::internal("inbox claim on an HTTP call")),
    }
}

/// The reservation of an order (services or admin).
#[utoipa::path(
    get, path = "/api/v1/inventory/reservations/{orderId}", tag = "inventory",
    params(("orderId" = Uuid, Path, description = "Order id")),
    security(("bearer" = []), ("internal" = [])),
    responses(
        (status = 200, description = "The reservation", body = Reservation),
        r::Read, r::Admin, r::NotFound,
    )
)]
pub async fn get_reservation(
    State(st): State<InventoryState>,
    _caller: ServiceCaller,
    Path(order_id): Path<Uuid>,
) -> ApiResult<Json<Reservation>> {
    st.store
        .reservation(order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no reservation for order {order_id}")))
}

fn transition(t: Transition) -> ApiResult<Json<Reservation>> {
    match t {
        Transition::Done(r) | Transition::Unchanged(r) => Ok(Json(r)),
        Transition::AlreadyProcessed => Err(ApiError::internal("inbox claim on an HTTP call")),
    }
}

/// Commit an order's reservation after payment (services or admin). Idempotent.
#[utoipa::path(
    post, path = "/api/v1/inventory/reservations/{orderId}/commit", tag = "inventory",
    params(("orderId" = Uuid, Path, description = "Order id")),
    security(("bearer" = []), ("internal" = [])),
    responses(
        (status = 200, description = "Committed (now or before)", body = Reservation),
        r::Read, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn commit_reservation(
    State(st): State<InventoryState>,
    ServiceCaller(origin): ServiceCaller,
    Path(order_id): Path<Uuid>,
) -> ApiResult<Json<Reservation>> {
    transition(st.store.commit(order_id, &origin).await?)
}

/// Release an order's reservation (cancel, payment failure; services or admin). Idempotent;
/// the body `{reason?}` is optional.
#[utoipa::path(
    post, path = "/api/v1/inventory/reservations/{orderId}/release", tag = "inventory",
    params(("orderId" = Uuid, Path, description = "Order id")),
    request_body(content = Option<ReleaseRequest>, description = "Optional reason"),
    security(("bearer" = []), ("internal" = [])),
    responses(
        (status = 200, description = "Released (now or before) or expired", body = Reservation),
        r::Write, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn release_reservation(
    State(st): State<InventoryState>,
    ServiceCaller(origin): ServiceCaller,
    Path(order_id): Path<Uuid>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Reservation>> {
    let reason = release_reason(&headers, &body)?;
    transition(st.store.release(order_id, &reason, &origin).await?)
}

/// Put the units of a committed reservation back into stock (an order cancelled after
/// payment; services or admin). Idempotent; the body `{reason?}` is optional.
#[utoipa::path(
    post, path = "/api/v1/inventory/reservations/{orderId}/return", tag = "inventory",
    params(("orderId" = Uuid, Path, description = "Order id")),
    request_body(content = Option<ReleaseRequest>, description = "Optional reason"),
    security(("bearer" = []), ("internal" = [])),
    responses(
        (status = 200, description = "Returned (now or before)", body = Reservation),
        r::Write, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn return_reservation(
    State(st): State<InventoryState>,
    ServiceCaller(origin): ServiceCaller,
    Path(order_id): Path<Uuid>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Reservation>> {
    let reason = release_reason(&headers, &body)?;
    transition(st.store.restock(order_id, &reason, &origin).await?)
}

fn release_reason(headers: &axum::http::HeaderMap, body: &[u8]) -> ApiResult<String> {
    let body: ReleaseRequest = kit::extract::optional_json(headers, body)?;
    let reason = body.reason.unwrap_or_else(|| "released".to_string());
    if reason.chars().count() > MAX_NOTE_LEN {
        return Err(ApiError::invalid_fields(vec![FieldError {
            field: "reason".into(),
            message: "must be at most 500 characters".into(),
        }]));
    }
    Ok(reason)
}

/// The inventory's `/api/v1/...` routes (no common layers; the composer adds them and the
/// token verifier extension).
pub fn router(state: InventoryState) -> Router {
    Router::new()
        .route("/api/v1/inventory", get(list_stock).post(create_stock))
        .route("/api/v1/inventory/reservations", post(create_reservation))
        .route("/api/v1/inventory/reservations/{order_id}", get(get_reservation))
        .route("/api/v1/inventory/reservations/{order_id}/commit", post(commit_reservation))
        .route("/api/v1/inventory/reservations/{order_id}/release", post(release_reservation))
        .route("/api/v1/inventory/reservations/{order_id}/return", post(return_reservation))
        .route("/api/v1/inventory/{product_id}", get(get_stock).put(update_stock))
        .route("/api/v1/inventory/{product_id}/adjust", post(adjust_stock))
        .route("/api/v1/inventory/{product_id}/transactions", get(list_transactions))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_stock, get_stock, create_stock, update_stock, adjust_stock, list_transactions,
        create_reservation, get_reservation, commit_reservation, release_reservation, return_reservation,
    ),
    components(schemas(
        Stock, Availability, StockView, NewStock, StockSettings, TransactionType, StockTransaction,
        AdjustRequest, ReservationLine, ReserveRequest, ReservationStatus, Reservation, Shortage,
        ReleaseRequest,
    )),
    modifiers(&ServiceSecurity, &Problems),
    tags((name = "inventory", description = "Stock levels, reservations and the stock audit trail"))
)]
struct InventoryApi;

/// The OpenAPI document of the inventory's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    InventoryApi::openapi()
}
