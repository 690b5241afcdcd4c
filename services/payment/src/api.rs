//! HTTP handlers, the router and the OpenAPI document of the payment service.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kit::auth::Identity;
use kit::extract::{optional_json, Json, Path, Query};
use kit::idempotency;
use kit::openapi::{responses as r, BearerSecurity, Problems};
use kit::pagination::{Page, PageParams};
use kit::problem::FieldError;
use kit::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::hosted;
use crate::model::*;
use crate::service::{declined_response, OpError};
use crate::store::PaymentFilter;
use crate::webhook::{self, ID_NAMESPACE};
use crate::PaymentState;

fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// Create (or fetch) the payment of an order.
///
/// The amount and currency are the order's total, read from the order service; the order must
/// be `AWAITING_PAYMENT` and belong to the caller (or the caller is an admin). An order has at
/// most one live payment: if it has one, that payment is returned with 200. Requires an
/// `Idempotency-Key`; a retry with the same key and body replays the first answer. 409
/// `order_not_awaiting_payment`, `order_not_payable`, or `idempotency_request_in_progress`; 503
/// when the order service or the payment provider is unavailable.
#[utoipa::path(
    post, path = "/api/v1/payments/intent", tag = "payments",
    request_body = CreateIntentRequest,
    params(kit::idempotency::IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Payment created (with `clientSecret`)", body = Payment),
        (status = 200, description = "The order's existing live payment (or a replay)", body = Payment),
        r::Write, r::NotFound, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn create_intent(
    State(st): State<PaymentState>,
    who: Identity,
    headers: HeaderMap,
    Json(req): Json<CreateIntentRequest>,
) -> ApiResult<Response> {
    let key = idempotency::key_from_headers(&headers)?;
    let scope = format!("{}:payment-intent", who.user_id);
    let fp = idempotency::fingerprint(&req);
    let (status, body) = idempotency::run(st.store.db(), &scope, &key, &fp, || async {
        let (status, payment) = st.create_intent(&who, req.order_id).await?;
        Ok((status, to_value(&payment)?))
    })
    .await?;
    Ok((status, Json(body)).into_response())
}

/// Create (or fetch) the hosted checkout session of an order (owner or admin).
///
/// The customer pays on the provider's hosted page (`url`): Stripe Checkout, or with the
/// simulated provider this API's own `/api/v1/payments/hosted/{sessionId}`. The amount is the
/// order's total (manual capture: authorised when the customer pays, captured when the order is
/// confirmed). `successUrl` and `cancelUrl` must be absolute `http(s)` URLs whose origin is in
/// `SHOP_PAYMENT__REDIRECT_ORIGINS`; the provider adds `session_id=<cs_…>` to them. An order
/// with a live session gets that one back (200); one whose live payment is a plain intent gets
/// 409 `order_has_payment` (also `order_not_awaiting_payment`, `order_not_payable`). Requires an
/// `Idempotency-Key`.
#[utoipa::path(
    post, path = "/api/v1/payments/checkout-session", tag = "payments",
    request_body = CreateCheckoutSessionRequest,
    params(kit::idempotency::IdempotencyKey),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Session created", body = CheckoutSessionResponse),
        (status = 200, description = "The order's live session (or a replay)", body = CheckoutSessionResponse),
        r::Write, r::NotFound, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn create_checkout_session(
    State(st): State<PaymentState>,
    who: Identity,
    headers: HeaderMap,
    Json(req): Json<CreateCheckoutSessionRequest>,
) -> ApiResult<Response> {
    let key = idempotency::key_from_headers(&headers)?;
    let scope = format!("{}:checkout-session", who.user_id);
    let fp = idempotency::fingerprint(&req);
    let (status, body) = idempotency::run(st.store.db(), &scope, &key, &fp, || async {
        let (status, answer) = st.create_checkout_session(&who, &req).await?;
        Ok((status, to_value(&answer)?))
    })
    .await?;
    Ok((status, Json(body)).into_response())
}

/// Confirm a payment with a payment method (owner or admin).
///
/// Authorised → 200 `AUTHORIZED` (nothing is charged until capture); 3-D Secure needed → 200
/// `REQUIRES_ACTION` with `nextAction`; declined → **402** problem `card_declined` whose
/// `paymentId` / `payment` show the FAILED payment with `failureCode` and `failureReason`.
/// An authorised or captured payment is returned unchanged. 409 `payment_not_confirmable`
/// (FAILED or CANCELLED, or paid on a hosted page); 422 `payment_method_invalid`.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/confirm", tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id")),
    request_body = ConfirmRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "AUTHORIZED, REQUIRES_ACTION or unchanged", body = Payment),
        r::Write, CardDeclined, r::NotFound, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn confirm(
    State(st): State<PaymentState>,
    who: Identity,
    Path(id): Path<Uuid>,
    Json(req): Json<ConfirmRequest>,
) -> ApiResult<Response> {
    let pm = req.payment_method.trim();
    if pm.is_empty() || req.payment_method.chars().count() > MAX_PAYMENT_METHOD_LEN {
        return Err(ApiError::invalid_fields(vec![FieldError {
            field: "paymentMethod".into(),
            message: "must be 1–255 characters".into(),
        }]));
    }
    let payment = st.visible_payment(&who, id).await?;
    match st.confirm(payment, pm).await {
        Ok(p) => Ok(Json(p).into_response()),
        Err(OpError::Declined(p)) => Ok(declined_response(&p)),
        Err(OpError::Api(e)) => Err(e),
    }
}

/// Capture an AUTHORIZED payment (admin); optionally less than authorised (the rest is
/// released). Normally the service captures by itself when the order is confirmed. 409
/// `payment_not_capturable` (not AUTHORIZED) or `capture_refused`; 422 when `amountToCapture`
/// is more than authorised.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/capture", tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id")),
    request_body(content = Option<CaptureRequest>, description = "Optional; default: the whole authorised amount"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "CAPTURED (or already captured: unchanged)", body = Payment),
        r::Write, r::Admin, r::NotFound, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn capture(
    State(st): State<PaymentState>,
    who: Identity,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Payment>> {
    who.require_admin()?;
    let req: CaptureRequest = optional_json(&headers, &body)?;
    let payment = st.visible_payment(&who, id).await?;
    Ok(Json(st.capture(payment, req.amount_to_capture, ChangeSource::Api, None, None).await?))
}

/// Refund a captured payment (admin): all that is left, or `amount` of it. Requires an
/// `Idempotency-Key`: a retry with the same key never refunds twice. 409
/// `payment_not_refundable` (not CAPTURED or PARTIALLY_REFUNDED), `refund_refused`,
/// `refund_failed`; 422 `refund_exceeds_captured`; 503 when the provider is unavailable (the
/// refund is retried).
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/refund", tag = "payments",
    params(
        ("id" = Uuid, Path, description = "Payment id"),
        kit::idempotency::IdempotencyKey,
    ),
    request_body(content = Option<RefundRequest>, description = "Optional; default: everything captured and not yet refunded"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "PARTIALLY_REFUNDED or REFUNDED, with the refund in `refunds`", body = Payment),
        r::Write, r::Admin, r::NotFound, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn refund(
    State(st): State<PaymentState>,
    who: Identity,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    who.require_admin()?;
    let key = idempotency::key_from_headers(&headers)?;
    let req: RefundRequest = optional_json(&headers, &body)?;
    if let Some(a) = req.amount {
        if a <= 0 {
            return Err(ApiError::invalid_fields(vec![FieldError {
                field: "amount".into(),
                message: "must be a positive number of minor units".into(),
            }]));
        }
    }
    if req.reason.as_deref().is_some_and(|r| r.chars().count() > MAX_REFUND_REASON_LEN) {
        return Err(ApiError::invalid_fields(vec![FieldError {
            field: "reason".into(),
            message: "must be at most 500 characters".into(),
        }]));
    }
    let reason = req.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let payment = st.visible_payment(&who, id).await?;
    let scope = format!("{}:refund", who.user_id);
    let fp = idempotency::fingerprint(&(id, &req));
    // The same key always means the same refund (and the same provider idempotency key).
    let refund_id = Uuid::new_v5(&ID_NAMESPACE, format!("api-refund:{id}:{scope}:{key}").as_bytes());
    let (status, body) = idempotency::run(st.store.db(), &scope, &key, &fp, || async {
        let p = st.refund(&payment, refund_id, req.amount, reason, ChangeSource::Api, None, None).await?;
        Ok((StatusCode::OK, to_value(&p)?))
    })
    .await?;
    Ok((status, Json(body)).into_response())
}

/// A payment with its history and refunds (owner or admin).
#[utoipa::path(
    get, path = "/api/v1/payments/{id}", tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The payment", body = Payment),
        r::Read, r::NotFound,
    )
)]
pub async fn get_payment(
    State(st): State<PaymentState>,
    who: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Payment>> {
    Ok(Json(st.visible_payment(&who, id).await?))
}

/// The payments of an order, newest first (owner or admin).
#[utoipa::path(
    get, path = "/api/v1/payments/order/{orderId}", tag = "payments",
    params(("orderId" = Uuid, Path, description = "Order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order's payments, newest first", body = Vec<Payment>),
        r::Read, r::NotFound,
    )
)]
pub async fn order_payments(
    State(st): State<PaymentState>,
    who: Identity,
    Path(order_id): Path<Uuid>,
) -> ApiResult<Json<Vec<Payment>>> {
    let payments: Vec<Payment> =
        st.store.for_order(order_id).await?.into_iter().filter(|p| who.can_see(p.user_id)).collect();
    if payments.is_empty() {
        return Err(ApiError::not_found(format!("no payments of order `{order_id}`")));
    }
    Ok(Json(payments))
}

/// The query of `GET /api/v1/payments`: the page and the filters (nothing else).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<u32>,
    /// Only payments in this status.
    pub status: Option<PaymentStatus>,
    /// Only payments of this provider.
    pub provider: Option<ProviderKind>,
    /// Only the payments of this order.
    pub order_id: Option<Uuid>,
    /// Created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Created before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
}

fn parse_time(field: &str, v: Option<String>, errors: &mut Vec<FieldError>) -> Option<kit::db::Timestamp> {
    // Exactly an RFC 3339 time, as the document's `date-time` says: an empty or padded value is refused.
    let v = v?;
    match time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some(t.into()),
        Err(_) => {
            errors.push(FieldError { field: field.into(), message: "must be an RFC 3339 time".into() });
            None
        }
    }
}

/// Every payment (admin), newest first, filtered by status, provider, order and creation time.
#[utoipa::path(
    get, path = "/api/v1/payments", tag = "payments",
    params(PaymentQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of payments, with their history and refunds", body = Page<Payment>),
        r::Read, r::Forbidden, r::Unprocessable,
    )
)]
pub async fn list_payments(
    State(st): State<PaymentState>,
    who: Identity,
    Query(q): Query<PaymentQuery>,
) -> ApiResult<Json<Page<Payment>>> {
    who.require_admin()?;
    let mut errors = Vec::new();
    let page = PageParams { page: q.page, page_size: q.page_size }
        .validate()
        .map_err(|e| errors.extend(e.errors))
        .ok();
    let filter = PaymentFilter {
        status: q.status,
        provider: q.provider,
        order_id: q.order_id,
        from: parse_time("from", q.from, &mut errors),
        to: parse_time("to", q.to, &mut errors),
    };
    let Some(page) = page.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid_fields(errors));
    };
    let (items, total) = st.store.list(&filter, page).await?;
    Ok(Json(Page::new(items, page, total)))
}

/// Stripe webhook endpoint (no bearer token: the `Stripe-Signature` header authenticates).
///
/// Each event id is processed once; duplicates, unknown types and stale updates answer 200. 400
/// `webhook_signature_missing`, `webhook_signature_invalid`, `webhook_signature_expired`; 503
/// when no webhook secret is configured.
#[utoipa::path(
    post, path = "/api/v1/webhooks/stripe", tag = "payments",
    request_body(content = Object, description = "A Stripe event, signed", content_type = "application/json"),
    params(("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<hex HMAC-SHA256 of \"t.body\">`", min_length = 1, pattern = r"^[\t -~\u0080-\u00ff]*$")),
    responses(
        (status = 200, description = "Received: `{\"received\": true, \"result\": \"applied\"|\"duplicate\"|\"ignored\"}`"),
        r::Write, r::ServiceUnavailable,
    )
)]
pub async fn stripe_webhook(
    State(st): State<PaymentState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let processed = webhook::process(&st, &headers, &body).await?;
    Ok(Json(serde_json::json!({"received": true, "result": processed.as_str()})))
}

/// The payment routes (no common layers; the composer adds them and the `Verifier`).
pub fn router(state: PaymentState) -> Router {
    Router::new()
        .route("/api/v1/payments", get(list_payments))
        .route("/api/v1/payments/intent", post(create_intent))
        .route("/api/v1/payments/checkout-session", post(create_checkout_session))
        .route("/api/v1/payments/hosted/{sessionId}", get(hosted::page))
        .route("/api/v1/payments/hosted/{sessionId}/pay", post(hosted::pay))
        .route("/api/v1/payments/hosted/{sessionId}/cancel", post(hosted::cancel))
        .route("/api/v1/payments/order/{orderId}", get(order_payments))
        .route("/api/v1/payments/{id}", get(get_payment))
        .route("/api/v1/payments/{id}/confirm", post(confirm))
        .route("/api/v1/payments/{id}/capture", post(capture))
        .route("/api/v1/payments/{id}/refund", post(refund))
        .route("/api/v1/webhooks/stripe", post(stripe_webhook))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        create_intent, create_checkout_session, confirm, capture, refund, get_payment, order_payments,
        list_payments, stripe_webhook, hosted::page, hosted::pay, hosted::cancel
    ),
    components(schemas(
        Payment, PaymentStatus, ProviderKind, ChangeSource, HistoryEntry, Refund, RefundStatus,
        CreateIntentRequest, CreateCheckoutSessionRequest, CheckoutSessionResponse, ConfirmRequest,
        CaptureRequest, RefundRequest, kit::money::Money, DeclinedProblem, HostedPayForm, HostedTestCard,
        Page<Payment>
    )),
    modifiers(&BearerSecurity, &Problems),
    tags((name = "payments", description = "Payments of orders: intents, hosted checkout, confirmation, capture, refunds, webhooks"))
)]
struct ApiDoc;

/// The OpenAPI document of the payment routes (tag `payments`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_lists_every_route() {
        let doc = openapi();
        for path in [
            "/api/v1/payments/intent",
            "/api/v1/payments/checkout-session",
            "/api/v1/payments/hosted/{sessionId}",
            "/api/v1/payments/hosted/{sessionId}/pay",
            "/api/v1/payments/hosted/{sessionId}/cancel",
            "/api/v1/payments/{id}/confirm",
            "/api/v1/payments/{id}/capture",
            "/api/v1/payments/{id}/refund",
            "/api/v1/payments/{id}",
            "/api/v1/payments/order/{orderId}",
            "/api/v1/payments",
            "/api/v1/webhooks/stripe",
        ] {
            assert!(doc.paths.paths.contains_key(path), "{path} missing from the OpenAPI document");
        }
        let schemas = doc.components.unwrap().schemas;
        for schema in ["Payment", "CreateCheckoutSessionRequest", "CheckoutSessionResponse"] {
            assert!(schemas.contains_key(schema), "{schema} missing");
        }
    }
}
