//! The checkout's business metrics (described in `contract::metrics`): what an order's status
//! change means for the checkout, decided by [`checkout_end`], recorded by [`transitioned`].

use contract::metrics::{
    CHECKOUTS_COMPLETED, CHECKOUTS_FAILED, CHECKOUTS_STARTED, ORDER_TIME_TO_STATUS, ORDER_TRANSITIONS,
};
use kit::contract;
use time::OffsetDateTime;

use crate::model::OrderStatus;

/// How a status change ends a checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutEnd {
    /// The order reached PAID.
    Completed,
    /// The order ended unpaid, for this reason (the `reason` label).
    Failed(&'static str),
}

/// What the change `from` → `to` made by `actor` (an [`crate::store::Actor`] name:
/// `user:…`, `admin:…`, `system:…`, `event:…`) means for the checkout, if anything:
/// - PAID: completed;
/// - FAILED from PENDING: the stock could not be reserved (`out_of_stock`); FAILED later: the
///   payment failed (`payment_failed`);
/// - CANCELLED before payment: by the system when the reservation ran out (`expired`), by a
///   person otherwise (`cancelled`);
/// - anything else (shipping, delivery, cancelling a paid order) is not a checkout outcome.
pub fn checkout_end(from: OrderStatus, to: OrderStatus, actor: &str) -> Option<CheckoutEnd> {
    let unpaid = matches!(from, OrderStatus::Pending | OrderStatus::AwaitingPayment);
    match to {
        OrderStatus::Paid => Some(CheckoutEnd::Completed),
        OrderStatus::Failed if from == OrderStatus::Pending => Some(CheckoutEnd::Failed("out_of_stock")),
        OrderStatus::Failed if unpaid => Some(CheckoutEnd::Failed("payment_failed")),
        OrderStatus::Cancelled if unpaid && actor.starts_with("system:") => {
            Some(CheckoutEnd::Failed("expired"))
        }
        OrderStatus::Cancelled if unpaid => Some(CheckoutEnd::Failed("cancelled")),
        _ => None,
    }
}

/// A new order: a checkout started.
pub fn placed() {
    metrics::counter!(CHECKOUTS_STARTED.name).increment(1);
}

/// A committed status change of an order created at `created_at`.
pub fn transitioned(from: OrderStatus, to: OrderStatus, actor: &str, created_at: OffsetDateTime) {
    metrics::counter!(ORDER_TRANSITIONS.name, "to" => to.as_str()).increment(1);
    let age = (OffsetDateTime::now_utc() - created_at).as_seconds_f64().max(0.0);
    metrics::histogram!(ORDER_TIME_TO_STATUS.name, "status" => to.as_str()).record(age);
    match checkout_end(from, to, actor) {
        Some(CheckoutEnd::Completed) => metrics::counter!(CHECKOUTS_COMPLETED.name).increment(1),
        Some(CheckoutEnd::Failed(reason)) => {
            metrics::counter!(CHECKOUTS_FAILED.name, "reason" => reason).increment(1)
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn outcomes_of_status_changes() {
        assert_eq!(
            checkout_end(AwaitingPayment, Paid, "event:payment.authorized"),
            Some(CheckoutEnd::Completed)
        );
        assert_eq!(checkout_end(Pending, Failed, "user:x"), Some(CheckoutEnd::Failed("out_of_stock")));
        assert_eq!(
            checkout_end(AwaitingPayment, Failed, "event:payment.failed"),
            Some(CheckoutEnd::Failed("payment_failed"))
        );
        assert_eq!(
            checkout_end(AwaitingPayment, Cancelled, "system:saga"),
            Some(CheckoutEnd::Failed("expired"))
        );
        assert_eq!(
            checkout_end(AwaitingPayment, Cancelled, "user:x"),
            Some(CheckoutEnd::Failed("cancelled"))
        );
        assert_eq!(checkout_end(Pending, Cancelled, "admin:x"), Some(CheckoutEnd::Failed("cancelled")));
        assert_eq!(checkout_end(Pending, AwaitingPayment, "user:x"), None);
        assert_eq!(checkout_end(Paid, Cancelled, "admin:x"), None, "a refund, not a failed checkout");
        assert_eq!(checkout_end(Paid, Shipped, "admin:x"), None);
    }
}
