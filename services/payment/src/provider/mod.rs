//! Payment providers: what the service asks of a card processor. Two implementations with
//! Stripe's semantics (payment intents with manual capture, hosted checkout sessions, refunds,
//! idempotency keys):
//! [`stripe::StripeProvider`] (over HTTP with `async-stripe`) and
//! [`simulated::SimulatedProvider`] (embedded, state in the payment database).
//!
//! Every call that changes state takes an idempotency key; the service derives it from the
//! order id and the operation ([`keys`]), so a retry after a crash or a timeout replays the
//! first answer instead of charging twice.

pub mod simulated;
pub mod stripe;

use kit::money::Money;
use serde::{Deserialize, Serialize};

/// Status of a provider payment intent (Stripe's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    /// Authorised, waiting for capture (manual capture).
    RequiresCapture,
    Succeeded,
    Canceled,
}

impl IntentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresPaymentMethod => "requires_payment_method",
            IntentStatus::RequiresConfirmation => "requires_confirmation",
            IntentStatus::RequiresAction => "requires_action",
            IntentStatus::Processing => "processing",
            IntentStatus::RequiresCapture => "requires_capture",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<IntentStatus> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// Why the last attempt failed (`last_payment_error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentError {
    pub code: String,
    pub message: String,
}

/// A provider payment intent, as far as the service needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// `pi_…`
    pub id: String,
    pub status: IntentStatus,
    pub amount: i64,
    /// Authorised and not captured (minor units).
    pub amount_capturable: i64,
    /// Captured (minor units).
    pub amount_received: i64,
    /// Upper-case ISO 4217.
    pub currency: String,
    pub client_secret: Option<String>,
    pub next_action: Option<serde_json::Value>,
    pub last_error: Option<PaymentError>,
    /// The intent's latest charge (`ch_…`, Stripe's `latest_charge`), once there is one.
    #[serde(default)]
    pub charge_id: Option<String>,
}

/// Status of a hosted checkout session (Stripe's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// The customer may still pay.
    Open,
    /// The customer paid: the session's intent is authorised (manual capture).
    Complete,
    /// Expired or cancelled: it can no longer be paid.
    Expired,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Complete => "complete",
            SessionStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<SessionStatus> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// What hosted checkout session to create: one line, the order's total, manual capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCheckoutSession {
    pub amount: Money,
    /// `client_reference_id`, `metadata[order_id]` and the line's name (`Order <id>`).
    pub order_id: uuid::Uuid,
    /// May contain Stripe's `{CHECKOUT_SESSION_ID}` placeholder, replaced by the session id.
    pub success_url: String,
    pub cancel_url: String,
}

/// A provider checkout session, as far as the service needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSession {
    /// `cs_…`
    pub id: String,
    pub status: SessionStatus,
    /// The hosted page (absent once the session is complete or expired, as with Stripe).
    pub url: Option<String>,
    /// Unix time after which the session cannot be paid.
    pub expires_at: i64,
    /// The intent the customer paid (or tried to pay) with, once there is one.
    pub payment_intent: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
}

/// A provider refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRefund {
    /// `re_…`
    pub id: String,
    pub amount: i64,
    /// `succeeded`, `pending`, `failed`, …
    pub status: String,
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewIntent {
    pub amount: Money,
    /// Stored with the intent (`metadata[order_id]`, `metadata[payment_attempt]`).
    pub order_id: uuid::Uuid,
}

/// What to refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRefund {
    pub intent_id: String,
    pub amount: i64,
    /// The service's refund id (`metadata[refund_id]`), so webhooks map back to it.
    pub refund_id: uuid::Uuid,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The card was declined (Stripe: HTTP 402, `card_error`).
    #[error("declined ({code}): {message}")]
    Declined { code: String, message: String },
    /// The provider refused the request as invalid (wrong state, unknown intent, amount…).
    #[error("refused by the provider: {0}")]
    Refused(String),
    /// The provider could not be reached or answered with garbage, a 5xx or not in time.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

/// A card processor with Stripe's payment-intent model.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    fn kind(&self) -> crate::model::ProviderKind;

    /// Creates an intent with manual capture.
    async fn create_intent(&self, new: &NewIntent, idempotency_key: &str) -> Result<Intent, ProviderError>;

    /// Confirms with a payment method: `requires_capture` (authorised), `requires_action`
    /// (3-D Secure) or [`ProviderError::Declined`].
    async fn confirm(
        &self,
        intent_id: &str,
        payment_method: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError>;

    /// Captures `amount` (default: all) of an authorised intent.
    async fn capture(
        &self,
        intent_id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError>;

    /// Voids an intent that was not captured.
    async fn cancel(&self, intent_id: &str, idempotency_key: &str) -> Result<Intent, ProviderError>;

    /// Refunds part or all of a captured intent.
    async fn refund(
        &self,
        refund: &NewRefund,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError>;

    /// Reads an intent.
    async fn retrieve(&self, intent_id: &str) -> Result<Intent, ProviderError>;

    /// Creates a hosted checkout session (mode `payment`, one line with the order's total,
    /// card payments, manual capture). Its intent exists only once the customer pays.
    async fn create_checkout_session(
        &self,
        new: &NewCheckoutSession,
        idempotency_key: &str,
    ) -> Result<ProviderSession, ProviderError>;

    /// Expires an open session: it can no longer be paid. Refused when it is not open.
    async fn expire_checkout_session(
        &self,
        session_id: &str,
        idempotency_key: &str,
    ) -> Result<ProviderSession, ProviderError>;

    /// Reads a checkout session.
    async fn retrieve_checkout_session(&self, session_id: &str) -> Result<ProviderSession, ProviderError>;
}

/// Idempotency keys of provider calls, derived from the order and the operation: a retried
/// operation reuses its key, a different operation never does.
pub mod keys {
    use uuid::Uuid;

    /// Creating the `attempt`-th intent of an order (a new attempt only after a failed or
    /// cancelled payment), so concurrent creators of one attempt share one intent.
    pub fn intent(order_id: Uuid, attempt: i64) -> String {
        format!("order:{order_id}:intent:{attempt}")
    }
    pub fn confirm(order_id: Uuid, payment_id: Uuid, payment_method: &str) -> String {
        format!("order:{order_id}:confirm:{payment_id}:{payment_method}")
    }
    pub fn capture(order_id: Uuid, payment_id: Uuid) -> String {
        format!("order:{order_id}:capture:{payment_id}")
    }
    pub fn cancel(order_id: Uuid, payment_id: Uuid) -> String {
        format!("order:{order_id}:cancel:{payment_id}")
    }
    pub fn refund(order_id: Uuid, refund_id: Uuid) -> String {
        format!("order:{order_id}:refund:{refund_id}")
    }
    /// Creating the `attempt`-th hosted checkout session of an order (numbered like intents).
    pub fn session(order_id: Uuid, attempt: i64) -> String {
        format!("order:{order_id}:session:{attempt}")
    }
    /// Expiring the checkout session of a payment (cancelling it before it was paid).
    pub fn expire_session(order_id: Uuid, payment_id: Uuid) -> String {
        format!("order:{order_id}:expire:{payment_id}")
    }
    /// Paying a simulated checkout session on its hosted page (one attempt per session).
    pub fn hosted_pay(session_id: &str) -> String {
        format!("checkout:{session_id}:pay")
    }
}
