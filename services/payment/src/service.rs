//! The payment operations shared by the HTTP API, the event handlers and the background tasks:
//! create an intent for an order, confirm, capture, refund, cancel. Each calls the provider
//! with an idempotency key derived from the order ([`crate::provider::keys`]) and records the
//! outcome through the one transition function of the store.

use axum::http::StatusCode;
use kit::auth::Identity;
use kit::events::Envelope;
use kit::problem::PROBLEM_BASE;
use kit::ApiError;
use uuid::Uuid;

use crate::model::*;
use crate::orders::{LookupError, AWAITING_PAYMENT};
use crate::provider::{keys, Intent, IntentStatus, NewIntent, NewRefund, ProviderError};
use crate::store::{Change, Claim, Effect, Inserted, NewPayment, StoreError, Transitioned};
use crate::PaymentState;

/// The problem code (and last segment of the problem type) of a declined card.
pub const CARD_DECLINED: &str = "card-declined";

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
    let body = serde_json::json!({
        "type": format!("{PROBLEM_BASE}{CARD_DECLINED}"),
        "title": "Card declined",
        "status": 402,
        "detail": payment.failure_reason.clone().unwrap_or_else(|| "the card was declined".into()),
        "code": CARD_DECLINED,
        "paymentId": payment.id,
        "failureCode": payment.failure_code,
        "payment": payment,
    });
    let mut res =
        axum::response::IntoResponse::into_response((StatusCode::PAYMENT_REQUIRED, axum::Json(body)));
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(kit::problem::PROBLEM_JSON),
    );
    res
}

fn provider_unavailable(e: &ProviderError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "payment_provider_unavailable", "Service unavailable")
        .detail(e.to_string())
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

    /// Creates the payment of an order, or returns the order's live payment (then `200`).
    /// Amount and currency come from the order service.
    pub async fn create_intent(
        &self,
        who: &Identity,
        order_id: Uuid,
    ) -> Result<(StatusCode, Payment), ApiError> {
        let missing = || ApiError::not_found(format!("order `{order_id}` not found"));
        let order = match self.orders.order(order_id).await {
            Ok(Some(o)) if who.can_see(o.user_id) => o,
            Ok(_) => return Err(missing()),
            Err(LookupError::Unavailable(e)) => {
                return Err(ApiError::unavailable(format!("the order service cannot be asked: {e}")))
            }
        };
        if let Some(existing) = self.store.live_for_order(order_id).await? {
            return Ok((StatusCode::OK, existing));
        }
        if order.status != AWAITING_PAYMENT {
            return Err(ApiError::conflict(
                "order_not_awaiting_payment",
                format!(
                    "order `{order_id}` is {}; a payment can be created only while it is {AWAITING_PAYMENT}",
                    order.status
                ),
            ));
        }
        if order.total.amount <= 0 || order.total.validate().is_err() {
            return Err(ApiError::conflict(
                "order_not_payable",
                format!(
                    "order `{order_id}` has no payable total ({} {})",
                    order.total.amount, order.total.currency
                ),
            ));
        }
        // Concurrent creators of the same attempt use the same provider key, hence one intent;
        // the partial unique index then keeps one payment row.
        let attempt = self.store.dead_payments(order_id).await? + 1;
        let new = NewIntent { amount: order.total.clone(), order_id };
        let intent = match self.provider.create_intent(&new, &keys::intent(order_id, attempt)).await {
            Ok(i) => i,
            Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e)),
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "payment_not_possible",
                    "Payment not possible",
                )
                .detail(e.to_string()))
            }
        };
        let row = NewPayment {
            order_id,
            user_id: order.user_id,
            amount: order.total,
            provider: self.provider.kind(),
            provider_payment_id: intent.id.clone(),
            client_secret: intent.client_secret.clone(),
            status: status_of(&intent),
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
        match payment.status {
            s if s.is_pending() => {}
            PaymentStatus::Failed | PaymentStatus::Cancelled => {
                return Err(ApiError::conflict(
                    "payment_not_confirmable",
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
                IntentStatus::RequiresCapture | IntentStatus::Succeeded => Effect::Authorized,
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
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "payment_method_invalid",
                    "Payment method not accepted",
                )
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
                "payment_not_confirmable",
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
                "payment_not_capturable",
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
        let captured = match self.provider.capture(&payment.provider_payment_id, Some(amount), &key).await {
            Ok(intent) if intent.amount_received > 0 => intent.amount_received,
            Ok(_) => amount,
            Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e)),
            Err(e) => {
                let now = self.store.get(id).await?.ok_or_else(|| not_found(id))?;
                if now.status.is_captured() {
                    return self.finish_without_change(now, claim).await;
                }
                return Err(ApiError::conflict("capture_refused", e.to_string()));
            }
        };
        let change = Change::new(id, Effect::Captured { amount: captured }, source)
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
                "payment_not_cancellable",
                format!(
                    "payment `{id}` is {}; only payments not yet captured can be cancelled",
                    payment.status
                ),
            ));
        }
        let key = keys::cancel(payment.order_id, id);
        match self.provider.cancel(&payment.provider_payment_id, &key).await {
            Ok(_) => {}
            Err(e @ ProviderError::Unavailable(_)) => return Err(provider_unavailable(&e)),
            Err(e) => {
                // Already cancelled at the provider (e.g. an earlier attempt of this handler)?
                match self.provider.retrieve(&payment.provider_payment_id).await {
                    Ok(i) if i.status == IntentStatus::Canceled => {}
                    Ok(_) => return Err(ApiError::conflict("cancel_refused", e.to_string())),
                    Err(e2) => return Err(provider_unavailable(&e2)),
                }
            }
        }
        let change = Change::new(id, Effect::Cancelled, source)
            .reason(reason.to_string())
            .claim(claim)
            .caused_by(cause);
        settle(self.store.transition(change).await?, id)
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
        let reserved = self.store.reserve_refund(payment.id, refund_id, amount, reason).await?;
        match reserved.refund.status {
            RefundStatus::Succeeded => return self.finish_without_change(reserved.payment, claim).await,
            RefundStatus::Failed => {
                return Err(ApiError::conflict(
                    "refund_failed",
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
                return Err(ApiError::conflict("refund_refused", e.to_string()));
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
