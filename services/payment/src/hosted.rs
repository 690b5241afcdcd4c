//! The simulated provider's hosted checkout page, served by this service (with Stripe, Stripe
//! hosts the page and these routes answer 404). No bearer token: the session id — long, random,
//! known only to the customer who asked for the session — is the capability.
//!
//! - `GET /api/v1/payments/hosted/{sessionId}`: a minimal, self-contained HTML page with the
//!   amount, the order and a form to pay with one of the test cards, or to cancel.
//! - `POST …/pay` (`application/x-www-form-urlencoded`, `paymentMethod=pm_card_visa`): the
//!   simulated provider creates the session's intent and confirms it (manual capture). Paid →
//!   the session completes and the provider queues its signed `checkout.session.completed`
//!   webhook (which makes the payment AUTHORIZED, like Stripe's) → 303 to the success URL.
//!   Declined → the session expires and the payment is FAILED at once → 303 to the cancel URL
//!   with `error=card_declined`.
//! - `POST …/cancel`: the session expires and the payment is CANCELLED → 303 to the cancel URL.
//!
//! Both redirect targets were checked against the allow-list when the session was created; the
//! provider replaces `{CHECKOUT_SESSION_ID}` in them, as Stripe does. A session that is unknown
//! answers a 404 problem, one that is no longer open a 409 problem.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use kit::extract::Path;
use kit::openapi::responses as r;
use kit::problem::{ErrorCode, FieldError};
use kit::{ApiError, ApiResult};

use crate::model::{ChangeSource, HostedPayForm, Payment};
use crate::provider::simulated::{card_behaviour, CardBehaviour, SimulatedProvider, SimulatedSession};
use crate::provider::{keys, PaymentProvider, ProviderError, ProviderSession, SessionStatus};
use crate::service::{append_query, IntentFacts, SESSION_ID_PLACEHOLDER};
use crate::PaymentState;

/// The test cards the page offers: (payment method, label).
pub const TEST_CARDS: [(&str, &str); 2] = [
    ("pm_card_visa", "Visa 4242 4242 4242 4242 (authorised)"),
    ("pm_card_chargeDeclined", "Visa 4000 0000 0000 0002 (declined)"),
];

/// The page's template (minijinja, HTML auto-escaping: every value is escaped).
const PAGE: &str = include_str!("../templates/hosted.html");

/// The page of an open session.
pub fn render_page(session: &SimulatedSession) -> String {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("hosted.html", PAGE).expect("the hosted page template parses");
    let expires =
        session.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let cards: Vec<_> =
        TEST_CARDS.iter().map(|(method, label)| minijinja::context! { method, label }).collect();
    env.get_template("hosted.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                id => session.id,
                amount => session.amount.to_string(),
                order => session.order_id,
                expires => expires,
                cards => cards,
            })
        })
        .expect("the hosted page renders")
}

fn hosted_provider(st: &PaymentState) -> Result<&SimulatedProvider, ApiError> {
    st.hosted_provider().ok_or_else(|| {
        ApiError::not_found("hosted checkout pages are served here only with the simulated provider")
    })
}

fn unknown(session_id: &str) -> ApiError {
    ApiError::not_found(format!("checkout session `{session_id}` not found"))
}

fn not_open(session_id: &str, status: SessionStatus) -> ApiError {
    ApiError::conflict(
        ErrorCode::CheckoutSessionNotOpen,
        format!(
            "checkout session `{session_id}` is {}; it can no longer be paid or cancelled",
            status.as_str()
        ),
    )
}

fn unavailable(e: &ProviderError) -> ApiError {
    ApiError::new(ErrorCode::PaymentProviderUnavailable).detail(e.to_string())
}

/// The session and its payment; anything that is not a session of this service's is a 404.
async fn load(
    st: &PaymentState,
    provider: &SimulatedProvider,
    session_id: &str,
) -> Result<(SimulatedSession, Payment), ApiError> {
    let well_formed = session_id.starts_with("cs_")
        && session_id.len() <= 255
        && session_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err(unknown(session_id));
    }
    let session = provider.checkout_session(session_id).await.map_err(|e| unavailable(&e))?;
    let payment = st.store.by_checkout_session(session_id).await?;
    match (session, payment) {
        (Some(s), Some(p)) => Ok((s, p)),
        _ => Err(unknown(session_id)),
    }
}

/// Refuses a session that cannot be paid; one past its expiry is expired now (its payment is
/// cancelled).
async fn require_payable(
    st: &PaymentState,
    provider: &SimulatedProvider,
    session: &SimulatedSession,
    payment: &Payment,
) -> Result<(), ApiError> {
    if session.status != SessionStatus::Open {
        return Err(not_open(&session.id, session.status));
    }
    if !session.is_payable(time::OffsetDateTime::now_utc()) {
        let key = keys::expire_session(payment.order_id, payment.id);
        let expired = provider.expire_checkout_session(&session.id, &key).await;
        if let Err(e @ ProviderError::Unavailable(_)) = &expired {
            return Err(unavailable(e));
        }
        st.sync_checkout(payment, &session.id, ChangeSource::Api).await?;
        return Err(not_open(&session.id, SessionStatus::Expired));
    }
    Ok(())
}

/// Where the provider sends the customer: the URL with the session id filled in.
fn target(url: &str, session_id: &str) -> String {
    url.replace(SESSION_ID_PLACEHOLDER, session_id)
}

fn see_other(url: &str) -> Response {
    let mut res = Redirect::to(url).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

/// The intent of a session, as facts for [`crate::service::session_effect`].
async fn session_intent(
    provider: &SimulatedProvider,
    session: &ProviderSession,
) -> Result<Option<IntentFacts>, ApiError> {
    match &session.payment_intent {
        Some(pi) => Ok(Some(provider.retrieve(pi).await.map_err(|e| unavailable(&e))?.into())),
        None => Ok(None),
    }
}

/// The hosted payment page of a simulated checkout session (HTML; no token: the session id is
/// the capability).
///
/// 404: no such session, or the provider is Stripe (Stripe hosts its page); 409
/// `checkout_session_not_open`: paid, cancelled or expired.
#[utoipa::path(
    get, path = "/api/v1/payments/hosted/{sessionId}", tag = "payments",
    params(("sessionId" = String, Path, description = "Checkout session id (`cs_…`)")),
    responses(
        (status = 200, description = "The page: amount, order, a form to pay with a test card or to cancel", content_type = "text/html", body = String),
        r::Read, r::NotFound, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn page(State(st): State<PaymentState>, Path(session_id): Path<String>) -> ApiResult<Response> {
    let provider = hosted_provider(&st)?;
    let (session, payment) = load(&st, provider, &session_id).await?;
    require_payable(&st, provider, &session, &payment).await?;
    let mut res = render_page(&session).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    Ok(res)
}

/// Pay a simulated checkout session with a test card (the page's form).
///
/// Paid → 303 to the success URL (`session_id=…`); the payment becomes AUTHORIZED when the
/// provider's signed `checkout.session.completed` webhook arrives. Declined → the payment is
/// FAILED → 303 to the cancel URL with `session_id=…&error=card_declined`. 404: no such session,
/// or the provider is Stripe; 409 `checkout_session_not_open` or `checkout_payment_refused`; 422
/// `payment_method_invalid`: not one of the page's test cards.
#[utoipa::path(
    post, path = "/api/v1/payments/hosted/{sessionId}/pay", tag = "payments",
    params(("sessionId" = String, Path, description = "Checkout session id (`cs_…`)")),
    request_body(content = HostedPayForm, description = "The page's form", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To the success URL (paid) or the cancel URL with `error` (declined)",
            headers(("Location" = String, description = "Where the customer goes"))),
        r::Write, r::NotFound, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn pay(
    State(st): State<PaymentState>,
    Path(session_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let provider = hosted_provider(&st)?;
    let payment_method = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "paymentMethod")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    // Exactly the cards the page offers (`HostedTestCard`).
    let usable = TEST_CARDS.iter().any(|(pm, _)| *pm == payment_method)
        && matches!(
            card_behaviour(&payment_method),
            Some(CardBehaviour::Succeed | CardBehaviour::Decline(..))
        );
    if !usable {
        return Err(ApiError::new(ErrorCode::PaymentMethodInvalid)
            .detail("the hosted page takes a test card that is authorised or declined (e.g. pm_card_visa)")
            .with_errors([FieldError {
                field: "paymentMethod".into(),
                message: "not a usable test card".into(),
            }]));
    }
    let (session, payment) = load(&st, provider, &session_id).await?;
    // Once an attempt was made, a repeated identical submission (a double click) replays its
    // answer (same key, same card); another card is refused by the provider (409).
    if session.payment_intent.is_none() {
        require_payable(&st, provider, &session, &payment).await?;
    }
    let key = keys::hosted_pay(&session_id);
    let (after, intent) = match provider.pay_checkout_session(&session_id, &payment_method, &key).await {
        Ok(r) => r,
        Err(e @ ProviderError::Unavailable(_)) => return Err(unavailable(&e)),
        Err(e) => {
            let now = provider.checkout_session(&session_id).await.map_err(|e| unavailable(&e))?;
            return Err(match now {
                Some(s) if s.status != SessionStatus::Open => not_open(&session_id, s.status),
                _ => ApiError::conflict(ErrorCode::CheckoutPaymentRefused, e.to_string()),
            });
        }
    };
    match after.status {
        // The payment follows with the provider's `checkout.session.completed` webhook.
        SessionStatus::Complete => Ok(see_other(&target(&session.success_url, &session_id))),
        SessionStatus::Expired => {
            let facts = intent.map(IntentFacts::from);
            let code = facts
                .as_ref()
                .and_then(|f| f.last_error.as_ref())
                .map(|e| e.code.clone())
                .unwrap_or_else(|| "card_declined".into());
            let reason = "declined on the hosted checkout page".to_string();
            st.apply_checkout(&payment, SessionStatus::Expired, facts, ChangeSource::Api, reason, None)
                .await?;
            let code: String = url::form_urlencoded::byte_serialize(code.as_bytes()).collect();
            Ok(see_other(&append_query(&target(&session.cancel_url, &session_id), "error", &code)))
        }
        SessionStatus::Open => Err(ApiError::conflict(
            ErrorCode::CheckoutPaymentRefused,
            format!("checkout session `{session_id}` is still open after the payment attempt"),
        )),
    }
}

/// Cancel a simulated checkout session (the page's cancel button): it expires, its payment is
/// CANCELLED → 303 to the cancel URL (`session_id=…`). 404: no such session, or the provider is
/// Stripe; 409 `checkout_session_not_open`.
#[utoipa::path(
    post, path = "/api/v1/payments/hosted/{sessionId}/cancel", tag = "payments",
    params(("sessionId" = String, Path, description = "Checkout session id (`cs_…`)")),
    responses(
        (status = 303, description = "To the cancel URL", headers(("Location" = String, description = "Where the customer goes"))),
        r::Read, r::NotFound, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn cancel(State(st): State<PaymentState>, Path(session_id): Path<String>) -> ApiResult<Response> {
    let provider = hosted_provider(&st)?;
    let (session, payment) = load(&st, provider, &session_id).await?;
    require_payable(&st, provider, &session, &payment).await?;
    let key = keys::expire_session(payment.order_id, payment.id);
    let after = match provider.expire_checkout_session(&session_id, &key).await {
        Ok(s) => s,
        Err(e @ ProviderError::Unavailable(_)) => return Err(unavailable(&e)),
        Err(_) => {
            let now = provider.checkout_session(&session_id).await.map_err(|e| unavailable(&e))?;
            return Err(not_open(&session_id, now.map(|s| s.status).unwrap_or(SessionStatus::Expired)));
        }
    };
    let facts = session_intent(provider, &after).await?;
    let reason = "cancelled on the hosted checkout page".to_string();
    st.apply_checkout(&payment, after.status, facts, ChangeSource::Api, reason, None).await?;
    Ok(see_other(&target(&session.cancel_url, &session_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_the_amount_and_escapes_everything() {
        use kit::money::Money;
        let session = SimulatedSession {
            id: "cs_test_<script>".into(),
            order_id: "\"><img src=x onerror=alert(1)>".into(),
            amount: Money::new(12999, "USD"),
            status: SessionStatus::Open,
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
            success_url: "http://localhost/ok".into(),
            cancel_url: "http://localhost/no".into(),
            payment_intent: None,
        };
        let html = render_page(&session);
        assert!(html.contains("$129.99"), "{html}");
        assert!(!html.contains("<script>") && !html.contains("<img"), "{html}");
        assert!(html.contains("cs_test_&lt;script&gt;/pay"), "{html}");
        assert!(html.contains(r#"<option value="pm_card_visa">"#), "{html}");
        assert!(html
            .contains(r#"<form method="post" action="/api/v1/payments/hosted/cs_test_&lt;script&gt;/pay">"#));
    }

    #[test]
    fn redirect_targets() {
        assert_eq!(
            target("http://localhost/ok?session_id={CHECKOUT_SESSION_ID}", "cs_1"),
            "http://localhost/ok?session_id=cs_1"
        );
        assert_eq!(
            append_query("http://localhost/ok#x", "error", "card_declined"),
            "http://localhost/ok?error=card_declined#x"
        );
        assert_eq!(append_query("http://localhost/ok?a=1", "b", "2"), "http://localhost/ok?a=1&b=2");
        assert_eq!(append_query("http://localhost/ok?", "b", "2"), "http://localhost/ok?b=2");
    }
}
