//! RFC 9457 problem documents: the only error body any ShopPlatform endpoint returns.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Base of the `type` URIs. Each problem code has a stable URI below it.
pub const PROBLEM_BASE: &str = "https://shop.example/problems/";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct FieldError {
    /// JSON pointer or dotted path of the offending field, e.g. `price.amount`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Declares [`ErrorCode`] from one table: variant, wire name, HTTP status, title, meaning.
macro_rules! error_codes {
    ($( $variant:ident = ($name:literal, $status:literal, $title:literal, $meaning:literal), )+) => {
        /// The stable, machine-readable `code` of a problem document: one casing (snake_case),
        /// one HTTP status and one title per code. `docs/api.md` lists every code with its
        /// meaning (a test keeps the two in step).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $(
                #[doc = $meaning]
                #[serde(rename = $name)]
                $variant,
            )+
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The wire name, e.g. `validation_failed`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)+ }
            }

            /// The HTTP status a problem with this code has (`request_failed`: whatever
            /// status it was made for, see [`for_status`]).
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::from_u16($status).expect("a valid status"),)+
                }
            }

            /// The problem's `title`: the same for every problem of this code.
            pub const fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)+ }
            }

            /// When the code is used.
            pub const fn meaning(self) -> &'static str {
                match self { $(ErrorCode::$variant => $meaning,)+ }
            }
        }
    };
}

error_codes! {
    BadRequest = ("bad_request", 400, "Bad request", "The request cannot be read (no more specific code applies)."),
    MalformedJson = ("malformed_json", 400, "Malformed JSON body", "The body is not valid JSON."),
    InvalidQuery = ("invalid_query", 400, "Invalid query string", "A query parameter does not parse (e.g. `pageSize=abc`)."),
    InvalidPath = ("invalid_path", 400, "Invalid path parameter", "A path parameter does not parse (e.g. an id that is not a UUID)."),
    IdempotencyKeyRequired = ("idempotency_key_required", 400, "Idempotency-Key required", "The operation creates a money movement and the `Idempotency-Key` header is missing."),
    BadPath = ("bad_path", 400, "Bad request", "The raw path holds a dot segment (`.`, `..`, also percent-encoded) or a backslash: refused before any route."),
    InvalidToken = ("invalid_token", 400, "Invalid token", "A password-reset or email-verification token that is unknown, used or expired (one answer for all three)."),
    InvalidIdempotencyKey = ("invalid_idempotency_key", 400, "Invalid Idempotency-Key", "`Idempotency-Key` is not 1–255 visible ASCII characters."),
    WebhookSignatureMissing = ("webhook_signature_missing", 400, "Invalid webhook signature", "A webhook came without its `Stripe-Signature` header."),
    WebhookSignatureInvalid = ("webhook_signature_invalid", 400, "Invalid webhook signature", "A webhook's `Stripe-Signature` is malformed or matches no secret."),
    WebhookSignatureExpired = ("webhook_signature_expired", 400, "Invalid webhook signature", "A webhook's signature timestamp is outside the tolerance."),
    Unauthorized = ("unauthorized", 401, "Authentication required", "Credentials are required (no more specific code applies)."),
    TokenMissing = ("token_missing", 401, "Authentication required", "The operation needs `Authorization: Bearer <accessToken>` and there is none."),
    TokenInvalid = ("token_invalid", 401, "Authentication required", "The bearer token is malformed, forged, signed by an unknown key, or for another issuer or audience."),
    TokenExpired = ("token_expired", 401, "Authentication required", "The bearer token has expired: refresh it."),
    TokenRevoked = ("token_revoked", 401, "Authentication required", "The bearer token was issued before its user signed out everywhere, changed or reset the password, had the roles changed or was disabled."),
    InvalidCredentials = ("invalid_credentials", 401, "Invalid credentials", "Unknown email or wrong password (the two are not told apart)."),
    InvalidRefreshToken = ("invalid_refresh_token", 401, "Invalid refresh token", "The refresh token is unknown or no longer valid."),
    RefreshTokenExpired = ("refresh_token_expired", 401, "Invalid refresh token", "The refresh token has expired: sign in again."),
    RefreshTokenReused = ("refresh_token_reused", 401, "Invalid refresh token", "A refresh token was used twice: the whole session is revoked."),
    SessionExpired = ("session_expired", 401, "Invalid refresh token", "The session reached its absolute lifetime: sign in again."),
    InvalidInternalToken = ("invalid_internal_token", 401, "Authentication required", "The `x-internal-token` of a service-to-service call is wrong."),
    NoSession = ("no_session", 401, "Not signed in", "The admin console's cookie session is missing or over: sign in."),
    CardDeclined = ("card_declined", 402, "Card declined", "The payment method was declined; the body carries the FAILED payment."),
    Forbidden = ("forbidden", 403, "Forbidden", "Authenticated but not allowed (e.g. not an admin)."),
    AccountDisabled = ("account_disabled", 403, "Account disabled", "The account is disabled (answered only after a correct password)."),
    EmailUnverified = ("email_unverified", 403, "Email address not verified", "Placing an order before the account's email address is verified."),
    CsrfFailed = ("csrf_failed", 403, "Cross-site request refused", "A console request whose `Origin` or CSRF token does not match its session."),
    ConsoleAdminOnly = ("console_admin_only", 403, "Admins only", "The admin console signs in admins only."),
    NotFound = ("not_found", 404, "Not found", "Unknown id, unknown route, or someone else's resource."),
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed", "The route exists but not with this method (see `Allow`)."),
    NotAcceptable = ("not_acceptable", 406, "Not acceptable", "No representation matches the `Accept` header."),
    RequestTimeout = ("request_timeout", 408, "Request timeout", "The request was not received in time."),
    Conflict = ("conflict", 409, "Conflict", "A conflict with the current state (no more specific code applies)."),
    EmailTaken = ("email_taken", 409, "Conflict", "An account with this email already exists."),
    CannotDemoteSelf = ("cannot_demote_self", 409, "Conflict", "An admin cannot remove their own admin role."),
    CannotDisableSelf = ("cannot_disable_self", 409, "Conflict", "An admin cannot disable their own account."),
    DuplicateSku = ("duplicate_sku", 409, "Conflict", "Another live product has this SKU."),
    DuplicateSlug = ("duplicate_slug", 409, "Conflict", "Another product, category or brand has this slug."),
    CategoryInUse = ("category_in_use", 409, "Conflict", "A product or a child category still names the category."),
    BrandInUse = ("brand_in_use", 409, "Conflict", "A product still names the brand."),
    StockExists = ("stock_exists", 409, "Conflict", "The product already has a stock row."),
    InsufficientStock = ("insufficient_stock", 409, "Conflict", "Not enough stock; `errors` names the products short."),
    ProductUnavailable = ("product_unavailable", 409, "Conflict", "A product exists but cannot be sold now (inactive or deleted)."),
    ReservationBusy = ("reservation_busy", 409, "Conflict", "The order's reservation is being made by another request; retry."),
    ReservationMismatch = ("reservation_mismatch", 409, "Conflict", "The order already holds a reservation with other lines."),
    ReservationClosed = ("reservation_closed", 409, "Conflict", "The order's reservation was released or expired."),
    ReservationReleased = ("reservation_released", 409, "Conflict", "A released or expired reservation cannot be committed."),
    ReservationCommitted = ("reservation_committed", 409, "Conflict", "A committed reservation cannot be released: return it instead."),
    ReservationNotCommitted = ("reservation_not_committed", 409, "Conflict", "Only a committed reservation can be returned: release it instead."),
    IllegalTransition = ("illegal_transition", 409, "Conflict", "The order's status does not allow this change."),
    OrderNotAwaitingPayment = ("order_not_awaiting_payment", 409, "Conflict", "The order is not `AWAITING_PAYMENT`."),
    OrderNotPayable = ("order_not_payable", 409, "Conflict", "The order has no payable total."),
    OrderHasPayment = ("order_has_payment", 409, "Conflict", "The order already has a live payment of another kind."),
    IntentAlreadyUsed = ("intent_already_used", 409, "Conflict", "The provider's payment intent belongs to another payment."),
    PaymentNotConfirmable = ("payment_not_confirmable", 409, "Conflict", "The payment is FAILED, CANCELLED or paid on a hosted page."),
    PaymentNotCapturable = ("payment_not_capturable", 409, "Conflict", "Only AUTHORIZED payments can be captured."),
    PaymentNotCancellable = ("payment_not_cancellable", 409, "Conflict", "Only payments not yet captured can be cancelled."),
    PaymentNotRefundable = ("payment_not_refundable", 409, "Conflict", "Only CAPTURED or PARTIALLY_REFUNDED payments can be refunded."),
    CaptureRefused = ("capture_refused", 409, "Conflict", "The payment provider refused the capture."),
    CancelRefused = ("cancel_refused", 409, "Conflict", "The payment provider refused the cancellation."),
    RefundRefused = ("refund_refused", 409, "Conflict", "The payment provider refused the refund."),
    RefundFailed = ("refund_failed", 409, "Conflict", "An earlier attempt with this key was refused; retry with a new `Idempotency-Key`."),
    CheckoutSessionNotOpen = ("checkout_session_not_open", 409, "Conflict", "The hosted checkout session was paid, cancelled or expired."),
    CheckoutPaymentRefused = ("checkout_payment_refused", 409, "Conflict", "The provider refused a payment on the hosted checkout page."),
    CartEmpty = ("cart_empty", 409, "Conflict", "Checkout of an empty cart: add items first."),
    UnpaidOrderLimit = ("unpaid_order_limit", 409, "Conflict", "The customer already has the most unpaid orders allowed at once: pay or cancel one first."),
    UnpaidUnitLimit = ("unpaid_unit_limit", 409, "Conflict", "The customer's unpaid orders would reserve more units than allowed at once."),
    NotificationNotFailed = ("notification_not_failed", 409, "Conflict", "Only FAILED notifications are sent again."),
    NotificationUnaddressable = ("notification_unaddressable", 409, "Conflict", "The notification never had a recipient: there is nothing to send again."),
    NotificationLinkExpired = ("notification_link_expired", 409, "Conflict", "A password-reset or verification email carried a single-use link that is not kept: the user asks for a new one."),
    IdempotencyRequestInProgress = ("idempotency_request_in_progress", 409, "Conflict", "A request with this `Idempotency-Key` is still running; retry shortly."),
    PayloadTooLarge = ("payload_too_large", 413, "Payload too large", "The body is over the gateway's limit (1 MiB by default)."),
    UnsupportedMediaType = ("unsupported_media_type", 415, "Unsupported media type", "A JSON body came without `Content-Type: application/json`."),
    ValidationFailed = ("validation_failed", 422, "Validation failed", "Well-formed but unacceptable values, or wrong JSON types; `errors` lists the fields."),
    UnknownProduct = ("unknown_product", 422, "Unknown product", "The body names a product that does not exist."),
    TooManyLines = ("too_many_lines", 422, "Too many cart lines", "The cart already holds the most lines it may."),
    PaymentMethodInvalid = ("payment_method_invalid", 422, "Payment method not accepted", "The payment method is unknown or cannot be used here."),
    PaymentNotPossible = ("payment_not_possible", 422, "Payment not possible", "The provider cannot take this payment (e.g. an unsupported currency)."),
    RefundExceedsCaptured = ("refund_exceeds_captured", 422, "Refund too large", "The refund is more than captured minus refunded."),
    IdempotencyKeyReused = ("idempotency_key_reused", 422, "Idempotency-Key reused with a different request", "The `Idempotency-Key` was used before with another body."),
    TooManyRequests = ("too_many_requests", 429, "Too many requests", "Throttled; see `Retry-After`."),
    InternalError = ("internal_error", 500, "Internal server error", "A bug: the details are logged, never sent."),
    BadGateway = ("bad_gateway", 502, "Bad gateway", "An upstream service answered something unusable."),
    InventoryRefused = ("inventory_refused", 502, "Bad gateway", "The inventory refused a reservation for another reason than stock."),
    ServiceUnavailable = ("service_unavailable", 503, "Service unavailable", "A service, its database or the signing keys cannot be reached."),
    CatalogUnavailable = ("catalog_unavailable", 503, "Service unavailable", "The catalog is not answering, so products cannot be checked (`Retry-After`)."),
    PaymentProviderUnavailable = ("payment_provider_unavailable", 503, "Service unavailable", "The payment provider is not answering."),
    GatewayTimeout = ("gateway_timeout", 504, "Gateway timeout", "The request took longer than the gateway waits."),
    RequestFailed = ("request_failed", 400, "Request failed", "Any other 4xx/5xx status without a code of its own."),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut description = String::from(
            "Stable machine-readable code of a problem; `type` ends with it. One status per code:\n",
        );
        for c in ErrorCode::ALL {
            let status = if *c == ErrorCode::RequestFailed {
                "4xx/5xx".to_string()
            } else {
                c.status().as_u16().to_string()
            };
            description.push_str(&format!("\n- `{}` ({status}): {}", c.as_str(), c.meaning()));
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .description(Some(description))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// An RFC 9457 problem document, with a stable machine-readable `code`.
///
/// Other members may follow (RFC 9457 extension members): a `card_declined` problem carries
/// the failed `payment`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// URI identifying the problem type (stable; `code` is its last segment).
    #[serde(rename = "type")]
    #[schema(format = "uri", example = "https://shop.example/problems/validation_failed")]
    pub type_uri: String,
    /// Short, human-readable summary of the problem type (the same for every problem of a code).
    pub title: String,
    /// HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub code: ErrorCode,
    /// The request path this problem occurred on, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Per-field validation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The error type of every handler. Renders as `application/problem+json`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    /// Extra headers (e.g. `Retry-After`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A problem with `code`, whose status and title follow from the code.
    pub fn new(code: ErrorCode) -> Self {
        ApiError { status: code.status(), code, detail: None, errors: Vec::new(), headers: Vec::new() }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError { field: field.into(), message: message.into() });
        self
    }

    /// Appends several field errors (e.g. copied from another service's problem).
    pub fn with_errors(mut self, errors: impl IntoIterator<Item = FieldError>) -> Self {
        self.errors.extend(errors);
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest).detail(detail)
    }

    pub fn malformed_json(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedJson).detail(detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedMediaType).detail(detail)
    }

    /// 422: the request was well-formed but its values are not acceptable.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed).detail(detail)
    }

    /// 422 built from a list of field errors.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let mut e = Self::validation(match errors.len() {
            1 => format!("{}: {}", errors[0].field, errors[0].message),
            n => format!("{n} fields are invalid"),
        });
        e.errors = errors;
        e
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound).detail(what)
    }

    /// 409 with a specific code (`ErrorCode::DuplicateSku`, …).
    pub fn conflict(code: ErrorCode, detail: impl Into<String>) -> Self {
        debug_assert_eq!(code.status(), StatusCode::CONFLICT, "{code} is not a conflict");
        Self::new(code).detail(detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized)
            .detail(detail)
            .header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden).detail(detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceUnavailable).detail(detail)
    }

    /// 500. The detail is logged, never sent: clients see a generic message.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(ErrorCode::InternalError).detail("An unexpected error occurred; it has been logged.")
    }

    pub fn to_problem(&self) -> Problem {
        Problem {
            type_uri: format!("{PROBLEM_BASE}{}", self.code),
            title: self.code.title().to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            instance: None,
            errors: self.errors.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (k, v) in self.headers {
            res.headers_mut().insert(k, v);
        }
        res
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut => ApiError::unavailable("the database is not answering"),
            _ => ApiError::internal(err),
        }
    }
}

/// A problem for a bare status code (used when normalising responses that carry no problem).
pub fn for_status(status: StatusCode) -> ApiError {
    let code = match status.as_u16() {
        400 => ErrorCode::BadRequest,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        406 => ErrorCode::NotAcceptable,
        408 => ErrorCode::RequestTimeout,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::ValidationFailed,
        429 => ErrorCode::TooManyRequests,
        500 => ErrorCode::InternalError,
        502 => ErrorCode::BadGateway,
        503 => ErrorCode::ServiceUnavailable,
        504 => ErrorCode::GatewayTimeout,
        _ => ErrorCode::RequestFailed,
    };
    let mut e = ApiError::new(code);
    e.status = status;
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn renders_problem_json() {
        let res = ApiError::validation("price must be positive")
            .field("price.amount", "must be ≥ 0")
            .into_response();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "https://shop.example/problems/validation_failed");
        assert_eq!(v["code"], "validation_failed");
        assert_eq!(v["status"], 422);
        assert_eq!(v["errors"][0]["field"], "price.amount");
    }

    #[test]
    fn codes_have_one_casing_and_a_status_each() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            let name = c.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name} is not snake_case");
            assert_eq!(serde_json::to_value(c).unwrap(), name);
            assert!(c.status().is_client_error() || c.status().is_server_error(), "{name}");
            assert!(!c.title().is_empty() && !c.meaning().is_empty(), "{name}");
        }
        assert_eq!(for_status(StatusCode::IM_A_TEAPOT).to_problem().status, 418);
        assert_eq!(for_status(StatusCode::IM_A_TEAPOT).code, ErrorCode::RequestFailed);
    }

    /// `docs/api.md` lists every code with its status in the error table.
    #[test]
    fn the_api_docs_list_every_code() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
        let mut missing = Vec::new();
        for c in ErrorCode::ALL {
            let status = match c {
                ErrorCode::RequestFailed => "4xx/5xx".to_string(),
                c => c.status().as_u16().to_string(),
            };
            let row = format!("| `{}` | {status} |", c.as_str());
            if !doc.lines().any(|l| l.starts_with(&row)) {
                missing.push(row);
            }
        }
        assert!(
            missing.is_empty(),
            "docs/api.md lacks the rows (code, status, meaning):\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn internal_errors_hide_details() {
        let p = ApiError::internal("connection string postgres://secret").to_problem();
        assert!(!p.detail.unwrap().contains("secret"));
    }
}
