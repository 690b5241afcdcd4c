//! The payment's status machine as a pure function: [`decide`] takes what is stored of a
//! payment, the requested change and the time, and returns the [`Decision`] — unchanged, or the
//! status reached with the row after the change, the history reason, the event to publish and
//! the refund row to write. It reads nothing and writes nothing; [`crate::store::Store::transition`]
//! loads the state in its transaction, calls it and applies the decision (conditional update,
//! history row, refund row, outbox event) in that same transaction.

use kit::db::Timestamp;
use kit::events::payloads::{PaymentAuthorized, PaymentCaptured, PaymentFailed, PaymentRefunded};
use kit::money::Money;
use serde_json::Value;
use uuid::Uuid;

use crate::model::{PaymentStatus, RefundStatus};

/// What a transition does besides changing the status.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    RequiresConfirmation,
    RequiresAction {
        next_action: Option<Value>,
    },
    /// Authorised; `charge_id` is the provider's charge when it reports one.
    Authorized {
        charge_id: Option<String>,
    },
    Captured {
        amount: i64,
        charge_id: Option<String>,
    },
    Failed {
        code: String,
        reason: String,
    },
    Cancelled,
    /// A refund succeeded at the provider: records it (a PENDING row becomes SUCCEEDED) and
    /// moves to PARTIALLY_REFUNDED or REFUNDED.
    Refunded {
        refund_id: Uuid,
        amount: i64,
        reason: Option<String>,
        provider_refund_id: Option<String>,
    },
}

/// The stored payment as far as a transition reads or writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentState {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub amount: i64,
    pub currency: String,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    /// The intent (`pi_…`), or for hosted checkout the session id until the intent is known.
    pub provider_payment_id: String,
    pub checkout_session_id: Option<String>,
    pub charge_id: Option<String>,
    /// The provider's next action as JSON text.
    pub next_action: Option<String>,
    pub failure_code: Option<String>,
    pub failure_reason: Option<String>,
    pub authorized_at: Option<Timestamp>,
}

impl PaymentState {
    /// A hosted checkout payment whose intent is not known yet (it holds the session id).
    pub fn awaits_intent(&self) -> bool {
        self.checkout_session_id.as_deref() == Some(self.provider_payment_id.as_str())
    }
}

/// One requested change, as the decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub effect: &'a Effect,
    /// The reason recorded in the history (a failure's reason when there is none).
    pub reason: Option<&'a str>,
    /// The provider intent learnt with this change: recorded when the payment awaits its intent.
    pub intent_id: Option<&'a str>,
    /// For a refund: the status of the refund row already stored under its id or provider id.
    pub known_refund: Option<RefundStatus>,
}

/// What [`decide`] concludes.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not allowed from the current status, or already done: nothing to write.
    Unchanged,
    /// The payment moves: apply this.
    Apply(Box<Transition>),
}

/// A status change to apply in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    /// The row after the change (`next.status == to`).
    pub next: PaymentState,
    /// The history row's reason.
    pub history_reason: Option<String>,
    /// The event to publish (through the outbox), if the status reached has one.
    pub event: Option<PaymentEvent>,
    /// The refund row to write (refunds only).
    pub refund: Option<RefundWrite>,
}

/// The event a transition publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentEvent {
    Authorized(PaymentAuthorized),
    Captured(PaymentCaptured),
    Failed(PaymentFailed),
    Refunded(PaymentRefunded),
}

/// How a succeeded refund is recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum RefundWrite {
    /// The row reserved before the provider was called becomes SUCCEEDED.
    Settle { refund_id: Uuid, provider_refund_id: Option<String> },
    /// A refund made outside this service (learnt from the provider): a new SUCCEEDED row.
    Insert { refund_id: Uuid, amount: i64, reason: Option<String>, provider_refund_id: Option<String> },
}

/// The status machine: where `input` takes the payment `state` at `now`.
///
/// The target status must list the current one in [`PaymentStatus::allowed_from`]; a refund
/// must also add something (it is not recorded yet, its amount is positive and within what was
/// captured). Anything else — a stale, repeated or out-of-order change — is
/// [`Decision::Unchanged`].
pub fn decide(state: &PaymentState, input: &Input<'_>, now: Timestamp) -> Decision {
    let from = state.status;
    let mut next = state.clone();
    if let Some(intent) = input.intent_id.filter(|_| state.awaits_intent()) {
        next.provider_payment_id = intent.to_string();
    }
    let to = match input.effect {
        Effect::RequiresConfirmation => PaymentStatus::RequiresConfirmation,
        Effect::RequiresAction { next_action } => {
            next.next_action = next_action.as_ref().map(|v| v.to_string());
            PaymentStatus::RequiresAction
        }
        Effect::Authorized { charge_id } => {
            next.next_action = None;
            next.charge_id = charge_id.clone().or(state.charge_id.clone());
            next.authorized_at = Some(now);
            PaymentStatus::Authorized
        }
        Effect::Captured { amount, charge_id } => {
            next.captured_amount = (*amount).clamp(0, state.amount);
            next.charge_id = charge_id.clone().or(state.charge_id.clone());
            PaymentStatus::Captured
        }
        Effect::Failed { code, reason } => {
            next.failure_code = Some(code.clone());
            next.failure_reason = Some(reason.clone());
            next.next_action = None;
            PaymentStatus::Failed
        }
        Effect::Cancelled => {
            next.next_action = None;
            PaymentStatus::Cancelled
        }
        Effect::Refunded { amount, .. } => {
            if input.known_refund == Some(RefundStatus::Succeeded)
                || *amount <= 0
                || state.refunded_amount + amount > state.captured_amount
            {
                // Recorded before, or more than is left: nothing to do.
                from
            } else {
                next.refunded_amount = state.refunded_amount + amount;
                if next.refunded_amount >= state.captured_amount {
                    PaymentStatus::Refunded
                } else {
                    PaymentStatus::PartiallyRefunded
                }
            }
        }
    };
    let is_refund = matches!(input.effect, Effect::Refunded { .. });
    if !to.allowed_from().contains(&from) || (is_refund && next.refunded_amount == state.refunded_amount) {
        return Decision::Unchanged;
    }
    next.status = to;
    let history_reason = input.reason.map(str::to_string).or_else(|| match input.effect {
        Effect::Failed { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    let money = |amount: i64| Money { amount, currency: state.currency.clone() };
    let (order_id, payment_id) = (state.order_id, state.id);
    let mut refund = None;
    let event = match input.effect {
        Effect::Authorized { .. } => Some(PaymentEvent::Authorized(PaymentAuthorized {
            order_id,
            payment_id,
            amount: money(state.amount),
            charge_id: next.charge_id.clone(),
        })),
        Effect::Captured { .. } => Some(PaymentEvent::Captured(PaymentCaptured {
            order_id,
            payment_id,
            amount: money(next.captured_amount),
            charge_id: next.charge_id.clone(),
        })),
        Effect::Failed { reason, .. } => Some(PaymentEvent::Failed(PaymentFailed {
            order_id,
            payment_id,
            amount: money(state.amount),
            reason: reason.clone(),
        })),
        Effect::Refunded { refund_id, amount, reason, provider_refund_id } => {
            refund = Some(match input.known_refund {
                Some(_) => RefundWrite::Settle {
                    refund_id: *refund_id,
                    provider_refund_id: provider_refund_id.clone(),
                },
                None => RefundWrite::Insert {
                    refund_id: *refund_id,
                    amount: *amount,
                    reason: reason.clone(),
                    provider_refund_id: provider_refund_id.clone(),
                },
            });
            Some(PaymentEvent::Refunded(PaymentRefunded {
                order_id,
                payment_id,
                amount: money(*amount),
                refund_id: *refund_id,
            }))
        }
        Effect::RequiresConfirmation | Effect::RequiresAction { .. } | Effect::Cancelled => None,
    };
    Decision::Apply(Box::new(Transition { from, to, next, history_reason, event, refund }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use PaymentStatus::*;

    fn now() -> Timestamp {
        Timestamp(time::macros::datetime!(2026-01-02 03:04:05 UTC))
    }

    /// A payment of 1000 in `status`, with amounts that fit it: captured in full once captured,
    /// 400 refunded when partially refunded, all of it when refunded.
    fn state(status: PaymentStatus) -> PaymentState {
        let captured = if status.is_captured() { 1000 } else { 0 };
        let refunded = match status {
            PartiallyRefunded => 400,
            Refunded => 1000,
            _ => 0,
        };
        PaymentState {
            id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            status,
            amount: 1000,
            currency: "USD".into(),
            captured_amount: captured,
            refunded_amount: refunded,
            provider_payment_id: "pi_1".into(),
            checkout_session_id: None,
            charge_id: None,
            next_action: None,
            failure_code: None,
            failure_reason: None,
            authorized_at: None,
        }
    }

    fn refund(amount: i64) -> Effect {
        Effect::Refunded { refund_id: Uuid::from_u128(9), amount, reason: None, provider_refund_id: None }
    }

    fn input(effect: &Effect) -> Input<'_> {
        Input { effect, reason: None, intent_id: None, known_refund: None }
    }

    fn to(state: &PaymentState, effect: &Effect) -> Option<PaymentStatus> {
        match decide(state, &input(effect), now()) {
            Decision::Unchanged => None,
            Decision::Apply(t) => Some(t.to),
        }
    }

    fn applied(d: Decision) -> Transition {
        match d {
            Decision::Apply(t) => *t,
            Decision::Unchanged => panic!("expected a transition"),
        }
    }

    /// Every status against every kind of change, written out by hand.
    #[test]
    fn the_whole_table() {
        let effects = [
            Effect::RequiresConfirmation,
            Effect::RequiresAction { next_action: None },
            Effect::Authorized { charge_id: None },
            Effect::Captured { amount: 1000, charge_id: None },
            Effect::Failed { code: "card_declined".into(), reason: "declined".into() },
            Effect::Cancelled,
            refund(100),
        ];
        let n = None;
        #[rustfmt::skip]
        let table: [(PaymentStatus, [Option<PaymentStatus>; 7]); 9] = [
            //                       confirm              action                authorize         capture         fail          cancel           refund 100
            (RequiresPaymentMethod, [Some(RequiresConfirmation), Some(RequiresAction), Some(Authorized), n, Some(Failed), Some(Cancelled), n]),
            (RequiresConfirmation,  [n, Some(RequiresAction), Some(Authorized), n, Some(Failed), Some(Cancelled), n]),
            (RequiresAction,        [n, n, Some(Authorized), n, Some(Failed), Some(Cancelled), n]),
            (Authorized,            [n, n, n, Some(Captured), n, Some(Cancelled), n]),
            (Captured,              [n, n, n, n, n, n, Some(PartiallyRefunded)]),
            (PartiallyRefunded,     [n, n, n, n, n, n, Some(PartiallyRefunded)]),
            (Refunded,              [n, n, n, n, n, n, n]),
            (Failed,                [n, n, n, n, n, n, n]),
            (Cancelled,             [n, n, n, n, n, n, n]),
        ];
        assert_eq!(table.len(), PaymentStatus::ALL.len());
        for (from, expected) in table {
            for (effect, want) in effects.iter().zip(expected) {
                assert_eq!(to(&state(from), effect), want, "{from} with {effect:?}");
            }
        }
    }

    #[test]
    fn a_refund_of_what_is_left_refunds_in_full() {
        let t = applied(decide(&state(PartiallyRefunded), &input(&refund(600)), now()));
        assert_eq!((t.to, t.next.refunded_amount), (Refunded, 1000));
        let t = applied(decide(&state(Captured), &input(&refund(1000)), now()));
        assert_eq!((t.to, t.next.refunded_amount), (Refunded, 1000));
    }

    #[test]
    fn a_refund_over_what_is_left_or_not_positive_changes_nothing() {
        assert_eq!(to(&state(PartiallyRefunded), &refund(601)), None);
        assert_eq!(to(&state(Captured), &refund(0)), None);
        assert_eq!(to(&state(Captured), &refund(-5)), None);
    }

    #[test]
    fn a_refund_settles_its_reserved_row_or_records_a_new_one() {
        let effect = Effect::Refunded {
            refund_id: Uuid::from_u128(9),
            amount: 100,
            reason: Some("damaged".into()),
            provider_refund_id: Some("re_1".into()),
        };
        let fresh = applied(decide(&state(Captured), &input(&effect), now()));
        assert_eq!(
            fresh.refund,
            Some(RefundWrite::Insert {
                refund_id: Uuid::from_u128(9),
                amount: 100,
                reason: Some("damaged".into()),
                provider_refund_id: Some("re_1".into()),
            })
        );
        let pending = Input { known_refund: Some(RefundStatus::Pending), ..input(&effect) };
        let settled = applied(decide(&state(Captured), &pending, now()));
        assert_eq!(
            settled.refund,
            Some(RefundWrite::Settle {
                refund_id: Uuid::from_u128(9),
                provider_refund_id: Some("re_1".into())
            })
        );
        let done = Input { known_refund: Some(RefundStatus::Succeeded), ..input(&effect) };
        assert_eq!(decide(&state(Captured), &done, now()), Decision::Unchanged);
    }

    #[test]
    fn a_capture_is_clamped_to_the_amount() {
        let over = Effect::Captured { amount: 5000, charge_id: None };
        assert_eq!(applied(decide(&state(Authorized), &input(&over), now())).next.captured_amount, 1000);
        let negative = Effect::Captured { amount: -1, charge_id: None };
        assert_eq!(applied(decide(&state(Authorized), &input(&negative), now())).next.captured_amount, 0);
    }

    #[test]
    fn authorising_stamps_the_time_keeps_a_known_charge_and_clears_the_next_action() {
        let mut s = state(RequiresAction);
        s.charge_id = Some("ch_old".into());
        s.next_action = Some("{}".into());
        let t = applied(decide(&s, &input(&Effect::Authorized { charge_id: None }), now()));
        assert_eq!(t.next.charge_id.as_deref(), Some("ch_old"));
        assert_eq!(t.next.authorized_at, Some(now()));
        assert_eq!(t.next.next_action, None);
        let t = applied(decide(&s, &input(&Effect::Authorized { charge_id: Some("ch_new".into()) }), now()));
        assert_eq!(t.next.charge_id.as_deref(), Some("ch_new"));
    }

    #[test]
    fn the_next_action_is_kept_as_json_text() {
        let effect = Effect::RequiresAction { next_action: Some(json!({"type": "redirect_to_url"})) };
        let t = applied(decide(&state(RequiresConfirmation), &input(&effect), now()));
        assert_eq!(t.next.next_action.as_deref(), Some(r#"{"type":"redirect_to_url"}"#));
    }

    #[test]
    fn the_intent_is_recorded_only_while_the_payment_awaits_it() {
        let mut s = state(RequiresPaymentMethod);
        s.checkout_session_id = Some("cs_1".into());
        s.provider_payment_id = "cs_1".into();
        let effect = Effect::Authorized { charge_id: None };
        let with_intent = Input { intent_id: Some("pi_9"), ..input(&effect) };
        assert_eq!(applied(decide(&s, &with_intent, now())).next.provider_payment_id, "pi_9");
        s.provider_payment_id = "pi_1".into();
        assert_eq!(applied(decide(&s, &with_intent, now())).next.provider_payment_id, "pi_1");
    }

    #[test]
    fn the_history_reason_is_the_one_given_else_the_failure() {
        let effect = Effect::Failed { code: "card_declined".into(), reason: "insufficient funds".into() };
        let t = applied(decide(&state(RequiresConfirmation), &input(&effect), now()));
        assert_eq!(t.history_reason.as_deref(), Some("insufficient funds"));
        assert_eq!(t.next.failure_code.as_deref(), Some("card_declined"));
        let given = Input { reason: Some("3-D Secure failed"), ..input(&effect) };
        let t = applied(decide(&state(RequiresConfirmation), &given, now()));
        assert_eq!(t.history_reason.as_deref(), Some("3-D Secure failed"));
        let t = applied(decide(&state(Authorized), &input(&Effect::Cancelled), now()));
        assert_eq!(t.history_reason, None);
    }

    // ----- properties ---------------------------------------------------------------------

    fn any_status() -> impl Strategy<Value = PaymentStatus> {
        prop::sample::select(PaymentStatus::ALL.to_vec())
    }

    /// Any payment whose amounts go with its status: nothing captured before capture, nothing
    /// refunded when CAPTURED, some of the captured amount when PARTIALLY_REFUNDED, all of it
    /// when REFUNDED.
    fn any_state() -> impl Strategy<Value = PaymentState> {
        (any_status(), 2i64..5000, 0.0f64..1.0, 0.0f64..1.0, any::<bool>()).prop_map(
            |(status, amount, c, r, awaits)| {
                let mut s = state(status);
                s.amount = amount;
                let captured = 2 + ((amount - 2) as f64 * c) as i64;
                (s.captured_amount, s.refunded_amount) = match status {
                    Captured => (captured, 0),
                    PartiallyRefunded => (captured, 1 + ((captured - 2) as f64 * r) as i64),
                    Refunded => (captured, captured),
                    _ => (0, 0),
                };
                if awaits {
                    s.checkout_session_id = Some(s.provider_payment_id.clone());
                }
                s
            },
        )
    }

    /// Any change; refunds draw their id from a few so that repeats happen.
    fn any_effect() -> impl Strategy<Value = Effect> {
        let charge = prop::option::of(prop::sample::select(vec!["ch_1".to_string(), "ch_2".to_string()]));
        prop_oneof![
            Just(Effect::RequiresConfirmation),
            prop::option::of(Just(json!({"type": "use_stripe_sdk"})))
                .prop_map(|next_action| Effect::RequiresAction { next_action }),
            charge.clone().prop_map(|charge_id| Effect::Authorized { charge_id }),
            (-100i64..6000, charge).prop_map(|(amount, charge_id)| Effect::Captured { amount, charge_id }),
            Just(Effect::Failed { code: "card_declined".into(), reason: "declined".into() }),
            Just(Effect::Cancelled),
            (0u128..4, -100i64..3000).prop_map(|(id, amount)| Effect::Refunded {
                refund_id: Uuid::from_u128(100 + id),
                amount,
                reason: None,
                provider_refund_id: None,
            }),
        ]
    }

    fn any_known_refund() -> impl Strategy<Value = Option<RefundStatus>> {
        prop::option::of(prop::sample::select(vec![
            RefundStatus::Pending,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ]))
    }

    proptest! {
        /// A sequence of changes applied as the store applies them never refunds more than was
        /// captured, never captures more than the amount, and never gives a refund back.
        #[test]
        fn refunds_never_exceed_what_was_captured(start in any_state(), effects in prop::collection::vec(any_effect(), 1..25)) {
            let mut s = start;
            let mut recorded: Vec<Uuid> = Vec::new();
            for effect in &effects {
                let known_refund = match effect {
                    Effect::Refunded { refund_id, .. } if recorded.contains(refund_id) => Some(RefundStatus::Succeeded),
                    _ => None,
                };
                let before = s.refunded_amount;
                if let Decision::Apply(t) = decide(&s, &Input { effect, reason: None, intent_id: None, known_refund }, now()) {
                    if let Some(RefundWrite::Insert { refund_id, .. } | RefundWrite::Settle { refund_id, .. }) = t.refund {
                        recorded.push(refund_id);
                    }
                    s = t.next;
                }
                prop_assert!(0 <= s.refunded_amount && s.refunded_amount <= s.captured_amount);
                prop_assert!(s.captured_amount <= s.amount);
                prop_assert!(s.refunded_amount >= before);
            }
        }

        /// FAILED, CANCELLED and REFUNDED are final: nothing moves a payment out of them.
        #[test]
        fn no_transition_out_of_a_terminal_status(
            mut s in any_state(),
            terminal in prop::sample::select(vec![Failed, Cancelled, Refunded]),
            effect in any_effect(),
            known_refund in any_known_refund(),
        ) {
            s.status = terminal;
            if terminal == Refunded {
                s.refunded_amount = s.captured_amount;
            }
            let d = decide(&s, &Input { effect: &effect, reason: None, intent_id: None, known_refund }, now());
            prop_assert_eq!(d, Decision::Unchanged);
        }

        /// A transition goes where the transition table allows, and its event (and refund row)
        /// is the one of the status reached, with the amount that status is about.
        #[test]
        fn the_event_matches_the_status_reached(
            s in any_state(),
            effect in any_effect(),
            known_refund in any_known_refund(),
        ) {
            let Decision::Apply(t) = decide(&s, &Input { effect: &effect, reason: None, intent_id: None, known_refund }, now()) else {
                return Ok(());
            };
            prop_assert_eq!(t.from, s.status);
            prop_assert_eq!(t.next.status, t.to);
            prop_assert!(t.to.allowed_from().contains(&t.from));
            match (t.to, &t.event) {
                (Authorized, Some(PaymentEvent::Authorized(e))) => prop_assert_eq!(e.amount.amount, s.amount),
                (Captured, Some(PaymentEvent::Captured(e))) => prop_assert_eq!(e.amount.amount, t.next.captured_amount),
                (Failed, Some(PaymentEvent::Failed(e))) => prop_assert_eq!(e.amount.amount, s.amount),
                (PartiallyRefunded | Refunded, Some(PaymentEvent::Refunded(e))) => {
                    prop_assert_eq!(e.amount.amount, t.next.refunded_amount - s.refunded_amount);
                    prop_assert_eq!(t.to == Refunded, t.next.refunded_amount == t.next.captured_amount);
                }
                (RequiresConfirmation | RequiresAction | Cancelled, None) => {}
                (to, event) => prop_assert!(false, "{} reached with event {:?}", to, event),
            }
            let ids = match &t.event {
                Some(PaymentEvent::Authorized(e)) => Some((e.order_id, e.payment_id, &e.amount.currency)),
                Some(PaymentEvent::Captured(e)) => Some((e.order_id, e.payment_id, &e.amount.currency)),
                Some(PaymentEvent::Failed(e)) => Some((e.order_id, e.payment_id, &e.amount.currency)),
                Some(PaymentEvent::Refunded(e)) => Some((e.order_id, e.payment_id, &e.amount.currency)),
                None => None,
            };
            if let Some(ids) = ids {
                prop_assert_eq!(ids, (s.order_id, s.id, &s.currency));
            }
            prop_assert_eq!(t.refund.is_some(), matches!(t.event, Some(PaymentEvent::Refunded(_))));
        }

        /// Applying a change and then the same change again (its refund now recorded) changes
        /// nothing the second time.
        #[test]
        fn replaying_the_same_input_is_a_no_op(
            s in any_state(),
            effect in any_effect(),
            known_refund in any_known_refund(),
            intent in prop::option::of(Just("pi_new")),
        ) {
            let first = Input { effect: &effect, reason: None, intent_id: intent, known_refund };
            if let Decision::Apply(t) = decide(&s, &first, now()) {
                let known_refund = t.refund.as_ref().map(|_| RefundStatus::Succeeded).or(known_refund);
                let again = Input { known_refund, ..first };
                prop_assert_eq!(decide(&t.next, &again, now()), Decision::Unchanged);
            }
        }
    }
}
