//! The simulated provider: Stripe's payment-intent model, embedded, with its state in the
//! payment database (tables `simulated_*`), so a restart keeps every intent.
//!
//! - Intents with manual capture: confirm → `requires_capture` (authorised), capture (at most
//!   the authorised amount), cancel (before capture), refunds (never more than captured).
//! - Test payment methods mirroring Stripe's ([`card_behaviour`]): `pm_card_visa` /
//!   `4242424242424242` succeed, `pm_card_chargeDeclined` / `4000000000000002` are declined
//!   (`card_declined`), `pm_card_authenticationRequired` / `4000002500003155` need 3-D Secure.
//! - Idempotency per key: a repeated key with the same operation replays the stored answer
//!   (also a decline); a key reused for something else is refused, as Stripe does.
//! - Hosted checkout sessions (`simulated_checkout_sessions`): created `open` with a page served
//!   by this service (`/api/v1/payments/hosted/{id}`, see [`crate::hosted`]); paying on it
//!   creates the session's intent and confirms it (manual capture) → `complete`; a decline or a
//!   cancellation → `expired` (the simulator allows one attempt per session); sessions expire
//!   after 24 hours ([`SimulatedProvider::expire_due_sessions`]).
//! - Every state change queues a Stripe-format event (`simulated_webhooks`, written in the
//!   change's transaction); [`crate::spawn_simulated_webhooks`] signs and delivers them to the
//!   service's own webhook processing, so the webhook path runs in the embedded shop too.

use std::sync::Arc;
use std::time::Duration;

use kit::db::{Db, Timestamp};
use kit::money::Money;
use kit::with_db;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::*;
use crate::model::ProviderKind;
use crate::store::{begin_write_sql, for_update};

/// The Stripe API version the simulated events claim (the one `async-stripe` 0.41 speaks).
pub const API_VERSION: &str = "2023-10-16";

/// Where this service serves a simulated session's hosted page (followed by the session id).
pub const HOSTED_PATH: &str = "/api/v1/payments/hosted/";

/// How long a simulated checkout session can be paid (Stripe's default: 24 hours).
pub const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// What a test payment method does when an intent is confirmed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    Succeed,
    /// Declined: (decline code, message). The failure code is always `card_declined`.
    Decline(&'static str, &'static str),
    RequireAction,
}

/// The test payment methods (Stripe's ids and card numbers). Spaces in card numbers are ignored.
pub fn card_behaviour(payment_method: &str) -> Option<CardBehaviour> {
    let pm: String = payment_method.chars().filter(|c| !c.is_whitespace()).collect();
    Some(match pm.as_str() {
        "pm_card_visa" | "4242424242424242" | "pm_card_mastercard" | "5555555555554444" => {
            CardBehaviour::Succeed
        }
        "pm_card_chargeDeclined" | "pm_card_visa_chargeDeclined" | "4000000000000002" => {
            CardBehaviour::Decline("generic_decline", "Your card was declined.")
        }
        "pm_card_chargeDeclinedInsufficientFunds" | "4000000000009995" => {
            CardBehaviour::Decline("insufficient_funds", "Your card has insufficient funds.")
        }
        "pm_card_authenticationRequired" | "4000002500003155" | "4000002760003184" => {
            CardBehaviour::RequireAction
        }
        _ => return None,
    })
}

fn random_id(prefix: &str) -> String {
    random_token(prefix, 24)
}

fn random_token(prefix: &str, len: usize) -> String {
    let tail: String = rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect();
    format!("{prefix}{tail}")
}

/// The simulated provider. Cheap to clone.
#[derive(Clone)]
pub struct SimulatedProvider {
    db: Db,
    webhook_delay: Duration,
    wake: Arc<Notify>,
    /// Set once the simulator's tables exist ([`SimulatedProvider::ensure_schema`]).
    schema: Arc<tokio::sync::OnceCell<()>>,
}

/// The simulator's own tables: not part of the payment service's migrations (production
/// schemas never have them), created idempotently before the simulator's first use.
const SCHEMA_POSTGRES: &str = include_str!("simulated_schema/postgres.sql");
const SCHEMA_SQLITE: &str = include_str!("simulated_schema/sqlite.sql");

impl std::fmt::Debug for SimulatedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedProvider")
            .field("webhook_delay", &self.webhook_delay)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct IntentRow {
    id: String,
    order_id: String,
    amount: i64,
    currency: String,
    status: String,
    client_secret: String,
    payment_method: Option<String>,
    amount_capturable: i64,
    amount_received: i64,
    amount_refunded: i64,
    last_error_code: Option<String>,
    last_error_message: Option<String>,
    next_action: Option<String>,
    created_at: Timestamp,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct RefundRow {
    id: String,
    amount: i64,
    metadata: String,
    created_at: Timestamp,
}

const INTENT_COLS: &str = "id, order_id, amount, currency, status, client_secret, payment_method, \
     amount_capturable, amount_received, amount_refunded, last_error_code, last_error_message, next_action, created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
struct SessionRow {
    id: String,
    order_id: String,
    amount: i64,
    currency: String,
    status: String,
    payment_status: String,
    success_url: String,
    cancel_url: String,
    url: String,
    payment_intent: Option<String>,
    expires_at: Timestamp,
    created_at: Timestamp,
}

const SESSION_COLS: &str =
    "id, order_id, amount, currency, status, payment_status, success_url, cancel_url, url, \
     payment_intent, expires_at, created_at";

/// A simulated checkout session, for its hosted page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedSession {
    pub id: String,
    pub order_id: String,
    pub amount: Money,
    pub status: SessionStatus,
    pub expires_at: time::OffsetDateTime,
    pub success_url: String,
    pub cancel_url: String,
    pub payment_intent: Option<String>,
}

impl SimulatedSession {
    /// Open and not past its expiry.
    pub fn is_payable(&self, now: time::OffsetDateTime) -> bool {
        self.status == SessionStatus::Open && now < self.expires_at
    }
}
/// One provider operation.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Create {
        amount: i64,
        currency: String,
        order_id: uuid::Uuid,
    },
    Confirm {
        intent: String,
        payment_method: String,
    },
    Capture {
        intent: String,
        amount: Option<i64>,
    },
    Cancel {
        intent: String,
    },
    Refund {
        intent: String,
        amount: i64,
        refund_id: uuid::Uuid,
        reason: Option<String>,
    },
    CreateSession {
        amount: i64,
        currency: String,
        order_id: uuid::Uuid,
        success_url: String,
        cancel_url: String,
    },
    ExpireSession {
        session: String,
    },
    /// The customer pays on the hosted page: the session's intent is created and confirmed.
    PaySession {
        session: String,
        payment_method: String,
    },
}

impl Op {
    fn intent(&self) -> Option<&str> {
        match self {
            Op::Confirm { intent, .. }
            | Op::Capture { intent, .. }
            | Op::Cancel { intent }
            | Op::Refund { intent, .. } => Some(intent),
            _ => None,
        }
    }

    fn session(&self) -> Option<&str> {
        match self {
            Op::ExpireSession { session } | Op::PaySession { session, .. } => Some(session),
            _ => None,
        }
    }

    fn is_session_op(&self) -> bool {
        matches!(self, Op::CreateSession { .. } | Op::ExpireSession { .. } | Op::PaySession { .. })
    }
}

/// The answer of an operation, stored per idempotency key and replayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Intent(Intent),
    Refund(ProviderRefund),
    Session(ProviderSession),
    Error(StoredError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredError {
    Declined { code: String, message: String },
    Refused { message: String },
}

impl From<StoredError> for ProviderError {
    fn from(e: StoredError) -> Self {
        match e {
            StoredError::Declined { code, message } => ProviderError::Declined { code, message },
            StoredError::Refused { message } => ProviderError::Refused(message),
        }
    }
}

/// What an operation changes: the intent and the session after it, a new refund, the events
/// it emits.
struct Outcome {
    answer: Answer,
    intent: Option<IntentRow>,
    new_intent: bool,
    session: Option<SessionRow>,
    new_session: bool,
    refund: Option<RefundRow>,
    events: Vec<&'static str>,
}

impl Outcome {
    fn refused(message: impl Into<String>) -> Outcome {
        Outcome {
            answer: Answer::Error(StoredError::Refused { message: message.into() }),
            intent: None,
            new_intent: false,
            session: None,
            new_session: false,
            refund: None,
            events: vec![],
        }
    }
}

/// A charge exists once a card was authorised or declined on the intent (Stripe's
/// `latest_charge`); its id is derived from the intent's.
fn has_charge(row: &IntentRow) -> bool {
    matches!(row.status.as_str(), "requires_capture" | "succeeded")
        || row.last_error_code.is_some()
        || (row.status == "canceled" && row.payment_method.is_some())
}

fn intent_view(row: &IntentRow) -> Intent {
    Intent {
        id: row.id.clone(),
        status: IntentStatus::parse(&row.status).unwrap_or(IntentStatus::RequiresPaymentMethod),
        amount: row.amount,
        amount_capturable: row.amount_capturable,
        amount_received: row.amount_received,
        currency: row.currency.clone(),
        client_secret: Some(row.client_secret.clone()),
        next_action: row.next_action.as_deref().and_then(|s| serde_json::from_str(s).ok()),
        // Stripe's `last_payment_error.code` of a decline is `card_declined` (the stored code is
        // the `decline_code`).
        last_error: match (&row.last_error_code, &row.last_error_message) {
            (Some(_), Some(message)) => {
                Some(PaymentError { code: "card_declined".into(), message: message.clone() })
            }
            _ => None,
        },
        charge_id: has_charge(row).then(|| charge_id(&row.id)),
    }
}

/// The intent as a Stripe `payment_intent` object (webhook payloads).
fn intent_json(row: &IntentRow) -> Value {
    let last_error = row.last_error_code.as_ref().map(|code| {
        json!({"type": "card_error", "code": "card_declined", "decline_code": code,
               "message": row.last_error_message})
    });
    json!({
        "id": row.id,
        "object": "payment_intent",
        "amount": row.amount,
        "amount_capturable": row.amount_capturable,
        "amount_received": row.amount_received,
        "capture_method": "manual",
        "client_secret": row.client_secret,
        "confirmation_method": "automatic",
        "created": row.created_at.0.unix_timestamp(),
        "currency": row.currency.to_ascii_lowercase(),
        "latest_charge": has_charge(row).then(|| charge_id(&row.id)),
        "last_payment_error": last_error,
        "livemode": false,
        "metadata": {"order_id": row.order_id},
        "next_action": row.next_action.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
        "payment_method": row.payment_method,
        "payment_method_types": ["card"],
        "status": row.status,
    })
}

fn charge_id(intent_id: &str) -> String {
    format!("ch_{}", intent_id.trim_start_matches("pi_"))
}

fn refund_json(r: &RefundRow, intent: &IntentRow) -> Value {
    json!({
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "charge": charge_id(&intent.id),
        "created": r.created_at.0.unix_timestamp(),
        "currency": intent.currency.to_ascii_lowercase(),
        "metadata": serde_json::from_str::<Value>(&r.metadata).unwrap_or_else(|_| json!({})),
        "payment_intent": intent.id,
        "status": "succeeded",
    })
}

/// The charge of an intent as a Stripe `charge` object with its refunds (`charge.refunded`).
fn charge_json(intent: &IntentRow, refunds: &[RefundRow]) -> Value {
    json!({
        "id": charge_id(&intent.id),
        "object": "charge",
        "amount": intent.amount,
        "amount_captured": intent.amount_received,
        "amount_refunded": intent.amount_refunded,
        "captured": intent.amount_received > 0,
        "currency": intent.currency.to_ascii_lowercase(),
        "livemode": false,
        "metadata": {"order_id": intent.order_id},
        "paid": true,
        "payment_intent": intent.id,
        "refunded": intent.amount_refunded >= intent.amount_received,
        "refunds": {
            "object": "list",
            "data": refunds.iter().rev().map(|r| refund_json(r, intent)).collect::<Vec<_>>(),
            "has_more": false,
            "url": format!("/v1/charges/{}/refunds", charge_id(&intent.id)),
        },
        "status": "succeeded",
    })
}

fn session_view(row: &SessionRow) -> ProviderSession {
    let status = SessionStatus::parse(&row.status).unwrap_or(SessionStatus::Expired);
    ProviderSession {
        id: row.id.clone(),
        status,
        url: (status == SessionStatus::Open).then(|| row.url.clone()),
        expires_at: row.expires_at.0.unix_timestamp(),
        payment_intent: row.payment_intent.clone(),
        success_url: Some(row.success_url.clone()),
        cancel_url: Some(row.cancel_url.clone()),
    }
}

/// The session as a Stripe `checkout.session` object (webhook payloads); it has the fields
/// `async-stripe` requires, so it also parses as one.
fn session_json(row: &SessionRow) -> Value {
    let open = row.status == SessionStatus::Open.as_str();
    json!({
        "id": row.id,
        "object": "checkout.session",
        "amount_subtotal": row.amount,
        "amount_total": row.amount,
        "automatic_tax": {"enabled": false, "liability": null, "status": null},
        "cancel_url": row.cancel_url,
        "client_reference_id": row.order_id,
        "created": row.created_at.0.unix_timestamp(),
        "currency": row.currency.to_ascii_lowercase(),
        "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null,
                        "terms_of_service_acceptance": null},
        "expires_at": row.expires_at.0.unix_timestamp(),
        "livemode": false,
        "metadata": {"order_id": row.order_id},
        "mode": "payment",
        "payment_intent": row.payment_intent,
        "payment_method_types": ["card"],
        "payment_status": row.payment_status,
        "shipping_options": [],
        "status": row.status,
        "success_url": row.success_url,
        "url": if open { Value::String(row.url.clone()) } else { Value::Null },
    })
}

fn session_public(row: &SessionRow) -> SimulatedSession {
    SimulatedSession {
        id: row.id.clone(),
        order_id: row.order_id.clone(),
        amount: Money { amount: row.amount, currency: row.currency.clone() },
        status: SessionStatus::parse(&row.status).unwrap_or(SessionStatus::Expired),
        expires_at: row.expires_at.0,
        success_url: row.success_url.clone(),
        cancel_url: row.cancel_url.clone(),
        payment_intent: row.payment_intent.clone(),
    }
}

/// A new intent (manual capture) waiting for a payment method.
fn new_intent_row(amount: i64, currency: &str, order_id: &str, now: Timestamp) -> IntentRow {
    let id = random_id("pi_");
    IntentRow {
        client_secret: format!("{id}_secret_{}", random_id("")),
        id,
        order_id: order_id.to_string(),
        amount,
        currency: currency.to_string(),
        status: IntentStatus::RequiresPaymentMethod.as_str().into(),
        payment_method: None,
        amount_capturable: 0,
        amount_received: 0,
        amount_refunded: 0,
        last_error_code: None,
        last_error_message: None,
        next_action: None,
        created_at: now,
    }
}

/// A Stripe `event` around `object`.
pub fn event_json(event_type: &str, object: Value) -> Value {
    json!({
        "id": random_id("evt_"),
        "object": "event",
        "api_version": API_VERSION,
        "created": time::OffsetDateTime::now_utc().unix_timestamp(),
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": event_type,
    })
}

/// Applies `op` to the intent (`None` for a create). Pure: the caller persists the outcome.
fn apply(op: &Op, current: Option<IntentRow>) -> Outcome {
    let now = Timestamp::now();
    let Some(mut intent) = current else {
        return match op {
            Op::Create { amount, currency, order_id } => {
                if *amount <= 0 {
                    return Outcome::refused("amount must be a positive integer");
                }
                let row = new_intent_row(*amount, currency, &order_id.to_string(), now);
                Outcome {
                    answer: Answer::Intent(intent_view(&row)),
                    intent: Some(row),
                    new_intent: true,
                    session: None,
                    new_session: false,
                    refund: None,
                    events: vec!["payment_intent.created"],
                }
            }
            other => {
                Outcome::refused(format!("No such payment_intent: '{}'", other.intent().unwrap_or_default()))
            }
        };
    };
    let status = IntentStatus::parse(&intent.status).unwrap_or(IntentStatus::RequiresPaymentMethod);
    let unexpected = |what: &str| {
        Outcome::refused(format!(
            "You cannot {what} this PaymentIntent because it has a status of {}.",
            status.as_str()
        ))
    };
    let mut events = Vec::new();
    let mut refund = None;
    let answer = match op {
        Op::Create { .. } | Op::CreateSession { .. } | Op::ExpireSession { .. } | Op::PaySession { .. } => {
            return Outcome::refused("not an operation on an existing intent")
        }
        Op::Confirm { payment_method, .. } => {
            if !matches!(
                status,
                IntentStatus::RequiresPaymentMethod
                    | IntentStatus::RequiresConfirmation
                    | IntentStatus::RequiresAction
            ) {
                return unexpected("confirm");
            }
            let Some(behaviour) = card_behaviour(payment_method) else {
                return Outcome::refused(format!("No such PaymentMethod: '{payment_method}'"));
            };
            intent.next_action = None;
            intent.last_error_code = None;
            intent.last_error_message = None;
            match behaviour {
                CardBehaviour::Succeed => {
                    intent.status = IntentStatus::RequiresCapture.as_str().into();
                    intent.payment_method = Some(payment_method.clone());
                    intent.amount_capturable = intent.amount;
                    events.push("payment_intent.amount_capturable_updated");
                    Answer::Intent(intent_view(&intent))
                }
                CardBehaviour::Decline(decline_code, message) => {
                    intent.status = IntentStatus::RequiresPaymentMethod.as_str().into();
                    intent.payment_method = None;
                    intent.last_error_code = Some(decline_code.into());
                    intent.last_error_message = Some(message.into());
                    events.push("payment_intent.payment_failed");
                    Answer::Error(StoredError::Declined {
                        code: "card_declined".into(),
                        message: message.into(),
                    })
                }
                CardBehaviour::RequireAction => {
                    intent.status = IntentStatus::RequiresAction.as_str().into();
                    intent.payment_method = Some(payment_method.clone());
                    intent.next_action = Some(
                        json!({"type": "use_stripe_sdk",
                               "use_stripe_sdk": {"type": "three_d_secure_redirect", "source": intent.id}})
                        .to_string(),
                    );
                    events.push("payment_intent.requires_action");
                    Answer::Intent(intent_view(&intent))
                }
            }
        }
        Op::Capture { amount, .. } => {
            if status != IntentStatus::RequiresCapture {
                return unexpected("capture");
            }
            let amount = amount.unwrap_or(intent.amount_capturable);
            if amount <= 0 || amount > intent.amount_capturable {
                return Outcome::refused(format!(
                    "The amount to capture ({amount}) must be positive and at most the capturable amount ({}).",
                    intent.amount_capturable
                ));
            }
            intent.status = IntentStatus::Succeeded.as_str().into();
            intent.amount_received = amount;
            intent.amount_capturable = 0;
            events.push("payment_intent.succeeded");
            Answer::Intent(intent_view(&intent))
        }
        Op::Cancel { .. } => {
            if matches!(status, IntentStatus::Succeeded | IntentStatus::Canceled | IntentStatus::Processing) {
                return unexpected("cancel");
            }
            intent.status = IntentStatus::Canceled.as_str().into();
            intent.amount_capturable = 0;
            intent.next_action = None;
            events.push("payment_intent.canceled");
            Answer::Intent(intent_view(&intent))
        }
        Op::Refund { amount, refund_id, reason, .. } => {
            if status != IntentStatus::Succeeded {
                return Outcome::refused("This PaymentIntent has no captured charge to refund.");
            }
            let left = intent.amount_received - intent.amount_refunded;
            if *amount <= 0 || *amount > left {
                return Outcome::refused(format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
                ));
            }
            intent.amount_refunded += amount;
            let mut metadata = json!({"refund_id": refund_id.to_string()});
            if let Some(reason) = reason {
                metadata["reason"] = Value::String(reason.clone());
            }
            let row = RefundRow {
                id: random_id("re_"),
                amount: *amount,
                metadata: metadata.to_string(),
                created_at: now,
            };
            events.push("charge.refunded");
            let answer = Answer::Refund(ProviderRefund {
                id: row.id.clone(),
                amount: *amount,
                status: "succeeded".into(),
            });
            refund = Some(row);
            answer
        }
    };
    Outcome {
        answer,
        intent: Some(intent),
        new_intent: false,
        session: None,
        new_session: false,
        refund,
        events,
    }
}

/// Applies a checkout-session operation to the session (`None` for a create). Pure, like
/// [`apply`].
fn apply_session(op: &Op, current: Option<SessionRow>) -> Outcome {
    let now = Timestamp::now();
    let session_outcome = |answer: Answer, session: SessionRow, events: Vec<&'static str>| Outcome {
        answer,
        intent: None,
        new_intent: false,
        session: Some(session),
        new_session: false,
        refund: None,
        events,
    };
    match op {
        Op::CreateSession { amount, currency, order_id, success_url, cancel_url } => {
            if *amount <= 0 {
                return Outcome::refused("amount must be a positive integer");
            }
            // The id is the capability to pay on the hosted page: long and random, as Stripe's.
            let id = random_token("cs_test_", 48);
            let row = SessionRow {
                url: format!("{HOSTED_PATH}{id}"),
                id,
                order_id: order_id.to_string(),
                amount: *amount,
                currency: currency.clone(),
                status: SessionStatus::Open.as_str().into(),
                payment_status: "unpaid".into(),
                success_url: success_url.clone(),
                cancel_url: cancel_url.clone(),
                payment_intent: None,
                expires_at: now + SESSION_TTL,
                created_at: now,
            };
            Outcome { new_session: true, ..session_outcome(Answer::Session(session_view(&row)), row, vec![]) }
        }
        Op::ExpireSession { session } | Op::PaySession { session, .. } => {
            let Some(mut s) = current else {
                return Outcome::refused(format!("No such checkout.session: '{session}'"));
            };
            if s.status != SessionStatus::Open.as_str() {
                return Outcome::refused(format!(
                    "This Checkout Session is not open (its status is {}).",
                    s.status
                ));
            }
            let Op::PaySession { payment_method, .. } = op else {
                s.status = SessionStatus::Expired.as_str().into();
                return session_outcome(
                    Answer::Session(session_view(&s)),
                    s,
                    vec!["checkout.session.expired"],
                );
            };
            if now.0 >= s.expires_at.0 {
                s.status = SessionStatus::Expired.as_str().into();
                let refused = Answer::Error(StoredError::Refused {
                    message: "This Checkout Session has expired.".into(),
                });
                return session_outcome(refused, s, vec!["checkout.session.expired"]);
            }
            match card_behaviour(payment_method) {
                None => return Outcome::refused(format!("No such PaymentMethod: '{payment_method}'")),
                Some(CardBehaviour::RequireAction) => {
                    return Outcome::refused(
                        "3-D Secure cannot be completed on the simulated checkout page; use another card",
                    )
                }
                Some(_) => {}
            }
            // What Stripe's page does: the session's intent (manual capture), confirmed with
            // the card.
            let intent = new_intent_row(s.amount, &s.currency, &s.order_id, now);
            let confirm = Op::Confirm { intent: intent.id.clone(), payment_method: payment_method.clone() };
            let confirmed = apply(&confirm, Some(intent));
            let Some(intent) = confirmed.intent else {
                return confirmed; // refused before any change (cannot happen for a new intent)
            };
            let mut events = vec!["payment_intent.created"];
            events.extend(confirmed.events);
            s.payment_intent = Some(intent.id.clone());
            if intent.status == IntentStatus::RequiresCapture.as_str() {
                // Authorised, not captured: the session is complete, its payment still unpaid.
                s.status = SessionStatus::Complete.as_str().into();
                events.push("checkout.session.completed");
            } else {
                // The simulator allows one attempt per session: a decline ends it.
                s.status = SessionStatus::Expired.as_str().into();
                events.push("checkout.session.expired");
            }
            Outcome {
                answer: Answer::Session(session_view(&s)),
                intent: Some(intent),
                new_intent: true,
                session: Some(s),
                new_session: false,
                refund: None,
                events,
            }
        }
        _ => Outcome::refused("not a checkout session operation"),
    }
}

impl SimulatedProvider {
    /// A provider over the payment database. `wake` is notified after a change queued
    /// webhooks; `webhook_delay` is how long they wait before delivery.
    pub fn new(db: Db, webhook_delay: Duration, wake: Arc<Notify>) -> SimulatedProvider {
        SimulatedProvider { db, webhook_delay, wake, schema: Arc::new(tokio::sync::OnceCell::new()) }
    }

    /// Creates the simulator's tables in `db` when they are missing (idempotent).
    pub async fn ensure_schema(db: &Db) -> Result<(), sqlx::Error> {
        let sql = match db.backend() {
            kit::db::Backend::Postgres => SCHEMA_POSTGRES,
            kit::db::Backend::Sqlite => SCHEMA_SQLITE,
        };
        with_db!(db, pool => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()))
    }

    /// Every entry point waits for the schema once.
    async fn ready(&self) -> Result<(), sqlx::Error> {
        self.schema.get_or_try_init(|| Self::ensure_schema(&self.db)).await.map(|_| ())
    }

    fn unavailable(e: sqlx::Error) -> ProviderError {
        ProviderError::Unavailable(format!("simulated provider database: {e}"))
    }

    async fn run(&self, key: &str, op: Op) -> Result<Answer, ProviderError> {
        self.ready().await.map_err(Self::unavailable)?;
        let fingerprint = serde_json::to_string(&op).expect("operations serialise");
        let op_name = serde_json::to_value(&op).ok().and_then(|v| v["op"].as_str().map(str::to_string));
        let op_name = op_name.unwrap_or_default();
        // A concurrent first use of the same key (PostgreSQL) makes ours wait on the key's row
        // and then find it: the loop replays the stored answer.
        for _ in 0..3 {
            match self.run_once(key, &op_name, &fingerprint, &op).await {
                Err(e) if kit::db::is_unique_violation(&e) => continue,
                Err(e) => {
                    return Err(ProviderError::Unavailable(format!("simulated provider database: {e}")))
                }
                Ok(answer) => return Ok(answer),
            }
        }
        Err(ProviderError::Unavailable(format!("idempotency key `{key}` is in use by a concurrent request")))
    }

    async fn run_once(
        &self,
        key: &str,
        op_name: &str,
        fingerprint: &str,
        op: &Op,
    ) -> Result<Answer, sqlx::Error> {
        let begin = begin_write_sql(self.db.backend());
        let lock = for_update(self.db.backend());
        let now = Timestamp::now();
        let deliver_at = now + self.webhook_delay;
        let queued = with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let claimed = sqlx::query(
                "INSERT INTO simulated_requests (idempotency_key, operation, fingerprint, answer, created_at) \
                 VALUES ($1, $2, $3, '', $4) ON CONFLICT DO NOTHING")
                .bind(key).bind(op_name).bind(fingerprint).bind(now)
                .execute(&mut *tx).await?.rows_affected() == 1;
            if !claimed {
                let (stored_fp, answer): (String, String) = sqlx::query_as(
                    "SELECT fingerprint, answer FROM simulated_requests WHERE idempotency_key = $1")
                    .bind(key).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                if stored_fp != fingerprint {
                    return Ok(Answer::Error(StoredError::Refused { message: format!(
                        "Keys for idempotent requests can only be used with the same parameters they were first used with (key `{key}`)."
                    )}));
                }
                return serde_json::from_str(&answer).map_err(|e| sqlx::Error::Decode(Box::new(e)));
            }
            let current: Option<IntentRow> = match op.intent() {
                None => None,
                Some(id) => sqlx::query_as(&format!("SELECT {INTENT_COLS} FROM simulated_intents WHERE id = $1{lock}"))
                    .bind(id).fetch_optional(&mut *tx).await?,
            };
            let current_session: Option<SessionRow> = match op.session() {
                None => None,
                Some(id) => sqlx::query_as(&format!(
                    "SELECT {SESSION_COLS} FROM simulated_checkout_sessions WHERE id = $1{lock}"))
                    .bind(id).fetch_optional(&mut *tx).await?,
            };
            let refunds: Vec<RefundRow> = match &current {
                Some(i) => sqlx::query_as(
                    "SELECT id, amount, metadata, created_at FROM simulated_refunds WHERE intent_id = $1 ORDER BY created_at, id")
                    .bind(&i.id).fetch_all(&mut *tx).await?,
                None => vec![],
            };
            let mut out = if op.is_session_op() { apply_session(op, current_session) } else { apply(op, current) };
            if let Some(i) = &out.intent {
                if out.new_intent {
                    sqlx::query(&format!(
                        "INSERT INTO simulated_intents ({INTENT_COLS}, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)"))
                        .bind(&i.id).bind(&i.order_id).bind(i.amount).bind(&i.currency).bind(&i.status)
                        .bind(&i.client_secret).bind(&i.payment_method).bind(i.amount_capturable)
                        .bind(i.amount_received).bind(i.amount_refunded).bind(&i.last_error_code)
                        .bind(&i.last_error_message).bind(&i.next_action).bind(i.created_at)
                        .execute(&mut *tx).await?;
                } else {
                    sqlx::query(
                        "UPDATE simulated_intents SET status = $2, payment_method = $3, amount_capturable = $4, \
                         amount_received = $5, amount_refunded = $6, last_error_code = $7, last_error_message = $8, \
                         next_action = $9, updated_at = $10 WHERE id = $1")
                        .bind(&i.id).bind(&i.status).bind(&i.payment_method).bind(i.amount_capturable)
                        .bind(i.amount_received).bind(i.amount_refunded).bind(&i.last_error_code)
                        .bind(&i.last_error_message).bind(&i.next_action).bind(now)
                        .execute(&mut *tx).await?;
                }
            }
            if let Some(s) = &out.session {
                if out.new_session {
                    sqlx::query(&format!(
                        "INSERT INTO simulated_checkout_sessions ({SESSION_COLS}, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"))
                        .bind(&s.id).bind(&s.order_id).bind(s.amount).bind(&s.currency).bind(&s.status)
                        .bind(&s.payment_status).bind(&s.success_url).bind(&s.cancel_url).bind(&s.url)
                        .bind(&s.payment_intent).bind(s.expires_at).bind(s.created_at)
                        .execute(&mut *tx).await?;
                } else {
                    sqlx::query(
                        "UPDATE simulated_checkout_sessions SET status = $2, payment_status = $3, payment_intent = $4, \
                         updated_at = $5 WHERE id = $1")
                        .bind(&s.id).bind(&s.status).bind(&s.payment_status).bind(&s.payment_intent).bind(now)
                        .execute(&mut *tx).await?;
                }
            }
            let mut all_refunds = refunds;
            if let (Some(r), Some(i)) = (&out.refund, &out.intent) {
                sqlx::query("INSERT INTO simulated_refunds (id, intent_id, amount, metadata, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&r.id).bind(&i.id).bind(r.amount).bind(&r.metadata).bind(r.created_at)
                    .execute(&mut *tx).await?;
                all_refunds.push(r.clone());
            }
            let events = std::mem::take(&mut out.events);
            for ty in &events {
                let object = if ty.starts_with("checkout.session.") {
                    let Some(s) = &out.session else { continue };
                    session_json(s)
                } else {
                    let Some(i) = &out.intent else { continue };
                    if *ty == "charge.refunded" { charge_json(i, &all_refunds) } else { intent_json(i) }
                };
                let event = event_json(ty, object);
                sqlx::query(
                    "INSERT INTO simulated_webhooks (id, event_id, event_type, payload, attempts, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, $4, 0, $5, $6)")
                    .bind(uuid::Uuid::now_v7()).bind(event["id"].as_str()).bind(*ty).bind(event.to_string())
                    .bind(deliver_at).bind(now)
                    .execute(&mut *tx).await?;
            }
            let answer = serde_json::to_string(&out.answer).expect("answers serialise");
            sqlx::query("UPDATE simulated_requests SET answer = $2 WHERE idempotency_key = $1")
                .bind(key).bind(&answer).execute(&mut *tx).await?;
            tx.commit().await?;
            (out.answer, !events.is_empty())
        });
        let (answer, has_events) = queued;
        if has_events {
            self.wake.notify_one();
        }
        Ok(answer)
    }

    fn intent(answer: Answer) -> Result<Intent, ProviderError> {
        match answer {
            Answer::Intent(i) => Ok(i),
            Answer::Error(e) => Err(e.into()),
            Answer::Refund(_) | Answer::Session(_) => {
                Err(ProviderError::Refused("the idempotency key belongs to another kind of request".into()))
            }
        }
    }

    fn session(answer: Answer) -> Result<ProviderSession, ProviderError> {
        match answer {
            Answer::Session(s) => Ok(s),
            Answer::Error(e) => Err(e.into()),
            Answer::Intent(_) | Answer::Refund(_) => {
                Err(ProviderError::Refused("the idempotency key belongs to another kind of request".into()))
            }
        }
    }

    /// A checkout session, for its hosted page (`None` when there is no such session).
    pub async fn checkout_session(&self, id: &str) -> Result<Option<SimulatedSession>, ProviderError> {
        self.ready().await.map_err(Self::unavailable)?;
        let row: Option<SessionRow> = with_db!(&self.db, pool => sqlx::query_as(
            &format!("SELECT {SESSION_COLS} FROM simulated_checkout_sessions WHERE id = $1"))
            .bind(id).fetch_optional(pool).await)
        .map_err(|e| ProviderError::Unavailable(format!("simulated provider database: {e}")))?;
        Ok(row.as_ref().map(session_public))
    }

    /// The customer pays an open session on its hosted page with a test payment method: the
    /// session's intent is created and confirmed. A good card completes the session (intent
    /// `requires_capture`); a declined one expires it (the intent keeps the decline in
    /// `last_error`). Returns the session after it and its intent. The same `idempotency_key`
    /// and card replay the first answer; another card with that key is refused.
    pub async fn pay_checkout_session(
        &self,
        session_id: &str,
        payment_method: &str,
        idempotency_key: &str,
    ) -> Result<(ProviderSession, Option<Intent>), ProviderError> {
        let op = Op::PaySession { session: session_id.into(), payment_method: payment_method.into() };
        let session = Self::session(self.run(idempotency_key, op).await?)?;
        let intent = match &session.payment_intent {
            Some(id) => Some(self.retrieve(id).await?),
            None => None,
        };
        Ok((session, intent))
    }

    /// Expires the open sessions whose time is up (as Stripe does after `expires_at`), each with
    /// its `checkout.session.expired` webhook. Returns how many expired.
    pub async fn expire_due_sessions(&self) -> Result<usize, ProviderError> {
        self.ready().await.map_err(Self::unavailable)?;
        let now = Timestamp::now();
        let due: Vec<String> = with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM simulated_checkout_sessions WHERE status = 'open' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT 100")
            .bind(now).fetch_all(pool).await)
        .map_err(|e| ProviderError::Unavailable(format!("simulated provider database: {e}")))?;
        let mut expired = 0;
        for id in due {
            let key = format!("checkout:{id}:expired");
            match self.run(&key, Op::ExpireSession { session: id.clone() }).await? {
                Answer::Session(_) => expired += 1,
                // Paid or expired meanwhile: nothing to do.
                _ => tracing::debug!(session = %id, "checkout session no longer open"),
            }
        }
        Ok(expired)
    }

    /// Webhooks due for delivery: (row id, payload).
    pub async fn due_webhooks(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(uuid::Uuid, String)>, sqlx::Error> {
        self.ready().await?;
        with_db!(&self.db, pool => sqlx::query_as(
            "SELECT id, payload FROM simulated_webhooks WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2")
            .bind(now).bind(limit).fetch_all(pool).await)
    }

    /// The earliest time a pending webhook is due, if any.
    pub async fn next_webhook_due(&self) -> Result<Option<Timestamp>, sqlx::Error> {
        self.ready().await?;
        with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM simulated_webhooks WHERE delivered_at IS NULL")
            .fetch_one(pool).await)
    }

    /// Records a delivery: done, or failed with a retry at `retry_at`.
    pub async fn record_delivery(
        &self,
        id: uuid::Uuid,
        result: Result<(), String>,
        retry_at: Timestamp,
    ) -> Result<(), sqlx::Error> {
        let now = Timestamp::now();
        with_db!(&self.db, pool => match &result {
            Ok(()) => sqlx::query("UPDATE simulated_webhooks SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1")
                .bind(id).bind(now).execute(pool).await.map(|_| ()),
            Err(e) => sqlx::query("UPDATE simulated_webhooks SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE id = $1")
                .bind(id).bind(e).bind(retry_at).execute(pool).await.map(|_| ()),
        })
    }
}

#[async_trait::async_trait]
impl PaymentProvider for SimulatedProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Simulated
    }

    async fn create_intent(&self, new: &NewIntent, idempotency_key: &str) -> Result<Intent, ProviderError> {
        let Money { amount, currency } = new.amount.clone();
        Self::intent(
            self.run(idempotency_key, Op::Create { amount, currency, order_id: new.order_id }).await?,
        )
    }

    async fn confirm(
        &self,
        intent_id: &str,
        payment_method: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        let op = Op::Confirm { intent: intent_id.into(), payment_method: payment_method.into() };
        Self::intent(self.run(idempotency_key, op).await?)
    }

    async fn capture(
        &self,
        intent_id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        Self::intent(self.run(idempotency_key, Op::Capture { intent: intent_id.into(), amount }).await?)
    }

    async fn cancel(&self, intent_id: &str, idempotency_key: &str) -> Result<Intent, ProviderError> {
        Self::intent(self.run(idempotency_key, Op::Cancel { intent: intent_id.into() }).await?)
    }

    async fn refund(
        &self,
        refund: &NewRefund,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        let op = Op::Refund {
            intent: refund.intent_id.clone(),
            amount: refund.amount,
            refund_id: refund.refund_id,
            reason: refund.reason.clone(),
        };
        match self.run(idempotency_key, op).await? {
            Answer::Refund(r) => Ok(r),
            Answer::Error(e) => Err(e.into()),
            Answer::Intent(_) | Answer::Session(_) => {
                Err(ProviderError::Refused("the idempotency key belongs to another kind of request".into()))
            }
        }
    }

    async fn retrieve(&self, intent_id: &str) -> Result<Intent, ProviderError> {
        self.ready().await.map_err(Self::unavailable)?;
        let row: Option<IntentRow> = with_db!(&self.db, pool => sqlx::query_as(
            &format!("SELECT {INTENT_COLS} FROM simulated_intents WHERE id = $1"))
            .bind(intent_id).fetch_optional(pool).await)
        .map_err(|e| ProviderError::Unavailable(format!("simulated provider database: {e}")))?;
        row.map(|r| intent_view(&r))
            .ok_or_else(|| ProviderError::Refused(format!("No such payment_intent: '{intent_id}'")))
    }

    async fn create_checkout_session(
        &self,
        new: &NewCheckoutSession,
        idempotency_key: &str,
    ) -> Result<ProviderSession, ProviderError> {
        let op = Op::CreateSession {
            amount: new.amount.amount,
            currency: new.amount.currency.clone(),
            order_id: new.order_id,
            success_url: new.success_url.clone(),
            cancel_url: new.cancel_url.clone(),
        };
        Self::session(self.run(idempotency_key, op).await?)
    }

    async fn expire_checkout_session(
        &self,
        session_id: &str,
        idempotency_key: &str,
    ) -> Result<ProviderSession, ProviderError> {
        Self::session(self.run(idempotency_key, Op::ExpireSession { session: session_id.into() }).await?)
    }

    async fn retrieve_checkout_session(&self, session_id: &str) -> Result<ProviderSession, ProviderError> {
        self.ready().await.map_err(Self::unavailable)?;
        let row: Option<SessionRow> = with_db!(&self.db, pool => sqlx::query_as(
            &format!("SELECT {SESSION_COLS} FROM simulated_checkout_sessions WHERE id = $1"))
            .bind(session_id).fetch_optional(pool).await)
        .map_err(|e| ProviderError::Unavailable(format!("simulated provider database: {e}")))?;
        row.map(|r| session_view(&r))
            .ok_or_else(|| ProviderError::Refused(format!("No such checkout.session: '{session_id}'")))
    }
}
