//! The saga's reactions to the payment service (group [`CONSUMER_GROUP`], topic `payments`):
//!
//! - `payment.authorized` → commit the reservation, then `PAID` (`order.confirmed`, on which
//!   the payment service captures). Reservation gone → `CANCELLED` (the payment is voided).
//!   Order already cancelled or failed → `order.cancelled` again, so the payment is voided.
//! - `payment.captured` → payment status `CAPTURED`.
//! - `payment.failed` → `FAILED`, stock released.
//! - `payment.refunded` → refunded amount and payment status (once per event, inbox).
//!
//! Every reaction goes through the status machine, so a duplicate or late event changes
//! nothing. Only infrastructure failures return an error (the bus retries).

use std::sync::Arc;

use kit::events::contract::types;
use kit::events::payloads::{PaymentAuthorized, PaymentCaptured, PaymentFailed, PaymentRefunded};
use kit::events::{handler_fn, Envelope, Handler, Subscription};

use crate::model::OrderStatus;
use crate::saga::Saga;
use crate::store::{Actor, Patch, StoreError, CONSUMER_GROUP};

async fn on_authorized(saga: &Saga, ev: &Envelope, p: PaymentAuthorized) -> anyhow::Result<()> {
    let actor = Actor::event(ev);
    let Some(order) = saga.store.get(p.order_id).await? else {
        tracing::warn!(order_id = %p.order_id, "payment for an unknown order; acknowledged");
        return Ok(());
    };
    match order.status {
        OrderStatus::AwaitingPayment => {}
        OrderStatus::Cancelled | OrderStatus::Failed => {
            tracing::warn!(order_id = %order.id, status = %order.status, "payment authorised for a closed order: asking to void it");
            saga.store.republish_cancel(&order, &actor).await?;
            return Ok(());
        }
        // Already paid (a duplicate or the capture's twin): nothing to do.
        _ => return Ok(()),
    }
    if p.amount != order.total {
        let reason = format!(
            "payment amount {} {} does not match the order total {} {}",
            p.amount.amount, p.amount.currency, order.total.amount, order.total.currency
        );
        tracing::error!(order_id = %order.id, %reason);
        cancel(saga, order.id, &actor, &reason).await?;
        return Ok(());
    }
    if !saga.commit_stock(order.id).await? {
        cancel(saga, order.id, &actor, "the stock reservation expired before the payment arrived").await?;
        return Ok(());
    }
    let patch = Patch {
        payment_id: Some(p.payment_id),
        payment_status: Some("AUTHORIZED".into()),
        charge_id: p.charge_id.clone(),
        ..Default::default()
    };
    match saga
        .store
        .transition(order.id, OrderStatus::Paid, None, &actor, Some("payment authorized"), patch)
        .await
    {
        Ok(_) | Err(StoreError::Refused(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn cancel(saga: &Saga, id: uuid::Uuid, actor: &Actor, reason: &str) -> anyhow::Result<()> {
    let patch = Patch { failure_reason: Some(reason.into()), ..Default::default() };
    match saga.store.transition(id, OrderStatus::Cancelled, None, actor, Some(reason), patch).await {
        Ok(_) | Err(StoreError::Refused(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Handles one event of the `payments` topic (other types are ignored).
pub async fn handle(saga: &Saga, ev: Envelope) -> anyhow::Result<()> {
    match ev.ty.as_str() {
        types::PAYMENT_AUTHORIZED => {
            let p: PaymentAuthorized = ev.decode()?;
            on_authorized(saga, &ev, p).await
        }
        types::PAYMENT_CAPTURED => {
            let p: PaymentCaptured = ev.decode()?;
            let Some(order) = saga.store.get(p.order_id).await? else { return Ok(()) };
            if order.status == OrderStatus::AwaitingPayment {
                // Captured without a separate authorisation event: the same step.
                let auth = PaymentAuthorized {
                    order_id: p.order_id,
                    payment_id: p.payment_id,
                    amount: p.amount,
                    charge_id: p.charge_id.clone(),
                };
                on_authorized(saga, &ev, auth).await?;
            }
            saga.store.set_payment(p.order_id, p.payment_id, "CAPTURED", p.charge_id.as_deref()).await?;
            Ok(())
        }
        types::PAYMENT_FAILED => {
            let p: PaymentFailed = ev.decode()?;
            let reason = format!("payment failed: {}", p.reason);
            let patch = Patch {
                payment_id: Some(p.payment_id),
                payment_status: Some("FAILED".into()),
                failure_reason: Some(reason.clone()),
                ..Default::default()
            };
            let actor = Actor::event(&ev);
            match saga
                .store
                .transition(
                    p.order_id,
                    OrderStatus::Failed,
                    Some(&[OrderStatus::AwaitingPayment]),
                    &actor,
                    Some(&reason),
                    patch,
                )
                .await
            {
                Ok(_) => {
                    saga.release_stock(p.order_id, &reason).await;
                    Ok(())
                }
                Err(StoreError::Refused(_) | StoreError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        types::PAYMENT_REFUNDED => {
            let p: PaymentRefunded = ev.decode()?;
            saga.store.record_refund(&ev, p.order_id, p.payment_id, p.amount.amount).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The order service's subscription: group `order` on the `payments` topic.
pub fn handlers(saga: Saga) -> Vec<Subscription> {
    let handler: Arc<dyn Handler> = handler_fn(move |ev| {
        let saga = saga.clone();
        async move { handle(&saga, ev).await }
    });
    vec![Subscription {
        group: CONSUMER_GROUP.to_string(),
        topics: kit::contract::ServiceName::Order.subscriptions().iter().map(|t| t.to_string()).collect(),
        handler,
    }]
}
