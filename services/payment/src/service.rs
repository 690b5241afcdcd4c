//! The payment operations shared by the HTTP API, the event handlers and the background tasks:
//! create an intent or a hosted checkout session for an order, confirm, capture, refund,
//! cancel, and what a checkout session's outcome means for its payment. Each calls the provider
//! with an idempotency key derived from the order ([`crate::provider::keys`]) and records the
//! outcome through the one transition function of the store.

use axum::http::StatusCode;
use kit::auth::Identity;
use kit::db::Timestamp;
use kit::events::Envelope;
use kit::problem::{ErrorCode, FieldError};
use kit::ApiError;
use uuid::Uuid;

use crate::model::*;
use crate::orders::{LookupError, OrderInfo, AWAITING_PAYMENT};
use crate::provider::{
    keys, Intent, IntentStatus, NewCheckoutSession, NewIntent, NewRefund, PaymentError, ProviderError,
    SessionStatus,
};
use crate::store::{Change, CheckoutLink, Claim, Effect, Inserted, NewPayment, StoreError, Transitioned};
use crate::PaymentState;

/// Stripe's placeholder in `success_url` / `cancel_url`, replaced by the session id.
pub const SESSION_ID_PLACEHOLDER: &str = "{CHECKOUT_SESSION_ID}";

/// `url` with `name=value` added to its query (before any fragment); `value` is inserted as it
/// is (callers pass URL-safe values, or Stripe's placeholder, which must stay unencoded).
pub fn append_query(url: &str, name: &str, value: &str) -> String {
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let sep = match base.split_once('?') {
        None => "?",
        Some((_, q)) if q.is_empty() || q.ends_with('&') => "",
        Some(_) => "&",
    };
    let mut out = format!("{base}{sep}{name}={value}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// What the session's intent says (from the provider, or from a webhook's expanded object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentFacts {
    pub id: String,
    pub status: Option<IntentStatus>,
    pub charge_id: Option<String>,
    pub last_error: Option<PaymentError>,
}

impl From<Intent> for IntentFacts {
    fn from(i: Intent) -> Self {
        IntentFacts { id: i.id, status: Some(i.status), charge_id: i.charge_id, last_error: i.last_error }
    }
}

/// What a checkout session's state means for its payment: complete with an authorised
/// (uncaptured) intent → AUTHORIZED; expired after a declined attempt → FAILED (with the
/// decline); expired otherwise → CANCELLED; open, or complete without an authorised intent →
/// nothing.
pub fn session_effect(status: SessionStatus, intent: Option<&IntentFacts>) -> Option<Effect> {
    match status {
        SessionStatus::Open => None,
        SessionStatus::Complete => match intent {
            Some(i) if matches!(i.status, Some(IntentStatus::RequiresCapture | IntentStatus::Succeeded)) => {
                Some(Effect::Authorized { charge_id: i.charge_id.clone() })
            }
            _ => None,
        },
        SessionStatus::Expired => match intent.and_then(|i| i.last_error.clone()) {
            Some(err) => Some(Effect::Failed { code: err.code, reason: err.message }),
            None => Some(Effect::Cancelled),
        },
    }
}

/// Why an operation did not happen. [`OpError::is_retryable`] tells event handlers whether to
/// ask for a redelivery (infrastructure) or to acknowledge (a business refusal).
#[derive(Debug)]
pub enum OpError {
    /// The card was declined: the payment is FAILED.
    Declined(Box<Payment>),
    Api(ApiError),
}

impl OpError {
    pub fn is_retryable(&self) -> bool {
        match self {
            OpError::Declined(_) => false,
            OpError::Api(e) => e.status.is_server_error(),
        }
    }
}

impl From<ApiError> for OpError {
    fn from(e: ApiError) -> Self {
        OpError::Api(e)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Api(e.into())
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Declined(p) => write!(f, "payment {} declined", p.id),
            OpError::Api(e) => e.fmt(f),
        }
    }
}

/// The 402 problem of a declined card: RFC 9457 with the extension members `paymentId` and
/// `payment` (the FAILED payment, with `failureCode` / `failureReason`).
pub fn declined_response(payment: &Payment) -> axum::response::Response {
    let detail = payment.failure_reason.clone().unwrap_or_else(|| "the card was declined".into());
    let body = DeclinedProblem {
        problem: ApiError::new(ErrorCode::CardDeclined).detail(detail).to_problem(),
        payment_id: payment.id,
        failure_code: payment.failure_code.clone(),
        payment: payment.clone(),
    };
    let mut res =
        axum::response::IntoResponse::into_response((StatusCode::PAYMENT_REQUIRED, axum::Json(body)));
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(kit::problem::PROBLEM_JSON),
    );
    res
}

fn provider_unavailable(e: &ProviderError) -> ApiError {
    ApiError::new(ErrorCode::PaymentProviderUnavailable).detail(e.to_string())
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("payment `{id}` not found"))
}

/// The payment status that mirrors a provider intent status (before capture).
fn status_of(intent: &Intent) -> PaymentStatus {
    match intent.status {
        IntentStatus::RequiresConfirmation => PaymentStatus::RequiresConfirmation,
        IntentStatus::RequiresAction => PaymentStatus::RequiresAction,
        _ => PaymentStatus::RequiresPaymentMethod,
    }
}

/// The answer of `POST /payments/checkout-session`.
fn checkout_response(payment: Payment, link: CheckoutLink) -> CheckoutSessionResponse {
    CheckoutSessionResponse {
        payment_id: payment.id,
        session_id: link.session_id,
        url: link.url,
        expires_at: link.expires_at.into(),
        payment,
    }
}

/// What a transition returned, as the payment now.
fn settle(t: Transitioned, id: Uuid) -> Result<Payment, ApiError> {
    match t {
        Transitioned::Done(p) | Transitioned::Unchanged(p) => Ok(p),
        Transitioned::AlreadyProcessed | Transitioned::NotFound => Err(not_found(id)),
    }
}

impl PaymentState {
    /// Loads a payment the caller may see (owner or admin); others get the same 404 as for a
    /// payment that does not exist.
    pub async fn visible_payment(&self, who: &Identity, id: Uuid) -> Result<Payment, ApiError> {
        match self.store.get(id).await? {
            Some(p) if who.can_see(p.user_id) => Ok(p),
            _ => Err(not_found(id)),
        }
    }

    /// The order, if the caller may see it (owner or admin); others get the same 404 as for an
    /// order that does not exist.
    async fn visible_order(&self, who: &Identity, order_id: Uuid) -> Result<OrderInfo, ApiError> {
        match self.orders.order(order_id).await {
            Ok(Some(o)) if who.can_see(o.user_id) => Ok(o),
            Ok(_) => Err(ApiError::not_found(format!("order `{order_id}` not found"))),
            Err(LookupError::Unavailable(e)) => {
                Err(ApiError::unavailable(format!("the order service cannot be asked: {e}")))
            }
        }
    }

    /// A payment can be created only for an order awaiting payment with a payable total.
    fn check_payable(order: &OrderInfo) -> Result<(), ApiError> {
        let order_id = order.id;
        if order.status != AWAITING_PAYMENT {
            return Err(ApiError::conflict(
                ErrorCode::OrderNotAwaitingPayment,
                format!(
                    "order `{order_id}` is {}; a payment can be created only while it is {AWAITING_PAYMENT}",
                    order.status
                ),
            ));
        }
        if order.total.amount <= 0 || order.total.validate().is_err() {
            return Err(ApiError::conflict(
                ErrorCode::OrderNotPayable,
                format!(
                    "order `{order_id}` has no payable total ({} {})",
                    order.total.amount, order.total.currency
                ),
            ));
        }
        Ok(())
    }

    /// Creates the payment of an order, or returns the order's live payment (then `200`).
    /// Amount and currency come from the order service.
    pub async fn create_intent(
        &self,
        who: &Identity,
        order_id: Uuid,
    ) -> Result<(StatusCode, Payment), ApiError> {
        let order = self.visible_order(who, order_id).await?;
        if let Some(existing) = self.store.live_for_order(order_id).await? {
            return Ok((StatusCode::OK, existing));
        }
        Self::check_payable(&order)?;
        // Concurrent creators of the same attempt use the same provider key, hence one intent;
        // the partial unique index then keeps one payment row.
        let attempt = self.store.dead_payments(order_id).await? + 1;
        let new = NewIntent { amount: order.total.clone(), order_id };
        let intent = match self.provider.create_intent(&new, &keys::intent(order_id, attempt)).await {
            Ok(i) => i,
            Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e)),
            Err(e) => return Err(ApiError::new(ErrorCode::PaymentNotPossible).detail(e.to_string())),
        };
        let row = NewPayment {
            order_id,
            user_id: order.user_id,
            amount: order.total,
            provider: self.provider.kind(),
            provider_payment_id: intent.id.clone(),
            client_secret: intent.client_secret.clone(),
            status: status_of(&intent),
            checkout: None,
        };
        Ok(match self.store.insert(&row, ChangeSource::Api).await? {
            Inserted::Created(p) => (StatusCode::CREATED, p),
            Inserted::Existing(p) => (StatusCode::OK, p),
        })
    }

    /// Confirms a payment with a payment method: AUTHORIZED, REQUIRES_ACTION, or FAILED
    /// ([`OpError::Declined`]). An authorised or later payment is returned unchanged.
    pub async fn confirm(&self, payment: Payment, payment_method: &str) -> Result<Payment, OpError> {
        let id = payment.id;
        if let Some(session) = payment.checkout_session_id.as_deref().filter(|_| payment.status.is_pending())
        {
            return Err(ApiError::conflict(
                ErrorCode::PaymentNotConfirmable,
                format!(
                    "payment `{id}` is paid on the hosted page of its checkout session `{session}`, not confirmed through the API"
                ),
            )
            .into());
        }
        match payment.status {
            s if s.is_pending() => {}
            PaymentStatus::Failed | PaymentStatus::Cancelled => {
                return Err(ApiError::conflict(
                    ErrorCode::PaymentNotConfirmable,
                    format!("payment `{id}` is {}; create a new payment for the order", payment.status),
                )
                .into())
            }
            _ => return Ok(payment),
        }
        let key = keys::confirm(payment.order_id, id, payment_method);
        let result = self.provider.confirm(&payment.provider_payment_id, payment_method, &key).await;
        let effect = match result {
            Ok(intent) => match intent.status {
                IntentStatus::RequiresCapture | IntentStatus::Succeeded => {
                    Effect::Authorized { charge_id: intent.charge_id }
                }
                IntentStatus::RequiresAction => Effect::RequiresAction { next_action: intent.next_action },
                IntentStatus::RequiresConfirmation => Effect::RequiresConfirmation,
                IntentStatus::Canceled => Effect::Cancelled,
                IntentStatus::Processing => return Ok(payment),
                IntentStatus::RequiresPaymentMethod => {
                    let err = intent.last_error.unwrap_or(crate::provider::PaymentError {
                        code: "payment_failed".into(),
                        message: "the payment method was not accepted".into(),
                    });
                    Effect::Failed { code: err.code, reason: err.message }
                }
            },
            Err(ProviderError::Declined { code, message }) => Effect::Failed { code, reason: message },
            Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e).into()),
            Err(ProviderError::Refused(message)) => {
                // Perhaps a webhook or a concurrent confirm moved the payment meanwhile.
                let now = self.store.get(id).await?.ok_or_else(|| not_found(id))?;
                if !now.status.is_pending() {
                    return self.confirmed(now);
                }
                return Err(ApiError::new(ErrorCode::PaymentMethodInvalid)
                    .detail(message)
                    .field("paymentMethod", "not a usable payment method")
                    .into());
            }
        };
        let t = self.store.transition(Change::new(id, effect, ChangeSource::Api).reason("confirmed")).await?;
        self.confirmed(settle(t, id)?)
    }

    fn confirmed(&self, payment: Payment) -> Result<Payment, OpError> {
        match payment.status {
            PaymentStatus::Failed => Err(OpError::Declined(Box::new(payment))),
            PaymentStatus::Cancelled => Err(ApiError::conflict(
                ErrorCode::PaymentNotConfirmable,
                format!("payment `{}` was cancelled", payment.id),
            )
            .into()),
            _ => Ok(payment),
        }
    }

    /// Captures (part of) an AUTHORIZED payment; a captured one is returned unchanged.
    pub async fn capture(
        &self,
        payment: Payment,
        amount: Option<i64>,
        source: ChangeSource,
        claim: Option<Claim>,
        cause: Option<&Envelope>,
    ) -> Result<Payment, ApiError> {
        let id = payment.id;
        if payment.status.is_captured() {
            return self.finish_without_change(payment, claim).await;
        }
        if payment.status != PaymentStatus::Authorized {
            return Err(ApiError::conflict(
                ErrorCode::PaymentNotCapturable,
                format!("payment `{id}` is {}; only AUTHORIZED payments can be captured", payment.status),
            ));
        }
        let amount = amount.unwrap_or(payment.amount.amount);
        if amount <= 0 || amount > payment.amount.amount {
            return Err(ApiError::validation(format!(
                "amountToCapture must be between 1 and the authorised {}",
                payment.amount.amount
            ))
            .field("amountToCapture", format!("must be between 1 and {}", payment.amount.amount)));
        }
        let key = keys::capture(payment.order_id, id);
        if let Some(cause) = cause {
            self.store.note_capture_cause(id, cause).await?;
        }
        let (captured, charge_id) =
            match self.provider.capture(&payment.provider_payment_id, Some(amount), &key).await {
                Ok(intent) if intent.amount_received > 0 => (intent.amount_received, intent.charge_id),
                Ok(intent) => (amount, intent.charge_id),
                Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e)),
                Err(e) => {
                    let now = self.store.get(id).await?.ok_or_else(|| not_found(id))?;
                    if now.status.is_captured() {
                        return self.finish_without_change(now, claim).await;
                    }
                    return Err(ApiError::conflict(ErrorCode::CaptureRefused, e.to_string()));
                }
            };
        let change = Change::new(id, Effect::Captured { amount: captured, charge_id }, source)
            .reason("captured")
            .claim(claim)
            .caused_by(cause);
        settle(self.store.transition(change).await?, id)
    }

    /// Voids a payment that was not captured (→ CANCELLED).
    pub async fn cancel(
        &self,
        payment: Payment,
        reason: &str,
        source: ChangeSource,
        claim: Option<Claim>,
        cause: Option<&Envelope>,
    ) -> Result<Payment, ApiError> {
        let id = payment.id;
        if !(payment.status.is_pending() || payment.status == PaymentStatus::Authorized) {
            return Err(ApiError::conflict(
                ErrorCode::PaymentNotCancellable,
                format!(
                    "payment `{id}` is {}; only payments not yet captured can be cancelled",
                    payment.status
                ),
            ));
        }
        let mut learnt_intent = None;
        match payment.checkout_session_id.as_deref().filter(|s| *s == payment.provider_payment_id) {
            // A hosted checkout payment whose intent is not known: expire the session so that it
            // can no longer be paid; if the customer paid meanwhile, void that authorisation.
            Some(session_id) => {
                let key = keys::expire_session(payment.order_id, id);
                let session = match self.provider.expire_checkout_session(session_id, &key).await {
                    Ok(s) => s,
                    Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e)),
                    // Not open any more (expired or paid): what is it now?
                    Err(e) => match self.provider.retrieve_checkout_session(session_id).await {
                        Ok(s) => s,
                        Err(e2 @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e2)),
                        Err(_) => return Err(ApiError::conflict(ErrorCode::CancelRefused, e.to_string())),
                    },
                };
                match (session.status, session.payment_intent) {
                    (SessionStatus::Expired, _) => {}
                    (SessionStatus::Complete, Some(intent)) => {
                        self.void_intent(&intent, payment.order_id, id).await?;
                        learnt_intent = Some(intent);
                    }
                    (status, _) => {
                        return Err(ApiError::conflict(
                            ErrorCode::CancelRefused,
                            format!("checkout session `{session_id}` is {}", status.as_str()),
                        ))
                    }
                }
            }
            None => self.void_intent(&payment.provider_payment_id, payment.order_id, id).await?,
        }
        let change = Change::new(id, Effect::Cancelled, source)
            .reason(reason.to_string())
            .claim(claim)
            .caused_by(cause)
            .intent(learnt_intent);
        settle(self.store.transition(change).await?, id)
    }

    /// Cancels (voids) an intent that was not captured; an intent cancelled before is fine.
    async fn void_intent(&self, intent_id: &str, order_id: Uuid, payment_id: Uuid) -> Result<(), ApiError> {
        let key = keys::cancel(order_id, payment_id);
        match self.provider.cancel(intent_id, &key).await {
            Ok(_) => Ok(()),
            Err(e @ ProviderError::Unavailable(_)) => Err(provider_unavailable(&e)),
            Err(e) => {
                // Already cancelled at the provider (e.g. an earlier attempt of this handler)?
                match self.provider.retrieve(intent_id).await {
                    Ok(i) if i.status == IntentStatus::Canceled => Ok(()),
                    Ok(_) => Err(ApiError::conflict(ErrorCode::CancelRefused, e.to_string())),
                    Err(e2) => Err(provider_unavailable(&e2)),
                }
            }
        }
    }

    // ----- hosted checkout --------------------------------------------------------------

    /// Creates a hosted checkout session for an order (201), or returns the order's live one
    /// (200). `successUrl` / `cancelUrl` must pass the redirect allow-list (422 naming the
    /// field). An order whose live payment is a plain intent answers 409 `order_has_payment`.
    pub async fn create_checkout_session(
        &self,
        who: &Identity,
        req: &CreateCheckoutSessionRequest,
    ) -> Result<(StatusCode, CheckoutSessionResponse), ApiError> {
        let mut invalid = Vec::new();
        for (field, value) in [("successUrl", &req.success_url), ("cancelUrl", &req.cancel_url)] {
            if let Err(message) = self.redirects.check(value) {
                invalid.push(FieldError { field: field.into(), message });
            }
        }
        if !invalid.is_empty() {
            return Err(ApiError::invalid_fields(invalid));
        }
        let order_id = req.order_id;
        let order = self.visible_order(who, order_id).await?;
        if let Some(live) = self.store.live_for_order(order_id).await? {
            if let Some(answer) = self.live_checkout(live).await? {
                return Ok((StatusCode::OK, answer));
            }
        }
        Self::check_payable(&order)?;
        let attempt = self.store.dead_payments(order_id).await? + 1;
        let key = keys::session(order_id, attempt);
        let with_id = |url: &str| {
            if url.contains(SESSION_ID_PLACEHOLDER) {
                url.to_string()
            } else {
                append_query(url, "session_id", SESSION_ID_PLACEHOLDER)
            }
        };
        let new = NewCheckoutSession {
            amount: order.total.clone(),
            order_id,
            success_url: with_id(&req.success_url),
            cancel_url: with_id(&req.cancel_url),
        };
        let session = match self.provider.create_checkout_session(&new, &key).await {
            Ok(s) => s,
            Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e)),
            Err(e) => {
                // A concurrent request of this attempt with other URLs made the session first
                // (the provider refuses the key with other parameters): that one is the order's.
                if let Some(live) = self.store.live_for_order(order_id).await? {
                    if let Some(answer) = self.live_checkout(live).await? {
                        return Ok((StatusCode::OK, answer));
                    }
                }
                return Err(ApiError::new(ErrorCode::PaymentNotPossible).detail(e.to_string()));
            }
        };
        let url = session.url.clone().ok_or_else(|| {
            provider_unavailable(&ProviderError::Unavailable(format!(
                "checkout session {} has no hosted page (it is {})",
                session.id,
                session.status.as_str()
            )))
        })?;
        let expires_at = time::OffsetDateTime::from_unix_timestamp(session.expires_at).map_err(|e| {
            provider_unavailable(&ProviderError::Unavailable(format!("checkout session expiry: {e}")))
        })?;
        let link =
            CheckoutLink { session_id: session.id.clone(), url, expires_at: Timestamp::from(expires_at) };
        let row = NewPayment {
            order_id,
            user_id: order.user_id,
            amount: order.total,
            provider: self.provider.kind(),
            provider_payment_id: session.id.clone(),
            client_secret: None,
            status: PaymentStatus::RequiresPaymentMethod,
            checkout: Some(link.clone()),
        };
        match self.store.insert(&row, ChangeSource::Api).await? {
            Inserted::Created(p) => Ok((StatusCode::CREATED, checkout_response(p, link))),
            Inserted::Existing(p) => {
                if p.checkout_session_id.as_deref() != Some(session.id.as_str()) {
                    // Another payment won (a plain intent, or another attempt's session): this
                    // session belongs to nothing, so it must not stay payable.
                    let orphan = format!("{key}:orphan");
                    if let Err(e) = self.provider.expire_checkout_session(&session.id, &orphan).await {
                        tracing::warn!(session = %session.id, error = %e, "orphaned checkout session not expired");
                    }
                }
                match self.live_checkout(p).await? {
                    Some(answer) => Ok((StatusCode::OK, answer)),
                    None => Err(ApiError::conflict(
                        ErrorCode::OrderHasPayment,
                        format!("order `{order_id}` already has a payment without hosted checkout"),
                    )),
                }
            }
        }
    }

    /// The answer for an order's live payment when a session is asked for: its session
    /// (`Some`), or `None` when that session is past its expiry and unpaid (it is then
    /// cancelled, so that a new one can be made). A live payment without a session is a 409.
    async fn live_checkout(&self, live: Payment) -> Result<Option<CheckoutSessionResponse>, ApiError> {
        let Some(link) = self.store.checkout_link(live.id).await? else {
            return Err(ApiError::conflict(
                ErrorCode::OrderHasPayment,
                format!(
                    "order `{}` already has payment `{}` ({}) without hosted checkout; confirm it, or ask for a session once it failed or was cancelled",
                    live.order_id, live.id, live.status
                ),
            ));
        };
        if !live.status.is_pending() || time::OffsetDateTime::now_utc() < link.expires_at.0 {
            return Ok(Some(checkout_response(live, link)));
        }
        // Past its expiry but not settled here yet (its webhook may be on its way): the
        // provider says what happened.
        let synced = self.sync_checkout(&live, &link.session_id, ChangeSource::Api).await?;
        if !synced.status.is_pending() && !synced.status.is_dead() {
            return Ok(Some(checkout_response(synced, link)));
        }
        if synced.status.is_pending() {
            self.cancel(synced, "checkout session expired", ChangeSource::Api, None, None).await?;
        }
        Ok(None)
    }

    /// Reads a payment's checkout session (and its intent) at the provider and applies what it
    /// says through the transition function, as its webhook would.
    pub async fn sync_checkout(
        &self,
        payment: &Payment,
        session_id: &str,
        source: ChangeSource,
    ) -> Result<Payment, ApiError> {
        let session = self
            .provider
            .retrieve_checkout_session(session_id)
            .await
            .map_err(|e| provider_unavailable(&e))?;
        let intent = match &session.payment_intent {
            Some(pi) => Some(self.provider.retrieve(pi).await.map_err(|e| provider_unavailable(&e))?.into()),
            None => None,
        };
        let reason = format!("checkout session {}", session.status.as_str());
        match self.apply_checkout(payment, session.status, intent, source, reason, None).await? {
            Some(t) => settle(t, payment.id),
            None => Ok(payment.clone()),
        }
    }

    /// Moves a checkout payment as its session's state says ([`session_effect`]), recording the
    /// session's intent, through the one transition function. `None`: the state means nothing
    /// (yet).
    pub async fn apply_checkout(
        &self,
        payment: &Payment,
        status: SessionStatus,
        intent: Option<IntentFacts>,
        source: ChangeSource,
        reason: String,
        claim: Option<Claim>,
    ) -> Result<Option<Transitioned>, ApiError> {
        let Some(effect) = session_effect(status, intent.as_ref()) else {
            return Ok(None);
        };
        let change =
            Change::new(payment.id, effect, source).reason(reason).claim(claim).intent(intent.map(|i| i.id));
        Ok(Some(self.store.transition(change).await?))
    }

    /// Refunds `amount` (default: all that is left) of a CAPTURED or PARTIALLY_REFUNDED payment.
    /// `refund_id` makes it idempotent: a retry with the same id finishes or returns that refund.
    #[allow(clippy::too_many_arguments)]
    pub async fn refund(
        &self,
        payment: &Payment,
        refund_id: Uuid,
        amount: Option<i64>,
        reason: Option<&str>,
        source: ChangeSource,
        claim: Option<Claim>,
        cause: Option<&Envelope>,
    ) -> Result<Payment, ApiError> {
        let reserved = self.store.reserve_refund(payment.id, refund_id, amount, reason, cause).await?;
        match reserved.refund.status {
            RefundStatus::Succeeded => return self.finish_without_change(reserved.payment, claim).await,
            RefundStatus::Failed => {
                return Err(ApiError::conflict(
                    ErrorCode::RefundFailed,
                    format!(
                        "refund `{refund_id}` was refused by the provider; retry with a new Idempotency-Key"
                    ),
                ))
            }
            RefundStatus::Pending => {}
        }
        self.settle_refund(&reserved.payment, &reserved.refund, source, claim, cause).await
    }

    /// Calls the provider for a PENDING refund and records the result.
    pub(crate) async fn settle_refund(
        &self,
        payment: &Payment,
        refund: &Refund,
        source: ChangeSource,
        claim: Option<Claim>,
        cause: Option<&Envelope>,
    ) -> Result<Payment, ApiError> {
        let new = NewRefund {
            intent_id: payment.provider_payment_id.clone(),
            amount: refund.amount.amount,
            refund_id: refund.id,
            reason: refund.reason.clone(),
        };
        let key = keys::refund(payment.order_id, refund.id);
        let provider_refund = match self.provider.refund(&new, &key).await {
            Ok(r) => r,
            Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e)),
            Err(e) => {
                self.store.fail_refund(refund.id).await?;
                return Err(ApiError::conflict(ErrorCode::RefundRefused, e.to_string()));
            }
        };
        let change = Change::new(
            payment.id,
            Effect::Refunded {
                refund_id: refund.id,
                amount: refund.amount.amount,
                reason: refund.reason.clone(),
                provider_refund_id: Some(provider_refund.id),
            },
            source,
        )
        .reason(refund.reason.clone().unwrap_or_else(|| "refunded".into()))
        .claim(claim)
        .caused_by(cause);
        settle(self.store.transition(change).await?, payment.id)
    }

    /// Nothing to change: still claim the cause (so a redelivered event is a no-op) and
    /// return the payment as it is.
    async fn finish_without_change(
        &self,
        payment: Payment,
        claim: Option<Claim>,
    ) -> Result<Payment, ApiError> {
        match claim {
            Some(Claim::Inbox { group, event_id }) => {
                self.store.claim_only(&group, event_id).await?;
            }
            Some(Claim::Webhook { event_id, event_type }) => {
                self.store.record_webhook(&event_id, &event_type).await?;
            }
            None => {}
        }
        Ok(payment)
    }

    /// Settles refunds left PENDING (the provider was unreachable, or the process stopped
    /// between the provider call and the record) that are older than `older_than`: the
    /// provider call is repeated with the same idempotency key. Returns how many settled.
    pub async fn settle_stale_refunds(&self, older_than: std::time::Duration) -> Result<usize, ApiError> {
        let before = kit::db::Timestamp::now() - older_than;
        let mut settled = 0;
        for (refund_id, payment_id) in self.store.stale_pending_refunds(before).await? {
            let Some(payment) = self.store.get(payment_id).await? else { continue };
            let Some(refund) = payment.refunds.iter().find(|r| r.id == refund_id).cloned() else { continue };
            match self.settle_refund(&payment, &refund, ChangeSource::Sweeper, None, None).await {
                Ok(_) => settled += 1,
                Err(e) if e.status.is_server_error() => {
                    tracing::warn!(%refund_id, error = %e, "pending refund not settled; retrying later")
                }
                Err(e) => tracing::warn!(%refund_id, error = %e, "pending refund refused by the provider"),
            }
        }
        Ok(settled)
    }
}
