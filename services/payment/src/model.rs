//! The payment service's public types: statuses, the payment document, request bodies.

use kit::money::Money;
use kit::openapi::strings;
use kit::problem::Problem;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a payment stands. Transitions follow [`PaymentStatus::allowed_from`]; every change is
/// made by [`crate::store::Store::transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Created; waits for the customer's payment method.
    RequiresPaymentMethod,
    /// A payment method is attached; waits for confirmation.
    RequiresConfirmation,
    /// The customer must authenticate (3-D Secure) before the card can be authorised.
    RequiresAction,
    /// The amount is reserved on the card (manual capture): nothing is charged yet.
    Authorized,
    /// The money was taken.
    Captured,
    /// Part of the captured amount went back to the customer.
    PartiallyRefunded,
    /// All of the captured amount went back to the customer.
    Refunded,
    /// The card was declined or authentication failed (terminal).
    Failed,
    /// The authorisation was voided before capture (terminal).
    Cancelled,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 9] = [
        PaymentStatus::RequiresPaymentMethod,
        PaymentStatus::RequiresConfirmation,
        PaymentStatus::RequiresAction,
        PaymentStatus::Authorized,
        PaymentStatus::Captured,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Refunded,
        PaymentStatus::Failed,
        PaymentStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::RequiresPaymentMethod => "REQUIRES_PAYMENT_METHOD",
            PaymentStatus::RequiresConfirmation => "REQUIRES_CONFIRMATION",
            PaymentStatus::RequiresAction => "REQUIRES_ACTION",
            PaymentStatus::Authorized => "AUTHORIZED",
            PaymentStatus::Captured => "CAPTURED",
            PaymentStatus::PartiallyRefunded => "PARTIALLY_REFUNDED",
            PaymentStatus::Refunded => "REFUNDED",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Before authorisation: the customer still has something to do.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            PaymentStatus::RequiresPaymentMethod
                | PaymentStatus::RequiresConfirmation
                | PaymentStatus::RequiresAction
        )
    }

    /// FAILED and CANCELLED payments are dead: the order may get a new payment.
    pub fn is_dead(self) -> bool {
        matches!(self, PaymentStatus::Failed | PaymentStatus::Cancelled)
    }

    /// Money was taken (and possibly partly given back).
    pub fn is_captured(self) -> bool {
        matches!(self, PaymentStatus::Captured | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded)
    }

    /// The statuses a payment may move to `self` from: the transition table. Anything else
    /// (a stale, duplicate or out-of-order update) is a no-op.
    pub fn allowed_from(self) -> &'static [PaymentStatus] {
        use PaymentStatus::*;
        match self {
            RequiresPaymentMethod => &[],
            RequiresConfirmation => &[RequiresPaymentMethod],
            RequiresAction => &[RequiresPaymentMethod, RequiresConfirmation],
            Authorized => &[RequiresPaymentMethod, RequiresConfirmation, RequiresAction],
            Captured => &[Authorized],
            PartiallyRefunded => &[Captured, PartiallyRefunded],
            Refunded => &[Captured, PartiallyRefunded],
            Failed => &[RequiresPaymentMethod, RequiresConfirmation, RequiresAction],
            Cancelled => &[RequiresPaymentMethod, RequiresConfirmation, RequiresAction, Authorized],
        }
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What caused a status change (recorded in the history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSource {
    /// A request to this service's API.
    Api,
    /// A provider webhook.
    Webhook,
    /// An event from another service (`order.confirmed`, `order.cancelled`).
    Event,
    /// A background task of this service.
    Sweeper,
}

impl ChangeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::Api => "api",
            ChangeSource::Webhook => "webhook",
            ChangeSource::Event => "event",
            ChangeSource::Sweeper => "sweeper",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeSource> {
        [ChangeSource::Api, ChangeSource::Webhook, ChangeSource::Event, ChangeSource::Sweeper]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// Which provider holds the payment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The embedded, stateful simulator (default).
    #[default]
    Simulated,
    /// Stripe (or a Stripe-compatible API at `stripe.api_base`).
    Stripe,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Simulated => "simulated",
            ProviderKind::Stripe => "stripe",
        }
    }

    pub fn parse(s: &str) -> Option<ProviderKind> {
        match s {
            "simulated" => Some(ProviderKind::Simulated),
            "stripe" => Some(ProviderKind::Stripe),
            _ => None,
        }
    }
}

/// Status of a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    /// Recorded, the provider call is under way (the amount is reserved).
    Pending,
    Succeeded,
    /// The provider refused it; the amount is free again.
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "PENDING",
            RefundStatus::Succeeded => "SUCCEEDED",
            RefundStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        match s {
            "PENDING" => Some(RefundStatus::Pending),
            "SUCCEEDED" => Some(RefundStatus::Succeeded),
            "FAILED" => Some(RefundStatus::Failed),
            _ => None,
        }
    }
}

/// One status change of a payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PaymentHistoryEntry)]
pub struct HistoryEntry {
    /// The previous status (absent for the creation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PaymentStatus>,
    pub to: PaymentStatus,
    pub source: ChangeSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A refund of (part of) a captured payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub id: Uuid,
    /// Amount given back, in the payment's currency.
    pub amount: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub status: RefundStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A payment of an order, with its history and refunds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// The amount authorised: the order's total.
    pub amount: Money,
    pub status: PaymentStatus,
    pub provider: ProviderKind,
    /// The provider's payment intent id (`pi_…`). A payment made through hosted checkout has
    /// its session id (`cs_…`) here until the session completes: the provider creates the
    /// intent only when the customer pays.
    pub provider_payment_id: String,
    /// For the client to confirm the intent with the provider's SDK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Minor units captured so far.
    pub captured_amount: i64,
    /// Minor units refunded so far.
    pub refunded_amount: i64,
    /// Why the payment failed (e.g. `card_declined`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// What the customer must do next (status `REQUIRES_ACTION`): the provider's `next_action`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub next_action: Option<serde_json::Value>,
    /// The hosted checkout session (`cs_…`) the payment is made through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout_session_id: Option<String>,
    /// The provider's charge (`ch_…`), once the card was authorised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_id: Option<String>,
    /// When the amount was authorised (the customer paid; capture follows the order).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub authorized_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Status changes, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Refunds, oldest first.
    pub refunds: Vec<Refund>,
}

/// Body of `POST /api/v1/payments/intent`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntentRequest {
    /// The order to pay. Amount and currency come from the order, never from the client.
    pub order_id: Uuid,
}

fn redirect_url_schema() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
        .max_length(Some(crate::config::MAX_REDIRECT_URL_LEN))
        .description(Some(
            "An absolute `http(s)` URL (at most 2,048 characters) whose origin is in \
             `SHOP_PAYMENT__REDIRECT_ORIGINS` (422 otherwise); `session_id=<cs_…>` is added to its query.",
        ))
        .build()
}

fn payment_method_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    strings::string(
        strings::NOT_BLANK,
        1,
        MAX_PAYMENT_METHOD_LEN,
        false,
        "A payment method id (`pm_card_visa`) or, with the simulated provider, a test card number: at most \
         255 characters, not only whitespace. One the provider does not know is a 422 \
         `payment_method_invalid`.",
    )
}

fn refund_reason_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    strings::string("", 0, MAX_REFUND_REASON_LEN, true, "At most 500 characters; blank means none.")
}

/// Longest payment method, in characters.
pub const MAX_PAYMENT_METHOD_LEN: usize = 255;
/// Longest refund reason, in characters.
pub const MAX_REFUND_REASON_LEN: usize = 500;

/// The 402 `card_declined` problem: a problem document that also carries the FAILED payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeclinedProblem {
    #[serde(flatten)]
    pub problem: Problem,
    pub payment_id: Uuid,
    /// The provider's reason, e.g. `card_declined`.
    pub failure_code: Option<String>,
    /// The payment, now FAILED.
    pub payment: Payment,
}

/// The 402 answer of a declined card.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 402,
    description = "`card_declined`: the payment is FAILED (the problem carries `paymentId`, `failureCode` and the `payment`)",
    content_type = "application/problem+json"
)]
pub struct CardDeclined(#[allow(dead_code)] DeclinedProblem);

/// Body of `POST /api/v1/payments/checkout-session`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCheckoutSessionRequest {
    /// The order to pay. Amount and currency come from the order, never from the client.
    pub order_id: Uuid,
    /// Where the customer goes after paying: an absolute `http(s)` URL whose origin is in
    /// `SHOP_PAYMENT__REDIRECT_ORIGINS`; `session_id=<cs_…>` is added to its query.
    #[schema(schema_with = redirect_url_schema, example = "http://localhost:3000/checkout/success")]
    pub success_url: String,
    /// Where the customer goes after cancelling (or, with the simulated provider, a decline):
    /// same rules; `session_id` (and `error`) are added to its query.
    #[schema(schema_with = redirect_url_schema, example = "http://localhost:3000/checkout/cancelled")]
    pub cancel_url: String,
}

/// Answer of `POST /api/v1/payments/checkout-session`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutSessionResponse {
    pub payment_id: Uuid,
    /// The provider's checkout session (`cs_…`).
    pub session_id: String,
    /// The hosted payment page to send the customer to: Stripe's page, or with the simulated
    /// provider this API's own `/api/v1/payments/hosted/{sessionId}` (a path on this API).
    pub url: String,
    /// When the session stops accepting payment.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub payment: Payment,
}

/// Body of `POST /api/v1/payments/{id}/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmRequest {
    #[schema(schema_with = payment_method_schema, example = "pm_card_visa")]
    pub payment_method: String,
}

/// Body of `POST /api/v1/payments/{id}/capture` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaptureRequest {
    /// Minor units to capture, 1 to the authorised amount (default: all of it; more is a 422);
    /// the rest is released.
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    pub amount_to_capture: Option<i64>,
}

/// Body of `POST /api/v1/payments/{id}/refund` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundRequest {
    /// Minor units to refund (default: everything captured and not yet refunded; more is a 422
    /// `refund_exceeds_captured`).
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    pub amount: Option<i64>,
    #[schema(schema_with = refund_reason_schema)]
    pub reason: Option<String>,
}

/// The form the hosted checkout page posts to `…/pay`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostedPayForm {
    /// One of the test cards the page offers.
    #[schema(value_type = HostedTestCard)]
    pub payment_method: String,
}

/// A test card the hosted page takes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum HostedTestCard {
    /// Authorised.
    #[serde(rename = "pm_card_visa")]
    Visa,
    /// Declined.
    #[serde(rename = "pm_card_chargeDeclined")]
    Declined,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_serialise_screaming() {
        for s in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(PaymentStatus::parse("authorized"), None);
    }

    #[test]
    fn terminal_statuses_have_no_way_out() {
        for to in PaymentStatus::ALL {
            for dead in [PaymentStatus::Failed, PaymentStatus::Cancelled, PaymentStatus::Refunded] {
                assert!(!to.allowed_from().contains(&dead), "{dead} → {to} must not be allowed");
            }
        }
        assert!(PaymentStatus::Captured.allowed_from() == [PaymentStatus::Authorized]);
    }
}
