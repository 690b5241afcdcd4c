//! The order's status machine as pure functions: [`decide`] says whether an order in one status
//! may move to another (and what the move stamps), [`events`] says what a move publishes. Neither
//! reads nor writes anything; [`crate::store::Store::transition`] reads the status in its
//! transaction, asks [`decide`], applies the [`Move`] (conditional update, history row,
//! shipment) and enqueues the [`events`] of the order before and after, in that same
//! transaction.

use kit::db::Timestamp;
use kit::events::payloads::{
    LineItem, OrderCancelled, OrderConfirmed, OrderDelivered, OrderPlaced, OrderShipped, OrderStatusChanged,
    ShipmentDelivered, ShipmentShipped,
};
use uuid::Uuid;

use crate::model::{Order, OrderStatus, ShipmentStatus};

/// A status change the order's lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// What [`decide`] concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The order is in the target status already: nothing to write.
    Already,
    /// The status machine (or the caller's narrower list) forbids it.
    Refused(IllegalTransition),
    /// The order moves: apply this.
    Move(Move),
}

/// A status change to apply in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub from: OrderStatus,
    pub to: OrderStatus,
    /// The time stamps the status reached sets (`paid_at` on PAID, …); the others stay.
    pub paid_at: Option<Timestamp>,
    pub shipped_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    /// Where the order's shipment goes with it.
    pub shipment: ShipmentStatus,
}

/// Whether an order in `from` may become `to` at `now`: the status machine
/// ([`OrderStatus::can_become`]), narrowed by `allowed_from` when the caller gives one (e.g. a
/// customer's cancel).
pub fn decide(
    from: OrderStatus,
    to: OrderStatus,
    allowed_from: Option<&[OrderStatus]>,
    now: Timestamp,
) -> Decision {
    if from == to {
        return Decision::Already;
    }
    if !from.can_become(to) || allowed_from.is_some_and(|a| !a.contains(&from)) {
        return Decision::Refused(IllegalTransition { from, to });
    }
    let stamp = |s: OrderStatus| (to == s).then_some(now);
    Decision::Move(Move {
        from,
        to,
        paid_at: stamp(OrderStatus::Paid),
        shipped_at: stamp(OrderStatus::Shipped),
        delivered_at: stamp(OrderStatus::Delivered),
        cancelled_at: stamp(OrderStatus::Cancelled),
        shipment: shipment_status_for(to),
    })
}

/// The shipment status that goes with an order status.
pub fn shipment_status_for(to: OrderStatus) -> ShipmentStatus {
    match to {
        OrderStatus::Pending | OrderStatus::AwaitingPayment => ShipmentStatus::PendingPayment,
        OrderStatus::Paid | OrderStatus::Processing => ShipmentStatus::Ready,
        OrderStatus::Shipped => ShipmentStatus::Shipped,
        OrderStatus::Delivered => ShipmentStatus::Delivered,
        OrderStatus::Cancelled | OrderStatus::Failed => ShipmentStatus::Cancelled,
    }
}

/// An event a transition publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderEvent {
    StatusChanged(OrderStatusChanged),
    Placed(OrderPlaced),
    Confirmed(OrderConfirmed),
    Cancelled(OrderCancelled),
    ShipmentShipped(ShipmentShipped),
    Shipped(OrderShipped),
    ShipmentDelivered(ShipmentDelivered),
    Delivered(OrderDelivered),
}

/// The order's items as event line items.
pub fn line_items(order: &Order) -> Vec<LineItem> {
    order
        .items
        .iter()
        .map(|i| LineItem {
            product_id: i.product_id,
            quantity: u32::try_from(i.quantity).unwrap_or(u32::MAX),
            unit_price: Some(i.unit_price.clone()),
        })
        .collect()
}

/// The events of one transition from `before` to `after`: `order.status_changed` always, plus
/// the one of the status reached. `now` and `new_shipment_id` stand in for a delivery time and
/// a shipment the order does not have (the store records both before it asks).
pub fn events(
    before: &Order,
    after: &Order,
    actor: &str,
    reason: Option<&str>,
    customer_email: Option<&str>,
    now: Timestamp,
    new_shipment_id: Uuid,
) -> Vec<OrderEvent> {
    let (order_id, user_id) = (after.id, after.user_id);
    let mut out = vec![OrderEvent::StatusChanged(OrderStatusChanged {
        order_id,
        user_id,
        from: Some(before.status.as_str().to_string()),
        to: after.status.as_str().to_string(),
        actor: actor.to_string(),
        reason: reason.map(str::to_string),
    })];
    match after.status {
        // The saga's public start: stock is held and the order can be paid.
        OrderStatus::AwaitingPayment => out.push(OrderEvent::Placed(OrderPlaced {
            order_id,
            user_id,
            items: line_items(after),
            total: after.total.clone(),
            customer_email: customer_email.map(str::to_string),
            customer_name: Some(after.shipping_address.name.clone()),
        })),
        OrderStatus::Paid => {
            out.push(OrderEvent::Confirmed(OrderConfirmed { order_id, user_id, total: after.total.clone() }))
        }
        OrderStatus::Cancelled => out.push(OrderEvent::Cancelled(OrderCancelled {
            order_id,
            user_id,
            reason: reason.unwrap_or("cancelled").to_string(),
            items: line_items(after),
            refund: before.status.is_paid(),
        })),
        OrderStatus::Shipped => {
            let shipment_id = after.shipment.as_ref().map(|s| s.id).unwrap_or(new_shipment_id);
            let carrier = after.carrier.clone().unwrap_or_default();
            let tracking_number = after.tracking_number.clone().unwrap_or_default();
            out.push(OrderEvent::ShipmentShipped(ShipmentShipped {
                order_id,
                shipment_id,
                carrier: carrier.clone(),
                tracking_number: tracking_number.clone(),
            }));
            out.push(OrderEvent::Shipped(OrderShipped {
                order_id,
                user_id,
                shipment_id,
                carrier: Some(carrier),
                tracking_number: Some(tracking_number),
            }))
        }
        OrderStatus::Delivered => {
            let delivered_at = after.delivered_at.unwrap_or(now.0);
            if let Some(shipment) = &after.shipment {
                out.push(OrderEvent::ShipmentDelivered(ShipmentDelivered {
                    order_id,
                    shipment_id: shipment.id,
                    delivered_at,
                }));
            }
            out.push(OrderEvent::Delivered(OrderDelivered { order_id, user_id, delivered_at }))
        }
        OrderStatus::Pending | OrderStatus::Processing | OrderStatus::Failed => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Address, OrderItem, Shipment};
    use kit::money::Money;
    use proptest::prelude::*;
    use OrderStatus::*;

    fn now() -> Timestamp {
        Timestamp(time::macros::datetime!(2026-01-02 03:04:05 UTC))
    }

    fn to(from: OrderStatus, to: OrderStatus) -> Option<OrderStatus> {
        match decide(from, to, None, now()) {
            Decision::Move(m) => Some(m.to),
            Decision::Already | Decision::Refused(_) => None,
        }
    }

    /// Every status against every target, written out by hand (✓ = moves).
    #[test]
    fn the_whole_table() {
        let targets = OrderStatus::ALL;
        let (y, n) = (true, false);
        #[rustfmt::skip]
        let table: [(OrderStatus, [bool; 8]); 8] = [
            //                 PENDING AWAITING PAID PROCESSING SHIPPED DELIVERED CANCELLED FAILED
            (Pending,          [n, y, n, n, n, n, y, y]),
            (AwaitingPayment,  [n, n, y, n, n, n, y, y]),
            (Paid,             [n, n, n, y, y, n, y, n]),
            (Processing,       [n, n, n, n, y, n, y, n]),
            (Shipped,          [n, n, n, n, n, y, y, n]),
            (Delivered,        [n, n, n, n, n, n, n, n]),
            (Cancelled,        [n, n, n, n, n, n, n, n]),
            (Failed,           [n, n, n, n, n, n, n, n]),
        ];
        assert_eq!(table.len(), OrderStatus::ALL.len());
        for (from, row) in table {
            for (target, moves) in targets.into_iter().zip(row) {
                let d = decide(from, target, None, now());
                match d {
                    Decision::Already => assert_eq!(from, target),
                    Decision::Move(m) => {
                        assert!(moves && m.from == from && m.to == target, "{from} -> {target}")
                    }
                    Decision::Refused(e) => {
                        assert!(!moves && from != target, "{from} -> {target}");
                        assert_eq!(e, IllegalTransition { from, to: target });
                    }
                }
            }
        }
    }

    #[test]
    fn a_narrower_list_refuses_what_the_machine_allows() {
        let customer = [Pending, AwaitingPayment, Paid, Processing];
        assert_eq!(to(Shipped, Cancelled), Some(Cancelled));
        assert_eq!(
            decide(Shipped, Cancelled, Some(&customer), now()),
            Decision::Refused(IllegalTransition { from: Shipped, to: Cancelled })
        );
        assert!(matches!(decide(Paid, Cancelled, Some(&customer), now()), Decision::Move(_)));
    }

    #[test]
    fn a_move_stamps_the_time_of_the_status_reached() {
        let Decision::Move(m) = decide(AwaitingPayment, Paid, None, now()) else { panic!() };
        assert_eq!(
            (m.paid_at, m.shipped_at, m.delivered_at, m.cancelled_at),
            (Some(now()), None, None, None)
        );
        assert_eq!(m.shipment, ShipmentStatus::Ready);
        let Decision::Move(m) = decide(Paid, Shipped, None, now()) else { panic!() };
        assert_eq!(
            (m.paid_at, m.shipped_at, m.delivered_at, m.cancelled_at),
            (None, Some(now()), None, None)
        );
        let Decision::Move(m) = decide(Shipped, Delivered, None, now()) else { panic!() };
        assert_eq!(
            (m.paid_at, m.shipped_at, m.delivered_at, m.cancelled_at),
            (None, None, Some(now()), None)
        );
        let Decision::Move(m) = decide(Pending, Cancelled, None, now()) else { panic!() };
        assert_eq!(
            (m.paid_at, m.shipped_at, m.delivered_at, m.cancelled_at),
            (None, None, None, Some(now()))
        );
        assert_eq!(m.shipment, ShipmentStatus::Cancelled);
    }

    fn order(status: OrderStatus) -> Order {
        let t = now().0;
        Order {
            id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(2),
            status,
            items: vec![OrderItem {
                product_id: Uuid::from_u128(3),
                sku: "SKU-1".into(),
                name: "Lamp".into(),
                quantity: 2,
                unit_price: Money::new(1500, "USD"),
                line_total: Money::new(3000, "USD"),
            }],
            subtotal: Money::new(3000, "USD"),
            shipping_cost: Money::new(500, "USD"),
            tax: Money::new(0, "USD"),
            total: Money::new(3500, "USD"),
            shipping_method: "standard".into(),
            shipping_address: Address {
                name: "Ada Lovelace".into(),
                line1: "12 Analytical Row".into(),
                line2: None,
                city: "London".into(),
                state: None,
                postal_code: "N1 1AA".into(),
                country: "GB".into(),
                phone: None,
            },
            customer_email: None,
            notes: None,
            payment_id: None,
            payment_status: None,
            charge_id: None,
            refunded_amount: Money::new(0, "USD"),
            reservation_expires_at: None,
            failure_reason: None,
            carrier: Some("UPS".into()),
            tracking_number: Some("1Z999".into()),
            paid_at: None,
            shipped_at: None,
            delivered_at: None,
            cancelled_at: None,
            created_at: t,
            updated_at: t,
            shipment: Some(Shipment {
                id: Uuid::from_u128(4),
                status: shipment_status_for(status),
                method: "standard".into(),
                carrier: None,
                tracking_number: None,
                shipped_at: None,
                delivered_at: None,
            }),
            history: None,
        }
    }

    #[test]
    fn a_cancellation_after_payment_asks_for_a_refund() {
        for (from, refund) in
            [(Pending, false), (AwaitingPayment, false), (Paid, true), (Processing, true), (Shipped, true)]
        {
            let evs = events(&order(from), &order(Cancelled), "admin:x", None, None, now(), Uuid::nil());
            let Some(OrderEvent::Cancelled(c)) = evs.get(1) else { panic!("{evs:?}") };
            assert_eq!((c.refund, c.reason.as_str(), c.items.len()), (refund, "cancelled", 1), "from {from}");
        }
    }

    #[test]
    fn shipping_names_the_shipment_carrier_and_tracking_number() {
        let evs = events(&order(Paid), &order(Shipped), "admin:x", None, None, now(), Uuid::nil());
        let [OrderEvent::StatusChanged(_), OrderEvent::ShipmentShipped(s), OrderEvent::Shipped(o)] =
            evs.as_slice()
        else {
            panic!("{evs:?}")
        };
        assert_eq!(
            (s.shipment_id, s.carrier.as_str(), s.tracking_number.as_str()),
            (Uuid::from_u128(4), "UPS", "1Z999")
        );
        assert_eq!(o.shipment_id, s.shipment_id);
        let mut unshipped = order(Shipped);
        unshipped.shipment = None;
        let evs = events(&order(Paid), &unshipped, "admin:x", None, None, now(), Uuid::from_u128(77));
        let Some(OrderEvent::Shipped(o)) = evs.get(2) else { panic!("{evs:?}") };
        assert_eq!(o.shipment_id, Uuid::from_u128(77));
    }

    #[test]
    fn placing_carries_the_items_total_email_and_name() {
        let evs = events(
            &order(Pending),
            &order(AwaitingPayment),
            "system:saga",
            None,
            Some("ada@example.com"),
            now(),
            Uuid::nil(),
        );
        let Some(OrderEvent::Placed(p)) = evs.get(1) else { panic!("{evs:?}") };
        assert_eq!(p.total, Money::new(3500, "USD"));
        assert_eq!(p.customer_email.as_deref(), Some("ada@example.com"));
        assert_eq!(p.customer_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(p.items[0].quantity, 2);
    }

    // ----- properties ---------------------------------------------------------------------

    fn any_status() -> impl Strategy<Value = OrderStatus> {
        prop::sample::select(OrderStatus::ALL.to_vec())
    }

    fn any_allowed_from() -> impl Strategy<Value = Option<Vec<OrderStatus>>> {
        prop::option::of(prop::sample::subsequence(OrderStatus::ALL.to_vec(), 0..=8))
    }

    proptest! {
        /// DELIVERED, CANCELLED and FAILED are final: every other target is refused.
        #[test]
        fn no_transition_out_of_a_terminal_status(
            from in prop::sample::select(vec![Delivered, Cancelled, Failed]),
            target in any_status(),
            allowed in any_allowed_from(),
        ) {
            let d = decide(from, target, allowed.as_deref(), now());
            if from == target {
                prop_assert_eq!(d, Decision::Already);
            } else {
                prop_assert_eq!(d, Decision::Refused(IllegalTransition { from, to: target }));
            }
        }

        /// A move happens exactly when the machine and the caller's list both allow it, and
        /// then sets the stamp and shipment of the status reached.
        #[test]
        fn a_move_is_what_the_machine_and_the_caller_allow(
            from in any_status(),
            target in any_status(),
            allowed in any_allowed_from(),
        ) {
            let d = decide(from, target, allowed.as_deref(), now());
            let legal = from != target && from.can_become(target)
                && allowed.as_ref().is_none_or(|a| a.contains(&from));
            prop_assert_eq!(matches!(d, Decision::Move(_)), legal);
            if let Decision::Move(m) = d {
                prop_assert_eq!((m.from, m.to, m.shipment), (from, target, shipment_status_for(target)));
                let stamps = [(Paid, m.paid_at), (Shipped, m.shipped_at), (Delivered, m.delivered_at), (Cancelled, m.cancelled_at)];
                for (status, stamp) in stamps {
                    prop_assert_eq!(stamp, (status == target).then_some(now()));
                }
            }
        }

        /// Asking for the same move again, once it is made, changes nothing.
        #[test]
        fn replaying_the_same_input_is_a_no_op(
            from in any_status(),
            target in any_status(),
            allowed in any_allowed_from(),
        ) {
            if let Decision::Move(m) = decide(from, target, allowed.as_deref(), now()) {
                prop_assert_eq!(decide(m.to, target, allowed.as_deref(), now()), Decision::Already);
            }
        }

        /// A walk through random requests only ever takes steps of the machine, and once it is
        /// final it stays where it is.
        #[test]
        fn a_walk_only_takes_legal_steps(targets in prop::collection::vec(any_status(), 1..30)) {
            let mut status = Pending;
            for target in targets {
                let before = status;
                if let Decision::Move(m) = decide(status, target, None, now()) {
                    prop_assert!(before.can_become(m.to));
                    status = m.to;
                }
                if before.is_terminal() {
                    prop_assert_eq!(status, before);
                }
            }
        }

        /// The events of a move: `order.status_changed` from and to the statuses, then the one of
        /// the status reached, all about this order.
        #[test]
        fn the_events_match_the_status_reached(from in any_status(), target in any_status(), reason in prop::option::of("[a-z ]{1,20}")) {
            let Decision::Move(m) = decide(from, target, None, now()) else { return Ok(()) };
            let evs = events(&order(m.from), &order(m.to), "admin:x", reason.as_deref(), None, now(), Uuid::nil());
            let Some(OrderEvent::StatusChanged(c)) = evs.first() else { return Err(TestCaseError::fail("no status_changed")) };
            prop_assert_eq!((c.from.as_deref(), c.to.as_str()), (Some(from.as_str()), target.as_str()));
            prop_assert_eq!(c.reason.as_deref(), reason.as_deref());
            let rest: Vec<&str> = evs[1..].iter().map(|e| match e {
                OrderEvent::StatusChanged(_) => "status_changed",
                OrderEvent::Placed(_) => "placed",
                OrderEvent::Confirmed(_) => "confirmed",
                OrderEvent::Cancelled(_) => "cancelled",
                OrderEvent::ShipmentShipped(_) => "shipment_shipped",
                OrderEvent::Shipped(_) => "shipped",
                OrderEvent::ShipmentDelivered(_) => "shipment_delivered",
                OrderEvent::Delivered(_) => "delivered",
            }).collect();
            let expected: &[&str] = match target {
                AwaitingPayment => &["placed"],
                Paid => &["confirmed"],
                Cancelled => &["cancelled"],
                Shipped => &["shipment_shipped", "shipped"],
                Delivered => &["shipment_delivered", "delivered"],
                Pending | Processing | Failed => &[],
            };
            prop_assert_eq!(rest.as_slice(), expected);
            if let Some(OrderEvent::Cancelled(c)) = evs.get(1) {
                prop_assert_eq!(c.refund, from.is_paid());
            }
        }
    }
}
