//! Event consumers (group [`CONSUMER_GROUP`], topic `orders`):
//!
//! - `order.confirmed` → capture the order's AUTHORIZED payment (the order service emits it
//!   after the stock was committed);
//! - `order.cancelled` → a captured payment is refunded (what is left of it), an uncaptured one
//!   is voided (→ CANCELLED).
//!
//! The event is claimed in the inbox in the transaction that records the effect; a
//! redelivery is skipped before any provider call, and provider calls carry idempotency keys,
//! so a retry after a crash between the provider call and the record repeats nothing.
//! Business refusals are acknowledged (logged); database or provider outages return an error
//! so the bus retries.

use std::sync::Arc;

use kit::events::contract::types;
use kit::events::payloads::{OrderCancelled, OrderConfirmed};
use kit::events::{handler_fn, Envelope, Handler, Subscription};
use uuid::Uuid;

use crate::model::{ChangeSource, PaymentStatus};
use crate::store::Claim;
use crate::webhook::ID_NAMESPACE;
use crate::PaymentState;

/// The consumer group of the payment service (inbox key).
pub const CONSUMER_GROUP: &str = kit::contract::ServiceName::Payment.as_str();

/// Handles one event of the `orders` topic (other types are ignored).
pub async fn handle(state: &PaymentState, ev: Envelope) -> anyhow::Result<()> {
    let order_id = match ev.ty.as_str() {
        types::ORDER_CONFIRMED => ev.decode::<OrderConfirmed>()?.order_id,
        types::ORDER_CANCELLED => ev.decode::<OrderCancelled>()?.order_id,
        _ => return Ok(()),
    };
    let store = &state.store;
    if store.inbox_seen(CONSUMER_GROUP, ev.id).await? {
        return Ok(());
    }
    let claim = Some(Claim::Inbox { group: CONSUMER_GROUP.to_string(), event_id: ev.id });
    let Some(payment) = store.live_for_order(order_id).await? else {
        tracing::info!(%order_id, event_type = %ev.ty, "no live payment for the order; nothing to do");
        store.claim_only(CONSUMER_GROUP, ev.id).await?;
        return Ok(());
    };
    let result = if ev.ty == types::ORDER_CONFIRMED {
        if payment.status == PaymentStatus::Authorized || payment.status.is_captured() {
            state.capture(payment, None, ChangeSource::Event, claim, Some(&ev)).await
        } else {
            Err(kit::ApiError::conflict(
                kit::problem::ErrorCode::PaymentNotCapturable,
                format!("order confirmed but its payment {} is {}", payment.id, payment.status),
            ))
        }
    } else {
        let cancelled: OrderCancelled = ev.decode()?;
        let reason = format!("order cancelled: {}", cancelled.reason);
        match payment.status {
            PaymentStatus::Captured | PaymentStatus::PartiallyRefunded => {
                if !cancelled.refund {
                    tracing::warn!(%order_id, "order cancelled without refund flag, but its payment was captured: refunding");
                }
                let refund_id = Uuid::new_v5(&ID_NAMESPACE, format!("event:{}:refund", ev.id).as_bytes());
                state
                    .refund(
                        &payment,
                        refund_id,
                        None,
                        Some("order cancelled"),
                        ChangeSource::Event,
                        claim,
                        Some(&ev),
                    )
                    .await
            }
            s if s.is_pending() || s == PaymentStatus::Authorized => {
                state.cancel(payment, &reason, ChangeSource::Event, claim, Some(&ev)).await
            }
            _ => {
                store.claim_only(CONSUMER_GROUP, ev.id).await?;
                Ok(payment)
            }
        }
    };
    match result {
        Ok(p) => {
            tracing::info!(%order_id, payment_id = %p.id, status = %p.status, event_type = %ev.ty, "order event handled");
            Ok(())
        }
        Err(e) if e.status.is_server_error() => Err(anyhow::anyhow!("{}: {e}", ev.ty)),
        Err(e) => {
            tracing::warn!(event_id = %ev.id, event_type = %ev.ty, error = %e, "payment event refused; acknowledged");
            store.claim_only(CONSUMER_GROUP, ev.id).await?;
            Ok(())
        }
    }
}

/// The payment service's subscription: group `payment` on the `orders` topic. Register it on
/// the bus before `start`.
pub fn handlers(state: PaymentState) -> Vec<Subscription> {
    let handler: Arc<dyn Handler> = handler_fn(move |ev| {
        let state = state.clone();
        async move { handle(&state, ev).await }
    });
    vec![Subscription {
        group: CONSUMER_GROUP.to_string(),
        topics: kit::contract::ServiceName::Payment.subscriptions().iter().map(|t| t.to_string()).collect(),
        handler,
    }]
}
