//! HTTP handlers, the router and the OpenAPI document of the payment service.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kit::auth::Identity;
use kit::extract::{Json, Path, Query};
use kit::idempotency;
use kit::openapi::BearerSecurity;
use kit::pagination::{Page, PageParams};
use kit::problem::{FieldError, Problem};
use kit::{ApiError, ApiResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::hosted;
use crate::model::*;
use crate::service::{declined_response, OpError};
use crate::store::PaymentFilter;
use crate::webhook::{self, ID_NAMESPACE};
use crate::PaymentState;

/// An optional JSON body: empty means `T::default()`; otherwise the same problems as
/// `kit::extract::Json` (415 without a JSON content type, 400 malformed, 422 wrong fields).
fn optional_json<T: DeserializeOwned + Default>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
    if !json {
        return Err(ApiError::unsupported_media_type(
            "expected a request body with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::validation(e.to_string())
        } else {
            ApiError::malformed_json(e.to_string())
        }
    })
}

fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// Create (or fetch) the payment of an order.
///
/// The amount and currency are the order's total, read from the order service; the order must
/// be `AWAITING_PAYMENT` and belong to the caller (or the caller is an admin). An order has at
/// most one live payment: if it has one, that payment is returned with 200. Requires an
/// `Idempotency-Key`; a retry with the same key and body replays the first answer.
#[utoipa::path(
    post, path = "/api/v1/payments/intent", tag = "payments",
    request_body = CreateIntentRequest,
    params(("Idempotency-Key" = String, Header, description = "Unique per intended payment; reuse it when retrying")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Payment created (with `clientSecret`)", body = Payment),
        (status = 200, description = "The order's existing live payment (or a replay)", body = Payment),
        (status = 400, description = "Malformed JSON or no `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or someone else's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`order_not_awaiting_payment`, `order_not_payable`, or the key's first request is still running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, or the key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The order service or the payment provider is unavailable", body = Problem, content_type = "application/problem+json"),
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
/// 409 `order_has_payment`. Requires an `Idempotency-Key`.
#[utoipa::path(
    post, path = "/api/v1/payments/checkout-session", tag = "payments",
    request_body = CreateCheckoutSessionRequest,
    params(("Idempotency-Key" = String, Header, description = "Unique per intended payment; reuse it when retrying")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Session created", body = CheckoutSessionResponse),
        (status = 200, description = "The order's live session (or a replay)", body = CheckoutSessionResponse),
        (status = 400, description = "Malformed JSON or no `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or someone else's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`order_not_awaiting_payment`, `order_not_payable`, `order_has_payment`, or the key's first request is still running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body (`successUrl` / `cancelUrl` not allowed), or the key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The order service or the payment provider is unavailable", body = Problem, content_type = "application/problem+json"),
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
/// `REQUIRES_ACTION` with `nextAction`; declined → **402** problem `card-declined` whose
/// `paymentId` / `payment` show the FAILED payment with `failureCode` and `failureReason`.
/// An authorised or captured payment is returned unchanged.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/confirm", tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id")),
    request_body = ConfirmRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "AUTHORIZED, REQUIRES_ACTION or unchanged", body = Payment),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`card-declined`: the payment is FAILED (problem with `paymentId` and `payment`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment, or someone else's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`payment_not_confirmable`: FAILED or CANCELLED", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid or unknown payment method", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment provider is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm(
    State(st): State<PaymentState>,
    who: Identity,
    Path(id): Path<Uuid>,
    Json(req): Json<ConfirmRequest>,
) -> ApiResult<Response> {
    let pm = req.payment_method.trim();
    if pm.is_empty() || pm.len() > 255 {
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
/// released). Normally the service captures by itself when the order is confirmed.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/capture", tag = "payments",
    params(("id" = Uuid, Path, description = "Payment id")),
    request_body(content = Option<CaptureRequest>, description = "Optional; default: the whole authorised amount"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "CAPTURED (or already captured: unchanged)", body = Payment),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`payment_not_capturable`: not AUTHORIZED", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`amountToCapture` not between 1 and the authorised amount", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment provider is unavailable", body = Problem, content_type = "application/problem+json"),
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
/// `Idempotency-Key`: a retry with the same key never refunds twice.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/refund", tag = "payments",
    params(
        ("id" = Uuid, Path, description = "Payment id"),
        ("Idempotency-Key" = String, Header, description = "Unique per intended refund; reuse it when retrying"),
    ),
    request_body(content = Option<RefundRequest>, description = "Optional; default: everything captured and not yet refunded"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "PARTIALLY_REFUNDED or REFUNDED, with the refund in `refunds`", body = Payment),
        (status = 400, description = "No `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`payment_not_refundable` (not CAPTURED / PARTIALLY_REFUNDED), `refund_refused`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`refund_exceeds_captured`: more than captured minus refunded; or the key was used with another body", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment provider is unavailable (the refund is retried)", body = Problem, content_type = "application/problem+json"),
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
    let reason = req.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::invalid_fields(vec![FieldError {
            field: "reason".into(),
            message: "must be at most 500 characters".into(),
        }]));
    }
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
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such payment, or someone else's", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No payment of this order that the caller may see", body = Problem, content_type = "application/problem+json"),
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

/// Filters of `GET /api/v1/payments`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    /// Only payments in this status (`CAPTURED`, `FAILED`, …; case-insensitive).
    pub status: Option<String>,
    /// `simulated` or `stripe`.
    pub provider: Option<String>,
    /// Only the payments of this order.
    pub order_id: Option<Uuid>,
    /// Created at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Created before this time (RFC 3339).
    pub to: Option<String>,
}

fn parse_time(field: &str, v: Option<String>, errors: &mut Vec<FieldError>) -> Option<kit::db::Timestamp> {
    let v = v.filter(|s| !s.trim().is_empty())?;
    match time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339) {
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
    params(PageParams, PaymentQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of payments, with their history and refunds", body = Page<Payment>),
        (status = 400, description = "Unparseable query string (e.g. `orderId` not a UUID)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status or provider, bad time or pagination (`errors` names the field)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_payments(
    State(st): State<PaymentState>,
    who: Identity,
    Query(pp): Query<PageParams>,
    Query(q): Query<PaymentQuery>,
) -> ApiResult<Json<Page<Payment>>> {
    who.require_admin()?;
    let mut errors = Vec::new();
    let page = pp.validate().map_err(|e| errors.extend(e.errors)).ok();
    let upper = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let status = upper(q.status).and_then(|s| {
        let parsed = PaymentStatus::parse(&s.to_ascii_uppercase());
        if parsed.is_none() {
            let known: Vec<&str> = PaymentStatus::ALL.iter().map(|s| s.as_str()).collect();
            errors.push(FieldError {
                field: "status".into(),
                message: format!("must be one of {}", known.join(", ")),
            });
        }
        parsed
    });
    let provider = upper(q.provider).and_then(|p| {
        let parsed = ProviderKind::parse(&p.to_ascii_lowercase());
        if parsed.is_none() {
            errors
                .push(FieldError { field: "provider".into(), message: "must be simulated or stripe".into() });
        }
        parsed
    });
    let filter = PaymentFilter {
        status,
        provider,
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
/// Each event id is processed once; duplicates, unknown types and stale updates answer 200.
#[utoipa::path(
    post, path = "/api/v1/webhooks/stripe", tag = "payments",
    request_body(content = Object, description = "A Stripe event, signed", content_type = "application/json"),
    params(("Stripe-Signature" = String, Header, description = "`t=<unix time>,v1=<hex HMAC-SHA256 of \"t.body\">`")),
    responses(
        (status = 200, description = "Received: `{\"received\": true, \"result\": \"applied\"|\"duplicate\"|\"ignored\"}`"),
        (status = 400, description = "Missing, invalid or expired signature; not an event", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No webhook secret configured", body = Problem, content_type = "application/problem+json"),
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
        CaptureRequest, RefundRequest, kit::money::Money, Page<Payment>, Problem, FieldError
    )),
    modifiers(&BearerSecurity),
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

    #[test]
    fn optional_bodies() {
        let mut h = HeaderMap::new();
        let empty: RefundRequest = optional_json(&h, &Bytes::new()).unwrap();
        assert_eq!(empty.amount, None);
        assert_eq!(
            optional_json::<RefundRequest>(&h, &Bytes::from("{}")).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(
            optional_json::<RefundRequest>(&h, &Bytes::from("{")).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let e = optional_json::<RefundRequest>(&h, &Bytes::from(r#"{"amount":"x"}"#)).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r: RefundRequest = optional_json(&h, &Bytes::from(r#"{"amount":5,"reason":"r"}"#)).unwrap();
        assert_eq!((r.amount, r.reason.as_deref()), (Some(5), Some("r")));
    }
}
