//! The checkout saga, orchestrated here: price the lines through the catalog, store the order
//! (`PENDING`), reserve the stock through the inventory (`AWAITING_PAYMENT`, or `FAILED` when
//! there is not enough), then wait for the payment service's events (see [`crate::events`]).
//! Compensations: a failed payment releases the stock, an unpaid order is cancelled when its
//! reservation expires, a cancellation after payment returns the stock and refunds (the
//! inventory and payment services act on `order.cancelled`).
//!
//! The worker ([`spawn_worker`]) resumes what a crash interrupted: it runs at start and then
//! every few seconds, retrying the reservation of stalled `PENDING` orders (the inventory
//! deduplicates by order id) and cancelling unpaid orders whose reservation expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use kit::auth::Identity;
use kit::client::{Call, CallError, ServiceClient};
use kit::db::Timestamp;
use kit::money::Money;
use kit::problem::{ApiError, ErrorCode, FieldError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{OrderConfig, ShippingMethod, TaxCalculator};
use crate::model::*;
use crate::store::{Actor, NewOrder, Patch, Store, StoreError, Transitioned};

/// The other services the saga talks to.
#[derive(Clone)]
pub struct Peers {
    pub catalog: ServiceClient,
    pub inventory: ServiceClient,
    pub cart: ServiceClient,
}

// Mirrors of the peers' wire types (the order service links none of their crates).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidateItem {
    product_id: Uuid,
    quantity: i64,
}

#[derive(Serialize)]
struct ValidateRequest {
    items: Vec<ValidateItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Validated {
    product_id: Uuid,
    active: bool,
    name: Option<String>,
    sku: Option<String>,
    price: Option<Money>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ValidateResponse {
    items: Vec<Validated>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReserveRequest {
    order_id: Uuid,
    items: Vec<ValidateItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reservation {
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CartLine {
    product_id: Uuid,
    quantity: i64,
}

#[derive(Deserialize)]
struct CartView {
    items: Vec<CartLine>,
}

/// A peer's problem document (the parts the saga reads).
#[derive(Deserialize, Default)]
struct PeerProblem {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    errors: Vec<FieldError>,
}

/// What a checkout asks for, whichever endpoint it came through.
#[derive(Debug, Clone)]
pub struct PlaceRequest {
    pub lines: Vec<(Uuid, i64)>,
    pub address: Address,
    pub shipping_method: String,
    pub notes: Option<String>,
    pub idempotency_key: Option<String>,
}

/// The saga: the store, the peers and the configuration.
#[derive(Clone)]
pub struct Saga {
    pub store: Store,
    pub peers: Peers,
    pub config: Arc<OrderConfig>,
    tax: Arc<dyn TaxCalculator>,
}

fn caller_auth(who_token: Option<&HeaderValue>) -> Option<HeaderValue> {
    who_token.cloned()
}

impl Saga {
    pub fn new(store: Store, peers: Peers, config: OrderConfig) -> Saga {
        let tax: Arc<dyn TaxCalculator> = Arc::from(config.tax.calculator());
        Saga { store, peers, config: Arc::new(config), tax }
    }

    pub fn shipping_method(&self, code: &str) -> Option<&ShippingMethod> {
        self.config.shipping_methods.iter().find(|m| m.code == code)
    }

    /// The caller's cart lines (`GET /api/v1/cart` with the caller's own token).
    pub async fn cart_lines(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<Vec<(Uuid, i64)>, ApiError> {
        let mut call = Call::get("/api/v1/cart");
        if let Some(a) = caller_auth(authorization) {
            call = call.header(header::AUTHORIZATION, a);
        }
        match self.peers.cart.json::<CartView>(call).await? {
            Ok(cart) => Ok(merge_lines(cart.items.into_iter().map(|l| (l.product_id, l.quantity)))),
            Err(reply) => Err(ApiError::unavailable(format!("the cart service answered {}", reply.status))),
        }
    }

    /// Empties the caller's cart after a successful checkout (best effort: the order stands
    /// either way).
    pub async fn clear_cart(&self, authorization: Option<&HeaderValue>) {
        let mut call = Call::delete("/api/v1/cart");
        if let Some(a) = caller_auth(authorization) {
            call = call.header(header::AUTHORIZATION, a);
        }
        match self.peers.cart.send(call).await {
            Ok(r) if r.status.is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status, "cart not cleared after checkout"),
            Err(e) => tracing::warn!(error = %e, "cart not cleared after checkout"),
        }
    }

    /// Prices the lines through the catalog (never the client's prices) and computes the
    /// totals. 409 when a product cannot be sold, 422 for a method or currency problem, 503
    /// when the catalog cannot be asked.
    async fn price(&self, who: &Identity, req: &PlaceRequest) -> Result<NewOrder, ApiError> {
        let body = ValidateRequest {
            items: req.lines.iter().map(|(id, q)| ValidateItem { product_id: *id, quantity: *q }).collect(),
        };
        let verdict = match self
            .peers
            .catalog
            .json::<ValidateResponse>(Call::post("/api/v1/products/validate", &body).idempotent())
            .await
        {
            Ok(Ok(v)) => v,
            Ok(Err(reply)) => {
                let p: PeerProblem = serde_json::from_slice(&reply.body).unwrap_or_default();
                return Err(ApiError::validation(
                    p.detail.unwrap_or_else(|| "the catalog refused the items".into()),
                )
                .with_errors(p.errors));
            }
            Err(e) => {
                return Err(ApiError::unavailable(format!(
                    "{e}; checkout needs current prices and does not use stored ones"
                )))
            }
        };
        let by_id: HashMap<Uuid, Validated> = verdict.items.into_iter().map(|v| (v.product_id, v)).collect();
        let mut problems = Vec::new();
        let mut too_large = Vec::new();
        let mut items = Vec::new();
        for (i, (id, quantity)) in req.lines.iter().enumerate() {
            match by_id.get(id) {
                Some(v) if v.active && v.price.is_some() => {
                    let price = v.price.clone().unwrap_or_else(|| Money::new(0, "USD"));
                    let Some(line_total) = price.amount.checked_mul(*quantity) else {
                        too_large.push(FieldError {
                            field: format!("items[{i}].quantity"),
                            message: "the line's total is larger than an amount can be".into(),
                        });
                        continue;
                    };
                    items.push(OrderItem {
                        product_id: *id,
                        sku: v.sku.clone().unwrap_or_default(),
                        name: v.name.clone().unwrap_or_default(),
                        quantity: *quantity,
                        line_total: Money::new(line_total, &price.currency),
                        unit_price: price,
                    });
                }
                Some(v) => problems.push(FieldError {
                    field: format!("items[{i}]"),
                    message: format!(
                        "product {id} cannot be ordered: {}",
                        v.error.as_deref().unwrap_or("not for sale")
                    ),
                }),
                None => problems.push(FieldError {
                    field: format!("items[{i}]"),
                    message: format!("product {id} cannot be ordered: not_found"),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::conflict(ErrorCode::ProductUnavailable, "some products cannot be ordered")
                .with_errors(problems));
        }
        if !too_large.is_empty() {
            return Err(ApiError::invalid_fields(too_large));
        }
        let currency = items[0].unit_price.currency.clone();
        if items.iter().any(|i| i.unit_price.currency != currency) {
            return Err(ApiError::validation(
                "the products are priced in different currencies; order them separately",
            ));
        }
        let subtotal = items
            .iter()
            .try_fold(0i64, |sum, i| sum.checked_add(i.line_total.amount))
            .map(|amount| Money::new(amount, &currency))
            .ok_or_else(|| total_too_large("items"))?;
        let method = self.shipping_method(&req.shipping_method).ok_or_else(|| {
            let known: Vec<&str> = self.config.shipping_methods.iter().map(|m| m.code.as_str()).collect();
            ApiError::invalid_fields(vec![FieldError {
                field: "shippingMethod".into(),
                message: format!("unknown shipping method (known: {})", known.join(", ")),
            }])
        })?;
        if !method.serves(&req.address) {
            return Err(ApiError::invalid_fields(vec![FieldError {
                field: "shippingMethod".into(),
                message: format!("`{}` does not deliver to {}", method.code, req.address.country),
            }]));
        }
        let shipping = method.cost(&subtotal).ok_or_else(|| {
            ApiError::invalid_fields(vec![FieldError {
                field: "shippingMethod".into(),
                message: format!("`{}` is not offered for orders in {currency}", method.code),
            }])
        })?;
        let tax = Money::new(self.tax.tax(&subtotal, &shipping, &req.address), &currency);
        let total = subtotal
            .amount
            .checked_add(shipping.amount)
            .and_then(|t| t.checked_add(tax.amount))
            .map(|amount| Money::new(amount, &currency))
            .ok_or_else(|| total_too_large("items"))?;
        Ok(NewOrder {
            id: Uuid::now_v7(),
            user_id: who.user_id,
            items,
            subtotal,
            shipping_cost: shipping,
            tax,
            total,
            shipping_method: method.code.clone(),
            shipping_address: req.address.clone(),
            customer_email: who.email.clone(),
            notes: req.notes.clone(),
            idempotency_key: req.idempotency_key.clone(),
        })
    }

    /// Places an order: price, store, reserve. 201 with the order awaiting payment; 202 with
    /// a `PENDING` order when the inventory could not be asked (the worker goes on); 409 when
    /// stock is short (the order is kept as `FAILED`).
    pub async fn place(&self, who: &Identity, req: PlaceRequest) -> Result<(StatusCode, Order), ApiError> {
        let new = self.price(who, &req).await?;
        let order = match self.store.insert(&new).await? {
            Ok(order) => order,
            Err(existing) => {
                // Same Idempotency-Key as an earlier order: that order is the answer.
                let order = self
                    .store
                    .get(existing)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("order {existing}")))?;
                return Ok((StatusCode::OK, order));
            }
        };
        tracing::info!(order_id = %order.id, total = order.total.amount, currency = %order.total.currency, "order placed");
        self.reserve(order, &Actor::user(who.user_id, false)).await
    }

    /// Reserves the stock of a `PENDING` order and moves it on.
    pub async fn reserve(&self, order: Order, actor: &Actor) -> Result<(StatusCode, Order), ApiError> {
        let body = ReserveRequest {
            order_id: order.id,
            items: order
                .items
                .iter()
                .map(|i| ValidateItem { product_id: i.product_id, quantity: i.quantity })
                .collect(),
        };
        // The inventory answers a repeated reservation of the same order with the same one.
        let call = Call::post("/api/v1/inventory/reservations", &body).idempotent();
        let reply = match self.peers.inventory.send(call).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(order_id = %order.id, error = %e, "stock not reserved yet; the saga worker will retry");
                return Ok((StatusCode::ACCEPTED, order));
            }
        };
        if reply.status.is_success() {
            let r: Reservation = reply.json("inventory")?;
            let patch = Patch { reservation_expires_at: Some(r.expires_at.into()), ..Default::default() };
            let t = self
                .store
                .transition(
                    order.id,
                    OrderStatus::AwaitingPayment,
                    None,
                    actor,
                    Some("stock reserved"),
                    patch,
                )
                .await?;
            return Ok((StatusCode::CREATED, t.order()));
        }
        let problem: PeerProblem = serde_json::from_slice(&reply.body).unwrap_or_default();
        let short = problem.code.as_deref() == Some("insufficient_stock");
        let reason = if short {
            format!("insufficient stock: {}", problem.detail.clone().unwrap_or_default())
        } else {
            format!(
                "the inventory refused the reservation ({}): {}",
                reply.status,
                problem.detail.clone().unwrap_or_default()
            )
        };
        let patch =
            Patch { failure_reason: Some(reason.clone()), clear_idempotency_key: true, ..Default::default() };
        let failed =
            self.store.transition(order.id, OrderStatus::Failed, None, actor, Some(&reason), patch).await?;
        if short {
            let detail = format!("{reason} (order {} recorded as FAILED)", failed.order().id);
            Err(ApiError::conflict(ErrorCode::InsufficientStock, detail).with_errors(problem.errors))
        } else {
            tracing::error!(order_id = %order.id, status = %reply.status, "inventory refused a reservation");
            Err(ApiError::new(ErrorCode::InventoryRefused).detail(reason))
        }
    }

    /// Releases an order's stock (best effort; the inventory also acts on the events and its
    /// sweeper expires what is left).
    pub async fn release_stock(&self, order_id: Uuid, reason: &str) {
        let call = Call::post(
            format!("/api/v1/inventory/reservations/{order_id}/release"),
            &serde_json::json!({ "reason": reason }),
        )
        .idempotent();
        match self.peers.inventory.send(call).await {
            Ok(r) if r.status.is_success() || r.status == StatusCode::NOT_FOUND => {}
            Ok(r) => tracing::warn!(%order_id, status = %r.status, "stock release refused"),
            Err(e) => {
                tracing::warn!(%order_id, error = %e, "stock release failed; the reservation will expire")
            }
        }
    }

    /// Commits an order's reservation (payment authorised). `Ok(false)` when the reservation is
    /// gone (released or expired).
    pub async fn commit_stock(&self, order_id: Uuid) -> Result<bool, CallError> {
        let call =
            Call::post(format!("/api/v1/inventory/reservations/{order_id}/commit"), &serde_json::json!({}))
                .idempotent();
        let reply = self.peers.inventory.send(call).await?;
        if reply.status.is_success() {
            return Ok(true);
        }
        tracing::warn!(%order_id, status = %reply.status, body = %String::from_utf8_lossy(&reply.body), "stock commit refused");
        Ok(false)
    }

    /// One round of the worker: resume stalled `PENDING` orders, cancel unpaid expired ones.
    pub async fn tick(&self) -> Result<(usize, usize), StoreError> {
        let now = Timestamp::now();
        let before = now - Duration::from_secs(self.config.resume_after_secs);
        let mut resumed = 0;
        for id in self.store.stalled_pending(before, 100).await? {
            let Some(order) = self.store.get(id).await? else { continue };
            if order.status != OrderStatus::Pending {
                continue;
            }
            match self.reserve(order, &Actor::system("saga")).await {
                Ok((StatusCode::ACCEPTED, _)) => break, // inventory still down: next round
                Ok(_) | Err(_) => resumed += 1,
            }
        }
        let mut cancelled = 0;
        for id in self.store.unpaid_expired(now, 100).await? {
            let reason = "payment not completed before the stock reservation expired";
            let patch = Patch { failure_reason: Some(reason.into()), ..Default::default() };
            match self
                .store
                .transition(
                    id,
                    OrderStatus::Cancelled,
                    Some(&[OrderStatus::AwaitingPayment]),
                    &Actor::system("saga"),
                    Some(reason),
                    patch,
                )
                .await
            {
                Ok(Transitioned::Done(_)) => cancelled += 1,
                Ok(Transitioned::Already(_)) | Err(StoreError::Refused(_)) => {} // paid meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok((resumed, cancelled))
    }
}

/// Runs [`Saga::tick`] at once (resuming what a restart interrupted) and then every
/// `saga_interval_secs`, until `shutdown`.
pub fn spawn_worker(saga: Saga, shutdown: CancellationToken) -> JoinHandle<()> {
    let every = Duration::from_secs(saga.config.saga_interval_secs.max(1));
    kit::component::every("order saga worker round", every, shutdown, move || {
        let saga = saga.clone();
        async move { saga.tick().await.map(|(resumed, cancelled)| (resumed + cancelled) as u64) }
    })
}

/// 422 for an order whose total an amount cannot hold (checked arithmetic, never a wrap).
fn total_too_large(field: &str) -> ApiError {
    ApiError::invalid_fields(vec![FieldError {
        field: field.into(),
        message: "the order's total is larger than an amount can be".into(),
    }])
}
