//! A reservation's transitions as a pure function: [`decide`] takes the stored reservation (or
//! none), the requested [`Request`] and its reason, and returns the [`Decision`] — not found,
//! unchanged, refused (with the problem code), or the [`Change`] to apply: the status reached,
//! the stock movement and audit row of every line, the event and the metrics outcome. It reads
//! and writes nothing; [`crate::store::Store`]'s `commit`, `release`, `restock` and `expire`
//! load the reservation in their transaction, ask it, and apply the change (the conditional
//! reservation update, one stock update and audit row per line, the outbox event) in that same
//! transaction.

use kit::db::Timestamp;
use kit::events::payloads::{InventoryCommitted, InventoryReleased};
use kit::problem::ErrorCode;
use uuid::Uuid;

use crate::model::{Reservation, ReservationStatus, TransactionType};

/// What is asked of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Payment succeeded: the reserved units leave the stock.
    Commit,
    /// Cancel or payment failure: the reserved units go back to available.
    Release,
    /// The sweeper: release it if it expired at or before `cutoff`.
    Expire { cutoff: Timestamp },
    /// An order cancelled after its stock was committed: the committed units come back.
    Return,
}

/// How the units of a line move (one conditional stock update each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// reserved ↓, total ↓.
    Commit,
    /// reserved ↓, available ↑.
    Release,
    /// available ↑, total ↑.
    Return,
}

/// One line's movement and its audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineChange {
    pub product_id: Uuid,
    /// The units moved (positive).
    pub quantity: i64,
    /// The audit row's signed quantity (negative when units leave the stock).
    pub audit_quantity: i64,
}

/// The event a change publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum ReservationEvent {
    Committed(InventoryCommitted),
    Released(InventoryReleased),
}

/// A change to apply in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub reservation_id: Uuid,
    pub from: ReservationStatus,
    /// The status reached (a return leaves it COMMITTED and sets `returned_at`).
    pub to: ReservationStatus,
    /// Whether `returned_at` is set now.
    pub returned: bool,
    /// The reason recorded on the reservation and the audit rows (none for a commit).
    pub reason: Option<String>,
    pub movement: Movement,
    pub audit: TransactionType,
    pub lines: Vec<LineChange>,
    pub event: ReservationEvent,
    /// The `outcome` label of `shop_reservations_total`.
    pub outcome: &'static str,
}

/// What [`decide`] concludes.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The order has no reservation.
    NotFound,
    /// Done before, or nothing to do (an expiry of a reservation not due yet): the reservation
    /// is answered as it is.
    Unchanged,
    /// Not possible from where the reservation is (a 409 with this code).
    Refused { code: ErrorCode, detail: String },
    /// The reservation moves: apply this.
    Apply(Change),
}

/// Where `request` takes `reservation` (`None`: the order has none).
///
/// | from \ request | commit | release, expire | return |
/// |---|---|---|---|
/// | ACTIVE | COMMITTED | RELEASED, EXPIRED (expire: only when due) | refused `reservation_not_committed` |
/// | COMMITTED | unchanged | refused `reservation_committed` | returned once, then unchanged |
/// | RELEASED, EXPIRED | refused `reservation_released` | unchanged | refused `reservation_not_committed` |
pub fn decide(reservation: Option<&Reservation>, request: Request, reason: &str) -> Decision {
    use ReservationStatus::*;
    let Some(r) = reservation else { return Decision::NotFound };
    let order_id = r.order_id;
    let change = |to, returned, reason: Option<&str>, movement, audit, sign: i64, event, outcome| {
        Decision::Apply(Change {
            reservation_id: r.id,
            from: r.status,
            to,
            returned,
            reason: reason.map(str::to_string),
            movement,
            audit,
            lines: r
                .items
                .iter()
                .map(|l| LineChange {
                    product_id: l.product_id,
                    quantity: l.quantity,
                    audit_quantity: sign * l.quantity,
                })
                .collect(),
            event,
            outcome,
        })
    };
    let released = |reason: String| {
        ReservationEvent::Released(InventoryReleased { order_id, reservation_id: r.id, reason })
    };
    match (request, r.status) {
        (Request::Commit, Active) => change(
            Committed,
            false,
            None,
            Movement::Commit,
            TransactionType::Commit,
            -1,
            ReservationEvent::Committed(InventoryCommitted { order_id, reservation_id: r.id }),
            "committed",
        ),
        (Request::Commit, Committed) => Decision::Unchanged,
        (Request::Commit, Released | Expired) => Decision::Refused {
            code: ErrorCode::ReservationReleased,
            detail: format!("the reservation of order {order_id} was {}", r.status.as_str()),
        },
        (Request::Release, Active) => change(
            Released,
            false,
            Some(reason),
            Movement::Release,
            TransactionType::Release,
            1,
            released(reason.to_string()),
            "released",
        ),
        (Request::Expire { cutoff }, Active) if r.expires_at <= cutoff.0 => change(
            Expired,
            false,
            Some(reason),
            Movement::Release,
            TransactionType::Expiry,
            1,
            released(reason.to_string()),
            "expired",
        ),
        // Active but not yet expired (the sweeper raced a renewal): leave it.
        (Request::Expire { .. }, Active) => Decision::Unchanged,
        (Request::Release | Request::Expire { .. }, Released | Expired) => Decision::Unchanged,
        (Request::Release | Request::Expire { .. }, Committed) => Decision::Refused {
            code: ErrorCode::ReservationCommitted,
            detail: format!("the reservation of order {order_id} was committed; return the goods instead"),
        },
        (Request::Return, Committed) if r.returned_at.is_none() => change(
            Committed,
            true,
            Some(reason),
            Movement::Return,
            TransactionType::Return,
            1,
            released(format!("returned: {reason}")),
            "returned",
        ),
        (Request::Return, _) if r.returned_at.is_some() => Decision::Unchanged,
        (Request::Return, _) => Decision::Refused {
            code: ErrorCode::ReservationNotCommitted,
            detail: format!(
                "the reservation of order {order_id} is {}; release it instead",
                r.status.as_str()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ReservationLine;
    use proptest::prelude::*;
    use time::Duration;
    use ReservationStatus::*;

    fn now() -> Timestamp {
        Timestamp(time::macros::datetime!(2026-01-02 03:04:05 UTC))
    }

    fn reservation(status: ReservationStatus, returned: bool) -> Reservation {
        let t = now().0;
        Reservation {
            id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            status,
            items: vec![
                ReservationLine { product_id: Uuid::from_u128(10), quantity: 2 },
                ReservationLine { product_id: Uuid::from_u128(11), quantity: 5 },
            ],
            reason: None,
            expires_at: t - Duration::minutes(1),
            created_at: t - Duration::minutes(16),
            updated_at: t - Duration::minutes(16),
            returned_at: returned.then_some(t),
        }
    }

    fn requests() -> [Request; 4] {
        [Request::Commit, Request::Release, Request::Expire { cutoff: now() }, Request::Return]
    }

    /// A short name of a decision: the status reached, `=` unchanged, or the refusal's code.
    fn outcome(d: &Decision) -> String {
        match d {
            Decision::NotFound => "404".into(),
            Decision::Unchanged => "=".into(),
            Decision::Refused { code, .. } => code.as_str().into(),
            Decision::Apply(c) if c.returned => "returned".into(),
            Decision::Apply(c) => c.to.as_str().into(),
        }
    }

    /// Every state against every request, written out by hand.
    #[test]
    fn the_whole_table() {
        #[rustfmt::skip]
        let table: [((ReservationStatus, bool), [&str; 4]); 5] = [
            //                 commit                   release                  expire (due)             return
            ((Active, false),    ["COMMITTED",            "RELEASED",              "EXPIRED",               "reservation_not_committed"]),
            ((Committed, false), ["=",                    "reservation_committed", "reservation_committed", "returned"]),
            ((Committed, true),  ["=",                    "reservation_committed", "reservation_committed", "="]),
            ((Released, false),  ["reservation_released", "=",                     "=",                     "reservation_not_committed"]),
            ((Expired, false),   ["reservation_released", "=",                     "=",                     "reservation_not_committed"]),
        ];
        for ((status, returned), expected) in table {
            for (request, want) in requests().into_iter().zip(expected) {
                let d = decide(Some(&reservation(status, returned)), request, "cancelled");
                assert_eq!(outcome(&d), want, "{status:?} returned={returned} {request:?}");
            }
        }
        for request in requests() {
            assert_eq!(decide(None, request, "x"), Decision::NotFound);
        }
    }

    #[test]
    fn an_expiry_not_due_leaves_the_reservation() {
        let r = reservation(Active, false);
        let early = Timestamp(r.expires_at - Duration::seconds(1));
        assert_eq!(decide(Some(&r), Request::Expire { cutoff: early }, "expired"), Decision::Unchanged);
        let exactly = Timestamp(r.expires_at);
        assert!(matches!(
            decide(Some(&r), Request::Expire { cutoff: exactly }, "expired"),
            Decision::Apply(_)
        ));
    }

    #[test]
    fn each_change_moves_every_line_with_its_audit_row_and_event() {
        let r = reservation(Active, false);
        let Decision::Apply(c) = decide(Some(&r), Request::Commit, "ignored") else { panic!() };
        assert_eq!(
            (c.movement, c.audit, c.reason.as_deref(), c.outcome),
            (Movement::Commit, TransactionType::Commit, None, "committed")
        );
        assert_eq!(
            c.lines.iter().map(|l| (l.quantity, l.audit_quantity)).collect::<Vec<_>>(),
            [(2, -2), (5, -5)]
        );
        assert_eq!(
            c.event,
            ReservationEvent::Committed(InventoryCommitted { order_id: r.order_id, reservation_id: r.id })
        );

        let Decision::Apply(c) = decide(Some(&r), Request::Release, "payment failed") else { panic!() };
        assert_eq!(
            (c.movement, c.audit, c.reason.as_deref()),
            (Movement::Release, TransactionType::Release, Some("payment failed"))
        );
        assert_eq!(c.lines.iter().map(|l| l.audit_quantity).collect::<Vec<_>>(), [2, 5]);

        let Decision::Apply(c) = decide(Some(&r), Request::Expire { cutoff: now() }, "expired") else {
            panic!()
        };
        assert_eq!(
            (c.to, c.movement, c.audit, c.outcome),
            (Expired, Movement::Release, TransactionType::Expiry, "expired")
        );

        let Decision::Apply(c) = decide(Some(&reservation(Committed, false)), Request::Return, "damaged")
        else {
            panic!()
        };
        assert_eq!(
            (c.to, c.returned, c.movement, c.audit),
            (Committed, true, Movement::Return, TransactionType::Return)
        );
        let ReservationEvent::Released(e) = &c.event else { panic!() };
        assert_eq!(e.reason, "returned: damaged");
    }

    // ----- properties ---------------------------------------------------------------------

    fn any_reservation() -> impl Strategy<Value = Reservation> {
        (
            prop::sample::select(vec![Active, Committed, Released, Expired]),
            any::<bool>(),
            -120i64..120,
            prop::collection::vec((0u128..20, 1i64..50), 0..5),
        )
            .prop_map(|(status, returned, expires_in, lines)| {
                let mut r = reservation(status, returned && status == Committed);
                r.expires_at = now().0 + Duration::seconds(expires_in);
                r.items = lines
                    .into_iter()
                    .map(|(p, quantity)| ReservationLine { product_id: Uuid::from_u128(100 + p), quantity })
                    .collect();
                r
            })
    }

    fn any_request() -> impl Strategy<Value = Request> {
        prop_oneof![
            Just(Request::Commit),
            Just(Request::Release),
            (-120i64..120)
                .prop_map(|s| Request::Expire { cutoff: Timestamp(now().0 + Duration::seconds(s)) }),
            Just(Request::Return),
        ]
    }

    /// The reservation as the store leaves it after a change.
    fn applied(r: &Reservation, c: &Change) -> Reservation {
        let mut r = r.clone();
        r.status = c.to;
        if c.returned {
            r.returned_at = Some(now().0);
        }
        r
    }

    proptest! {
        /// RELEASED and EXPIRED are final, and so is a COMMITTED reservation once returned:
        /// nothing changes them any more.
        #[test]
        fn no_transition_out_of_a_terminal_state(mut r in any_reservation(), request in any_request(), released in any::<bool>()) {
            if released {
                r.status = if r.expires_at <= now().0 { Expired } else { Released };
            } else {
                r.status = Committed;
                r.returned_at = Some(now().0);
            }
            prop_assert!(!matches!(decide(Some(&r), request, "x"), Decision::Apply(_)));
        }

        /// The event, the movement and the audit of a change go with the status reached, and
        /// every line of the reservation moves exactly once, by its quantity.
        #[test]
        fn the_event_matches_the_state_reached(r in any_reservation(), request in any_request(), reason in "[a-z ]{1,20}") {
            let Decision::Apply(c) = decide(Some(&r), request, &reason) else { return Ok(()) };
            prop_assert_eq!(c.from, r.status);
            prop_assert_eq!(c.reservation_id, r.id);
            match (&c.event, c.to, c.returned) {
                (ReservationEvent::Committed(e), Committed, false) => {
                    prop_assert_eq!((e.order_id, e.reservation_id), (r.order_id, r.id));
                    prop_assert_eq!((c.movement, c.audit), (Movement::Commit, TransactionType::Commit));
                }
                (ReservationEvent::Released(e), Released | Expired, false) => {
                    prop_assert_eq!((e.order_id, e.reservation_id, e.reason.as_str()), (r.order_id, r.id, reason.as_str()));
                    prop_assert_eq!(c.movement, Movement::Release);
                    prop_assert_eq!(c.audit, if c.to == Expired { TransactionType::Expiry } else { TransactionType::Release });
                }
                (ReservationEvent::Released(e), Committed, true) => {
                    prop_assert_eq!(e.reason.clone(), format!("returned: {reason}"));
                    prop_assert_eq!((c.movement, c.audit), (Movement::Return, TransactionType::Return));
                }
                (event, to, returned) => prop_assert!(false, "{:?} reached (returned {}) with {:?}", to, returned, event),
            }
            prop_assert_eq!(c.lines.len(), r.items.len());
            for (line, item) in c.lines.iter().zip(&r.items) {
                prop_assert_eq!((line.product_id, line.quantity), (item.product_id, item.quantity));
                prop_assert_eq!(line.audit_quantity.abs(), item.quantity);
                prop_assert_eq!(line.audit_quantity < 0, c.movement == Movement::Commit);
            }
        }

        /// Asking again for what was just done changes nothing.
        #[test]
        fn replaying_the_same_input_is_a_no_op(r in any_reservation(), request in any_request()) {
            if let Decision::Apply(c) = decide(Some(&r), request, "again") {
                prop_assert_eq!(decide(Some(&applied(&r, &c)), request, "again"), Decision::Unchanged);
            }
        }

        /// Through any sequence of requests stock moves at most once each way: the units are
        /// committed or released at most once, and returned at most once and only after a
        /// commit.
        #[test]
        fn units_move_at_most_once(r in any_reservation(), requests in prop::collection::vec(any_request(), 1..20)) {
            let mut r = Reservation { status: Active, returned_at: None, ..r };
            let (mut left, mut returned) = (0, 0);
            for request in requests {
                if let Decision::Apply(c) = decide(Some(&r), request, "x") {
                    match c.movement {
                        Movement::Commit | Movement::Release => left += 1,
                        Movement::Return => {
                            prop_assert_eq!(r.status, Committed);
                            returned += 1;
                        }
                    }
                    r = applied(&r, &c);
                }
            }
            prop_assert!(left <= 1 && returned <= 1);
        }
    }
}
