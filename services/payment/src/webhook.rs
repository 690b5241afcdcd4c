//! Provider webhooks in Stripe's format: the `Stripe-Signature` header (`t=<unix time>,v1=<hex
//! HMAC-SHA256 of "<t>.<raw body>" with the endpoint's secret>`), a timestamp tolerance against
//! replays, and the event (`{id, type, data: {object}}`). Each event is processed once
//! (`webhook_events`); duplicates and out-of-order deliveries are harmless because every effect
//! goes through the conditional [`crate::store::Store::transition`].

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use kit::problem::ErrorCode;
use kit::ApiError;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

use crate::model::ChangeSource;
use crate::provider::{IntentStatus, PaymentError, ProviderError, SessionStatus};
use crate::service::IntentFacts;
use crate::store::{Change, Claim, Effect, Transitioned};
use crate::PaymentState;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// Namespace of the ids this service derives (UUIDv5) for refunds it learns from webhooks or
/// events, so a redelivery derives the same id.
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x5e0f_1a2b_7c3d_4e5f_8a9b_0c1d_2e3f_4a5b);

/// Why a signature was refused (all answer 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the `Stripe-Signature` header is missing")]
    Missing,
    #[error("the `Stripe-Signature` header is malformed")]
    Malformed,
    #[error("no signature matches the payload")]
    Mismatch,
    #[error("the signature's timestamp is outside the tolerance of {0} s")]
    Expired(u64),
}

impl From<SignatureError> for ApiError {
    fn from(e: SignatureError) -> Self {
        let code = match e {
            SignatureError::Missing => ErrorCode::WebhookSignatureMissing,
            SignatureError::Expired(_) => ErrorCode::WebhookSignatureExpired,
            SignatureError::Malformed | SignatureError::Mismatch => ErrorCode::WebhookSignatureInvalid,
        };
        ApiError::new(code).detail(e.to_string())
    }
}

fn mac(secret: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The `Stripe-Signature` value for `payload` signed at `timestamp` (what Stripe sends).
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let sig = hex::encode(mac(secret, timestamp, payload).finalize().into_bytes());
    format!("t={timestamp},v1={sig}")
}

/// Verifies a `Stripe-Signature` header: some `v1` must be the HMAC of `"{t}.{payload}"`
/// (compared in constant time) and `t` within `tolerance_secs` of `now`. Returns `t`.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    payload: &[u8],
    tolerance_secs: u64,
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else { continue };
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {} // v0 (test mode scheme) and future schemes are ignored, as Stripe's libraries do.
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let expected = mac(secret, timestamp, payload);
    if !signatures.iter().any(|s| expected.clone().verify_slice(s).is_ok()) {
        return Err(SignatureError::Mismatch);
    }
    if now.abs_diff(timestamp) > tolerance_secs {
        return Err(SignatureError::Expired(tolerance_secs));
    }
    Ok(timestamp)
}

/// A Stripe event, as far as this service reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: Value,
}

/// What processing a webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// It changed a payment.
    Applied,
    /// Processed before (same event id): nothing done.
    Duplicate,
    /// Valid but without effect: unknown type, unknown intent, stale or out-of-order update.
    Ignored,
}

impl Processed {
    pub fn as_str(self) -> &'static str {
        match self {
            Processed::Applied => "applied",
            Processed::Duplicate => "duplicate",
            Processed::Ignored => "ignored",
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// An expandable field: the id, or the expanded object's `id`.
fn id_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::String(id)) => Some(id.clone()),
        Some(o @ Value::Object(_)) => str_field(o, "id").map(str::to_string),
        _ => None,
    }
}

/// What a `payment_intent` object in an event says.
fn intent_facts(object: &Value) -> Option<IntentFacts> {
    let id = str_field(object, "id")?.to_string();
    let last_error = object.get("last_payment_error").filter(|e| e.is_object()).map(|e| PaymentError {
        code: str_field(e, "code").unwrap_or("payment_failed").to_string(),
        message: str_field(e, "message").unwrap_or("the payment failed").to_string(),
    });
    Some(IntentFacts {
        id,
        status: str_field(object, "status").and_then(IntentStatus::parse),
        charge_id: id_field(object, "latest_charge"),
        last_error,
    })
}

/// Verifies and processes one webhook delivery (the HTTP endpoint and the simulated provider's
/// deliveries both come through here).
pub async fn process(state: &PaymentState, headers: &HeaderMap, body: &[u8]) -> Result<Processed, ApiError> {
    let secret = state.webhook_secret().ok_or_else(|| {
        ApiError::unavailable("no webhook secret is configured: set SHOP_PAYMENT__WEBHOOK_SECRET")
    })?;
    let header = headers.get(SIGNATURE_HEADER).map(|v| v.to_str().unwrap_or_default());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    verify(secret, header, body, state.config.webhook_tolerance_secs, now)?;
    let event: WebhookEvent = serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed_json(format!("not a webhook event: {e}")))?;
    handle_event(state, &event).await
}

/// Applies a verified event.
pub async fn handle_event(state: &PaymentState, event: &WebhookEvent) -> Result<Processed, ApiError> {
    let store = &state.store;
    if store.webhook_seen(&event.id).await? {
        return Ok(Processed::Duplicate);
    }
    let object = &event.data.object;
    let ty = event.event_type.as_str();
    let effect = match ty {
        "payment_intent.amount_capturable_updated"
            if str_field(object, "status") == Some("requires_capture") =>
        {
            Some(Effect::Authorized { charge_id: id_field(object, "latest_charge") })
        }
        "payment_intent.succeeded" => Some(Effect::Captured {
            amount: object.get("amount_received").and_then(Value::as_i64).unwrap_or_default(),
            charge_id: id_field(object, "latest_charge"),
        }),
        "payment_intent.payment_failed" => {
            let err = object.get("last_payment_error").cloned().unwrap_or(Value::Null);
            Some(Effect::Failed {
                code: str_field(&err, "code").unwrap_or("payment_failed").to_string(),
                reason: str_field(&err, "message").unwrap_or("the payment failed").to_string(),
            })
        }
        "payment_intent.canceled" => Some(Effect::Cancelled),
        "payment_intent.requires_action" => Some(Effect::RequiresAction {
            next_action: object.get("next_action").cloned().filter(|v| !v.is_null()),
        }),
        "charge.refunded" => return charge_refunded(state, event).await,
        "checkout.session.completed" => return checkout_session(state, event, SessionStatus::Complete).await,
        "checkout.session.expired" => return checkout_session(state, event, SessionStatus::Expired).await,
        _ => None,
    };
    let payment = match (effect.is_some(), str_field(object, "id")) {
        (true, Some(intent)) => store.by_provider_id(intent).await?,
        _ => None,
    };
    let (Some(effect), Some(payment)) = (effect, payment) else {
        store.record_webhook(&event.id, ty).await?;
        tracing::debug!(event_id = %event.id, event_type = ty, "webhook ignored");
        return Ok(Processed::Ignored);
    };
    let change = Change::new(payment.id, effect, ChangeSource::Webhook)
        .reason(format!("webhook {ty}"))
        .claim(Some(Claim::Webhook { event_id: event.id.clone(), event_type: ty.to_string() }));
    Ok(match store.transition(change).await? {
        Transitioned::Done(p) => {
            tracing::info!(payment_id = %p.id, status = %p.status, event_type = ty, "payment changed by webhook");
            Processed::Applied
        }
        Transitioned::AlreadyProcessed => Processed::Duplicate,
        Transitioned::Unchanged(_) | Transitioned::NotFound => Processed::Ignored,
    })
}

/// `checkout.session.completed` / `checkout.session.expired`: the payment of the session
/// moves as [`crate::service::session_effect`] says — AUTHORIZED when the session's intent is
/// authorised (its id and charge are recorded), FAILED when an expired session's intent was
/// declined, CANCELLED when it expired unpaid — through the one transition function, so a
/// `payment_intent.amount_capturable_updated` for the same intent, before or after, makes no
/// second transition. The intent is read from the provider unless the event expands it; a
/// provider outage answers 503 and the provider retries the delivery.
async fn checkout_session(
    state: &PaymentState,
    event: &WebhookEvent,
    status: SessionStatus,
) -> Result<Processed, ApiError> {
    let store = &state.store;
    let session = &event.data.object;
    let ty = event.event_type.as_str();
    let payment = match str_field(session, "id") {
        Some(id) => store.by_checkout_session(id).await?,
        None => None,
    };
    let Some(payment) = payment else {
        store.record_webhook(&event.id, ty).await?;
        tracing::debug!(event_id = %event.id, event_type = ty, "webhook for an unknown checkout session ignored");
        return Ok(Processed::Ignored);
    };
    let intent = match session.get("payment_intent") {
        Some(Value::String(id)) => match state.provider.retrieve(id).await {
            Ok(i) => Some(IntentFacts::from(i)),
            Err(e @ ProviderError::Unavailable(_)) => {
                return Err(ApiError::unavailable(format!("the session's intent cannot be read: {e}")))
            }
            Err(e) => {
                tracing::warn!(event_id = %event.id, intent = %id, error = %e, "the session's intent is unknown to the provider");
                None
            }
        },
        Some(o @ Value::Object(_)) => intent_facts(o),
        _ => None,
    };
    let claim = Some(Claim::Webhook { event_id: event.id.clone(), event_type: ty.to_string() });
    let applied = state
        .apply_checkout(&payment, status, intent, ChangeSource::Webhook, format!("webhook {ty}"), claim)
        .await?;
    Ok(match applied {
        Some(Transitioned::Done(p)) => {
            tracing::info!(payment_id = %p.id, status = %p.status, event_type = ty, "payment changed by webhook");
            Processed::Applied
        }
        Some(Transitioned::AlreadyProcessed) => Processed::Duplicate,
        Some(Transitioned::Unchanged(_) | Transitioned::NotFound) => Processed::Ignored,
        None => {
            store.record_webhook(&event.id, ty).await?;
            Processed::Ignored
        }
    })
}

/// `charge.refunded`: records the refunds this service does not know yet (made in the
/// provider's dashboard, or whose API call's answer was lost).
async fn charge_refunded(state: &PaymentState, event: &WebhookEvent) -> Result<Processed, ApiError> {
    let store = &state.store;
    let charge = &event.data.object;
    let payment = match str_field(charge, "payment_intent") {
        Some(intent) => store.by_provider_id(intent).await?,
        None => None,
    };
    let Some(payment) = payment else {
        store.record_webhook(&event.id, &event.event_type).await?;
        return Ok(Processed::Ignored);
    };
    let mut applied = false;
    let listed = charge.pointer("/refunds/data").and_then(Value::as_array);
    let mut changes = Vec::new();
    match listed {
        Some(refunds) => {
            for r in refunds {
                let (Some(provider_id), Some(amount)) =
                    (str_field(r, "id"), r.get("amount").and_then(Value::as_i64))
                else {
                    continue;
                };
                if str_field(r, "status").is_some_and(|s| s != "succeeded") {
                    continue;
                }
                let metadata = r.get("metadata").cloned().unwrap_or(Value::Null);
                let refund_id =
                    str_field(&metadata, "refund_id").and_then(|s| s.parse::<Uuid>().ok()).unwrap_or_else(
                        || Uuid::new_v5(&ID_NAMESPACE, format!("provider-refund:{provider_id}").as_bytes()),
                    );
                let reason = str_field(&metadata, "reason")
                    .map(str::to_string)
                    .or(Some("refunded at the provider".into()));
                changes.push(Effect::Refunded {
                    refund_id,
                    amount,
                    reason,
                    provider_refund_id: Some(provider_id.to_string()),
                });
            }
        }
        None => {
            // API versions that do not list the refunds: the difference to what is known.
            let total = charge.get("amount_refunded").and_then(Value::as_i64).unwrap_or_default();
            let pending = store.pending_refund_total(payment.id).await?;
            let missing = total - payment.refunded_amount - pending;
            if missing > 0 {
                changes.push(Effect::Refunded {
                    refund_id: Uuid::new_v5(&ID_NAMESPACE, format!("webhook:{}", event.id).as_bytes()),
                    amount: missing,
                    reason: Some("refunded at the provider".into()),
                    provider_refund_id: None,
                });
            }
        }
    }
    for effect in changes {
        let change = Change::new(payment.id, effect, ChangeSource::Webhook)
            .reason(format!("webhook {}", event.event_type));
        if let Transitioned::Done(_) = store.transition(change).await? {
            applied = true;
        }
    }
    store.record_webhook(&event.id, &event.event_type).await?;
    Ok(if applied { Processed::Applied } else { Processed::Ignored })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn verifies_stripe_signatures() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{}}}"#;
        let now = 1_700_000_000;
        // Computed independently: HMAC-SHA256 over "<t>.<body>" with the secret as key.
        let mut m = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        m.update(format!("{now}.").as_bytes());
        m.update(body);
        let expected = hex::encode(m.finalize().into_bytes());
        let header = format!("t={now},v1={expected},v0=ignored");
        assert_eq!(sign(SECRET, now, body), format!("t={now},v1={expected}"));
        assert_eq!(verify(SECRET, Some(&header), body, 300, now + 299), Ok(now));
        // Several v1 signatures (secret rotation): one match is enough.
        let rotated = format!("t={now},v1={},v1={expected}", "00".repeat(32));
        assert_eq!(verify(SECRET, Some(&rotated), body, 300, now), Ok(now));
        assert_eq!(verify(SECRET, Some(&header), body, 300, now + 301), Err(SignatureError::Expired(300)));
        assert_eq!(verify("whsec_other", Some(&header), body, 300, now), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, Some(&header), b"{}", 300, now), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, None, body, 300, now), Err(SignatureError::Missing));
        assert_eq!(verify(SECRET, Some("v1=abc"), body, 300, now), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, Some(&format!("t={now}")), body, 300, now), Err(SignatureError::Malformed));
        assert_eq!(
            verify(SECRET, Some(&format!("t=x,v1={expected}")), body, 300, now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(ApiError::from(SignatureError::Mismatch).status, axum::http::StatusCode::BAD_REQUEST);
    }
}
