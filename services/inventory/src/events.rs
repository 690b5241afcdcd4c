//! Event consumers: `order.placed` → reserve, `payment.authorized` / `payment.captured` →
//! commit, `order.cancelled` → release (or return committed units), `payment.failed` → release. Each claims the event in the inbox
//! (group [`CONSUMER_GROUP`]) in the transaction of its effect, so a redelivery has no second
//! effect. Business refusals (no stock, unknown or already-closed reservation) are
//! acknowledged; only database failures return an error (the bus retries, then dead-letters).

use std::sync::Arc;

use kit::events::contract::types;
use kit::events::payloads::{OrderCancelled, OrderPlaced, PaymentAuthorized, PaymentCaptured, PaymentFailed};
use kit::events::{handler_fn, Envelope, Handler, Subscription};

use crate::model::ReservationLine;
use crate::store::{Origin, StoreError, CONSUMER_GROUP};
use crate::InventoryState;

/// Handles one event of the `orders` or `payments` topic (other types are ignored).
pub async fn handle(state: &InventoryState, ev: Envelope) -> anyhow::Result<()> {
    let store = &state.store;
    let origin = Origin::event(&ev);
    let result = match ev.ty.as_str() {
        types::ORDER_PLACED => {
            let p: OrderPlaced = ev.decode()?;
            let items: Vec<ReservationLine> = p
                .items
                .iter()
                .map(|l| ReservationLine { product_id: l.product_id, quantity: i64::from(l.quantity) })
                .collect();
            store
                .reserve(p.order_id, &items, &origin)
                .await
                .map(|o| tracing::info!(order_id = %p.order_id, outcome = ?o, "order.placed handled"))
        }
        types::PAYMENT_AUTHORIZED => {
            let p: PaymentAuthorized = ev.decode()?;
            store.commit(p.order_id, &origin).await.map(|_| ())
        }
        types::PAYMENT_CAPTURED => {
            let p: PaymentCaptured = ev.decode()?;
            store.commit(p.order_id, &origin).await.map(|_| ())
        }
        types::ORDER_CANCELLED => {
            let p: OrderCancelled = ev.decode()?;
            store
                .release_or_restock(p.order_id, &format!("order cancelled: {}", p.reason), &origin)
                .await
                .map(|_| ())
        }
        types::PAYMENT_FAILED => {
            let p: PaymentFailed = ev.decode()?;
            store.release(p.order_id, &format!("payment failed: {}", p.reason), &origin).await.map(|_| ())
        }
        _ => return Ok(()),
    };
    match result {
        Ok(()) => Ok(()),
        // Not retryable: the event can never succeed. Acknowledge and leave a trace.
        Err(e @ (StoreError::NotFound(_) | StoreError::Conflict { .. } | StoreError::Invalid(_))) => {
            tracing::warn!(event_id = %ev.id, event_type = %ev.ty, error = %e, "inventory event refused; acknowledged");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The inventory's subscriptions: group `inventory` on the `orders` and `payments` topics.
/// Register them on the bus (`bus.subscribe(&s.group, &topics, s.handler)`) before `start`.
pub fn handlers(state: InventoryState) -> Vec<Subscription> {
    let handler: Arc<dyn Handler> = handler_fn(move |ev| {
        let state = state.clone();
        async move { handle(&state, ev).await }
    });
    vec![Subscription {
        group: CONSUMER_GROUP.to_string(),
        topics: kit::contract::ServiceName::Inventory.subscriptions().iter().map(|t| t.to_string()).collect(),
        handler,
    }]
}
