//! Store and simulated-provider tests, run on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use kit::db::Db;
use kit::events::contract::sources;
use kit::events::payloads::OrderCancelled;
use kit::events::Envelope;
use kit::money::Money;
use kit::with_db;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::model::*;
use crate::provider::simulated::SimulatedProvider;
use crate::provider::{
    IntentStatus, NewCheckoutSession, NewIntent, NewRefund, PaymentProvider, ProviderError, SessionStatus,
};
use crate::store::{Change, Claim, Effect, Inserted, NewPayment, Store, StoreError, Transitioned};

fn new_payment(order_id: Uuid, intent: &str) -> NewPayment {
    NewPayment {
        order_id,
        user_id: Uuid::now_v7(),
        amount: Money::new(5000, "USD"),
        provider: ProviderKind::Simulated,
        provider_payment_id: intent.to_string(),
        client_secret: Some(format!("{intent}_secret")),
        status: PaymentStatus::RequiresPaymentMethod,
        checkout: None,
    }
}

async fn created(store: &Store, order_id: Uuid) -> Payment {
    match store
        .insert(&new_payment(order_id, &format!("pi_{}", Uuid::now_v7().simple())), ChangeSource::Api)
        .await
    {
        Ok(Inserted::Created(p)) => p,
        other => panic!("expected a new payment, got {other:?}"),
    }
}

async fn outbox(db: &Db, event_type: &str) -> Vec<Envelope> {
    let rows: Vec<String> = with_db!(db, pool => sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE event_type = $1 ORDER BY seq").bind(event_type).fetch_all(pool).await)
    .unwrap();
    rows.iter().map(|r| serde_json::from_str(r).unwrap()).collect()
}

fn done(t: Transitioned) -> Payment {
    match t {
        Transitioned::Done(p) => p,
        other => panic!("expected a transition, got {other:?}"),
    }
}

fn unchanged(t: Transitioned) -> Payment {
    match t {
        Transitioned::Unchanged(p) => p,
        other => panic!("expected no change, got {other:?}"),
    }
}

fn refund(refund_id: Uuid, amount: i64) -> Effect {
    Effect::Refunded { refund_id, amount, reason: Some("test".into()), provider_refund_id: None }
}

fn simulated(db: &Db) -> SimulatedProvider {
    SimulatedProvider::new(db.clone(), Duration::ZERO, Arc::new(Notify::new()))
}

async fn queued_webhooks(db: &Db) -> Vec<String> {
    SimulatedProvider::ensure_schema(db).await.unwrap();
    with_db!(db, pool => sqlx::query_scalar("SELECT event_type FROM simulated_webhooks ORDER BY created_at, id")
        .fetch_all(pool).await)
    .unwrap()
}

kit::db_tests! { crate::MIGRATIONS;

    async fn one_live_payment_per_order(db) {
        let store = Store::new(db.clone());
        let order = Uuid::now_v7();
        let first = created(&store, order).await;
        assert_eq!(first.history.len(), 1);
        assert_eq!(first.history[0].from, None);
        assert_eq!(first.history[0].to, PaymentStatus::RequiresPaymentMethod);
        // A second payment for the same order gets the first back.
        match store.insert(&new_payment(order, "pi_second"), ChangeSource::Api).await.unwrap() {
            Inserted::Existing(p) => assert_eq!(p.id, first.id),
            other => panic!("{other:?}"),
        }
        // Once it failed, the order may get a new payment; the dead one stays listed.
        done(store.transition(Change::new(first.id, Effect::Failed { code: "card_declined".into(), reason: "no".into() },
            ChangeSource::Api)).await.unwrap());
        assert_eq!(store.dead_payments(order).await.unwrap(), 1);
        let second = created(&store, order).await;
        assert_eq!(store.live_for_order(order).await.unwrap().unwrap().id, second.id);
        let all = store.for_order(order).await.unwrap();
        assert_eq!(all.iter().map(|p| p.id).collect::<Vec<_>>(), vec![second.id, first.id], "newest first");
        // The same provider intent cannot back two payments.
        let err = store.insert(&new_payment(Uuid::now_v7(), &second.provider_payment_id), ChangeSource::Api).await;
        assert!(matches!(err, Err(StoreError::Conflict { code: kit::problem::ErrorCode::IntentAlreadyUsed, .. })), "{err:?}");
    }

    async fn transitions_follow_the_table_and_write_history_and_events(db) {
        let store = Store::new(db.clone());
        let p = created(&store, Uuid::now_v7()).await;
        let action = serde_json::json!({"type": "use_stripe_sdk"});
        let p1 = done(store.transition(Change::new(p.id,
            Effect::RequiresAction { next_action: Some(action.clone()) }, ChangeSource::Api)).await.unwrap());
        assert_eq!((p1.status, p1.next_action.clone()), (PaymentStatus::RequiresAction, Some(action)));
        let p2 = done(store.transition(Change::new(p.id, Effect::Authorized { charge_id: None }, ChangeSource::Webhook)).await.unwrap());
        assert_eq!((p2.status, p2.next_action.clone()), (PaymentStatus::Authorized, None));
        // Duplicate and stale updates are no-ops.
        unchanged(store.transition(Change::new(p.id, Effect::Authorized { charge_id: None }, ChangeSource::Api)).await.unwrap());
        unchanged(store.transition(Change::new(p.id, Effect::RequiresAction { next_action: None }, ChangeSource::Webhook)).await.unwrap());
        unchanged(store.transition(Change::new(p.id, Effect::Failed { code: "x".into(), reason: "late".into() }, ChangeSource::Webhook)).await.unwrap());
        // Nothing to refund before the capture.
        unchanged(store.transition(Change::new(p.id, refund(Uuid::now_v7(), 10), ChangeSource::Api)).await.unwrap());
        let p3 = done(store.transition(Change::new(p.id, Effect::Captured { amount: 4000, charge_id: None }, ChangeSource::Event)).await.unwrap());
        assert_eq!((p3.status, p3.captured_amount), (PaymentStatus::Captured, 4000));
        unchanged(store.transition(Change::new(p.id, Effect::Cancelled, ChangeSource::Event)).await.unwrap());
        let r1 = Uuid::now_v7();
        let p4 = done(store.transition(Change::new(p.id, refund(r1, 1500), ChangeSource::Api)).await.unwrap());
        assert_eq!((p4.status, p4.refunded_amount), (PaymentStatus::PartiallyRefunded, 1500));
        // The same refund again: recorded once.
        unchanged(store.transition(Change::new(p.id, refund(r1, 1500), ChangeSource::Webhook)).await.unwrap());
        // More than is left: refused.
        unchanged(store.transition(Change::new(p.id, refund(Uuid::now_v7(), 2501), ChangeSource::Api)).await.unwrap());
        let p5 = done(store.transition(Change::new(p.id, refund(Uuid::now_v7(), 2500), ChangeSource::Api)).await.unwrap());
        assert_eq!((p5.status, p5.refunded_amount), (PaymentStatus::Refunded, 4000));
        assert_eq!(p5.refunds.len(), 2);
        assert!(p5.refunds.iter().all(|r| r.status == RefundStatus::Succeeded && r.amount.currency == "USD"));
        let path: Vec<_> = p5.history.iter().map(|h| (h.from, h.to, h.source)).collect();
        use PaymentStatus::*;
        assert_eq!(path, vec![
            (None, RequiresPaymentMethod, ChangeSource::Api),
            (Some(RequiresPaymentMethod), RequiresAction, ChangeSource::Api),
            (Some(RequiresAction), Authorized, ChangeSource::Webhook),
            (Some(Authorized), Captured, ChangeSource::Event),
            (Some(Captured), PartiallyRefunded, ChangeSource::Api),
            (Some(PartiallyRefunded), Refunded, ChangeSource::Api),
        ]);
        assert_eq!(outbox(&db, "payment.authorized").await.len(), 1);
        let captured = outbox(&db, "payment.captured").await;
        assert_eq!(captured.len(), 1);
        assert_eq!(captured[0].data["amount"], serde_json::json!({"amount": 4000, "currency": "USD"}));
        assert_eq!(captured[0].subject, p.order_id.to_string());
        assert_eq!(captured[0].source, sources::PAYMENT);
        let refunded = outbox(&db, "payment.refunded").await;
        assert_eq!(refunded.len(), 2);
        assert_eq!(refunded[0].data["refundId"], r1.to_string());
        assert!(outbox(&db, "payment.failed").await.is_empty());
    }

    async fn causes_are_claimed_once_and_caused_events_point_at_them(db) {
        let store = Store::new(db.clone());
        let p = created(&store, Uuid::now_v7()).await;
        let webhook = Claim::Webhook { event_id: "evt_1".into(), event_type: "payment_intent.payment_failed".into() };
        let failed = Effect::Failed { code: "card_declined".into(), reason: "Your card was declined.".into() };
        let after = done(store.transition(Change::new(p.id, failed.clone(), ChangeSource::Webhook)
            .claim(Some(webhook.clone()))).await.unwrap());
        assert_eq!(after.failure_code.as_deref(), Some("card_declined"));
        assert_eq!(after.history.last().unwrap().reason.as_deref(), Some("Your card was declined."));
        assert!(store.webhook_seen("evt_1").await.unwrap());
        assert_eq!(store.transition(Change::new(p.id, failed, ChangeSource::Webhook).claim(Some(webhook))).await.unwrap(),
            Transitioned::AlreadyProcessed);
        let ev = outbox(&db, "payment.failed").await;
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data["reason"], "Your card was declined.");

        // An event's claim: processed once, and the caused event carries its ids.
        let q = created(&store, Uuid::now_v7()).await;
        done(store.transition(Change::new(q.id, Effect::Authorized { charge_id: None }, ChangeSource::Api)).await.unwrap());
        let cause = Envelope::new(sources::ORDER, &OrderCancelled {
            order_id: q.order_id, user_id: q.user_id, reason: "x".into(), items: vec![], refund: false }).unwrap();
        let claim = Some(Claim::Inbox { group: "payment".into(), event_id: cause.id });
        done(store.transition(Change::new(q.id, Effect::Captured { amount: 5000, charge_id: None }, ChangeSource::Event)
            .claim(claim.clone()).caused_by(Some(&cause))).await.unwrap());
        assert!(store.inbox_seen("payment", cause.id).await.unwrap());
        assert_eq!(store.transition(Change::new(q.id, Effect::Captured { amount: 5000, charge_id: None }, ChangeSource::Event)
            .claim(claim)).await.unwrap(), Transitioned::AlreadyProcessed);
        let captured = outbox(&db, "payment.captured").await;
        assert_eq!(captured[0].causationid.as_deref(), Some(cause.id.to_string().as_str()));
        assert_eq!(captured[0].correlationid, cause.correlationid);
        assert_eq!(store.transition(Change::new(Uuid::now_v7(), Effect::Authorized { charge_id: None }, ChangeSource::Api)).await.unwrap(),
            Transitioned::NotFound);
    }

    async fn racing_transitions_make_exactly_one_change(db) {
        let store = Store::new(db.clone());
        let p = created(&store, Uuid::now_v7()).await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            let source = if i % 2 == 0 { ChangeSource::Api } else { ChangeSource::Webhook };
            let effect = if i % 3 == 0 {
                Effect::Failed { code: "card_declined".into(), reason: "race".into() }
            } else {
                Effect::Authorized { charge_id: None }
            };
            tasks.push(tokio::spawn(async move { store.transition(Change::new(p.id, effect, source)).await.unwrap() }));
        }
        let mut done_count = 0;
        for t in tasks {
            if let Transitioned::Done(_) = t.await.unwrap() {
                done_count += 1;
            }
        }
        assert_eq!(done_count, 1, "exactly one transition wins");
        let p = store.get(p.id).await.unwrap().unwrap();
        assert_eq!(p.history.len(), 2);
        let events = outbox(&db, "payment.authorized").await.len() + outbox(&db, "payment.failed").await.len();
        assert_eq!(events, 1, "exactly one event");
    }

    async fn refund_reservations_never_exceed_the_captured_amount(db) {
        let store = Store::new(db.clone());
        let p = created(&store, Uuid::now_v7()).await;
        let err = store.reserve_refund(p.id, Uuid::now_v7(), None, None, None).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::PaymentNotRefundable, .. }), "{err:?}");
        done(store.transition(Change::new(p.id, Effect::Authorized { charge_id: None }, ChangeSource::Api)).await.unwrap());
        done(store.transition(Change::new(p.id, Effect::Captured { amount: 5000, charge_id: None }, ChangeSource::Api)).await.unwrap());
        // 10 concurrent reservations of 1000 against 5000 captured: exactly 5 succeed.
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.reserve_refund(p.id, Uuid::now_v7(), Some(1000), None, None).await }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => { assert_eq!(r.refund.status, RefundStatus::Pending); ok += 1 }
                Err(StoreError::Refused(crate::store::RefundTooLarge { available: 0, .. })) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(ok, 5);
        assert_eq!(store.pending_refund_total(p.id).await.unwrap(), 5000);
        let pending = store.get(p.id).await.unwrap().unwrap().refunds;
        // A reservation is idempotent per refund id.
        let again = store.reserve_refund(p.id, pending[0].id, Some(1000), None, None).await.unwrap();
        assert_eq!(again.refund.id, pending[0].id);
        // Failing one frees its amount; settling one moves the money.
        store.fail_refund(pending[0].id).await.unwrap();
        let extra = store.reserve_refund(p.id, Uuid::now_v7(), None, Some("rest"), None).await.unwrap();
        assert_eq!(extra.refund.amount.amount, 1000);
        let after = done(store.transition(Change::new(p.id, refund(pending[1].id, 1000), ChangeSource::Api)).await.unwrap());
        assert_eq!((after.status, after.refunded_amount), (PaymentStatus::PartiallyRefunded, 1000));
        assert_eq!(after.refunds.iter().filter(|r| r.status == RefundStatus::Succeeded).count(), 1);
        assert_eq!(after.refunds.iter().filter(|r| r.status == RefundStatus::Failed).count(), 1);
        let stale = store.stale_pending_refunds(kit::db::Timestamp::now() + Duration::from_secs(1)).await.unwrap();
        assert_eq!(stale.len(), 4);
        assert!(matches!(store.reserve_refund(p.id, Uuid::now_v7(), Some(1), None, None).await,
            Err(StoreError::Refused(crate::store::RefundTooLarge { requested: 1, available: 0 }))));
    }

    async fn the_payment_schema_has_no_simulator_tables_until_the_simulator_runs(db) {
        let sql = match db.backend() {
            kit::db::Backend::Postgres => "SELECT table_name::text FROM information_schema.tables \
                WHERE table_schema = current_schema() AND table_name LIKE 'simulated%' ORDER BY 1",
            kit::db::Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'simulated%' ORDER BY 1",
        };
        let tables = || async { with_db!(&db, pool => sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await).unwrap() };
        assert_eq!(tables().await, Vec::<String>::new(), "production (Stripe) schemas hold no simulator state");
        SimulatedProvider::ensure_schema(&db).await.unwrap();
        SimulatedProvider::ensure_schema(&db).await.unwrap();
        assert_eq!(tables().await, ["simulated_checkout_sessions", "simulated_intents", "simulated_refunds",
            "simulated_requests", "simulated_webhooks"]);
    }

    async fn simulated_provider_behaves_like_stripe_and_survives_restarts(db) {
        let sim = simulated(&db);
        let order = Uuid::now_v7();
        let new = NewIntent { amount: Money::new(2500, "EUR"), order_id: order };
        let i = sim.create_intent(&new, "k-create").await.unwrap();
        assert_eq!((i.status, i.amount, i.currency.as_str()), (IntentStatus::RequiresPaymentMethod, 2500, "EUR"));
        assert!(i.id.starts_with("pi_") && i.client_secret.as_deref().unwrap().starts_with(&i.id));
        // Idempotent replay; the key with other parameters is refused.
        assert_eq!(sim.create_intent(&new, "k-create").await.unwrap().id, i.id);
        let other = NewIntent { amount: Money::new(1, "EUR"), order_id: order };
        assert!(matches!(sim.create_intent(&other, "k-create").await, Err(ProviderError::Refused(_))));
        // Concurrent first uses of one key create one intent.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (sim, new) = (sim.clone(), new.clone());
            tasks.push(tokio::spawn(async move { sim.create_intent(&new, "k-concurrent").await.unwrap().id }));
        }
        let mut ids = Vec::new();
        for t in tasks { ids.push(t.await.unwrap()); }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");

        assert!(matches!(sim.capture(&i.id, None, "k-cap0").await, Err(ProviderError::Refused(_))));
        assert!(matches!(sim.confirm(&i.id, "pm_unknown", "k-c0").await, Err(ProviderError::Refused(_))));
        let c = sim.confirm(&i.id, "4242 4242 4242 4242", "k-c1").await.unwrap();
        assert_eq!((c.status, c.amount_capturable), (IntentStatus::RequiresCapture, 2500));
        assert!(matches!(sim.capture(&i.id, Some(2501), "k-cap1").await, Err(ProviderError::Refused(_))));

        // A restart: a new provider over the same database sees the same intent.
        let sim = simulated(&db);
        assert_eq!(sim.retrieve(&i.id).await.unwrap().status, IntentStatus::RequiresCapture);
        let cap = sim.capture(&i.id, Some(2000), "k-cap2").await.unwrap();
        assert_eq!((cap.status, cap.amount_received, cap.amount_capturable), (IntentStatus::Succeeded, 2000, 0));
        assert!(matches!(sim.cancel(&i.id, "k-cancel").await, Err(ProviderError::Refused(_))));
        let refund = |amount, key: &'static str| {
            let sim = sim.clone();
            let r = NewRefund { intent_id: i.id.clone(), amount, refund_id: Uuid::now_v7(), reason: None };
            async move { sim.refund(&r, key).await }
        };
        assert!(matches!(refund(2001, "k-r0").await, Err(ProviderError::Refused(_))));
        let r1 = refund(1500, "k-r1").await.unwrap();
        assert!(r1.id.starts_with("re_"));
        assert!(matches!(refund(501, "k-r2").await, Err(ProviderError::Refused(_))));
        refund(500, "k-r3").await.unwrap();

        // Declined and 3-D Secure cards; a decline is replayed for its key.
        let d = sim.create_intent(&NewIntent { amount: Money::new(100, "USD"), order_id: Uuid::now_v7() }, "k-d").await.unwrap();
        let declined = sim.confirm(&d.id, "pm_card_chargeDeclined", "k-d1").await.unwrap_err();
        assert!(matches!(&declined, ProviderError::Declined { code, .. } if code == "card_declined"), "{declined:?}");
        assert!(matches!(sim.confirm(&d.id, "pm_card_chargeDeclined", "k-d1").await, Err(ProviderError::Declined { .. })));
        let after = sim.retrieve(&d.id).await.unwrap();
        assert_eq!(after.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(after.last_error.unwrap().message, "Your card was declined.");
        let a = sim.create_intent(&NewIntent { amount: Money::new(100, "USD"), order_id: Uuid::now_v7() }, "k-a").await.unwrap();
        let action = sim.confirm(&a.id, "4000002500003155", "k-a1").await.unwrap();
        assert_eq!(action.status, IntentStatus::RequiresAction);
        assert_eq!(action.next_action.unwrap()["type"], "use_stripe_sdk");
        assert_eq!(sim.cancel(&a.id, "k-a2").await.unwrap().status, IntentStatus::Canceled);

        let hooks = queued_webhooks(&db).await;
        for expected in ["payment_intent.created", "payment_intent.amount_capturable_updated", "payment_intent.succeeded",
            "charge.refunded", "payment_intent.payment_failed", "payment_intent.requires_action", "payment_intent.canceled"] {
            assert!(hooks.iter().any(|h| h == expected), "{expected} not queued: {hooks:?}");
        }
        assert_eq!(hooks.iter().filter(|h| *h == "charge.refunded").count(), 2);
        assert_eq!(hooks.iter().filter(|h| *h == "payment_intent.payment_failed").count(), 1, "a replay emits nothing");
        let due = simulated(&db).due_webhooks(kit::db::Timestamp::now() + Duration::from_secs(1), 100).await.unwrap();
        let last_refund: serde_json::Value = due.iter().map(|(_, p)| serde_json::from_str::<serde_json::Value>(p).unwrap())
            .rfind(|e| e["type"] == "charge.refunded").unwrap();
        assert_eq!(last_refund["data"]["object"]["amount_refunded"], 2000);
        assert_eq!(last_refund["data"]["object"]["refunds"]["data"].as_array().unwrap().len(), 2);
        assert_eq!(last_refund["data"]["object"]["payment_intent"], i.id.as_str());
    }

    async fn simulated_checkout_sessions_behave_like_stripe_and_survive_restarts(db) {
        let sim = simulated(&db);
        let order = Uuid::now_v7();
        let new = NewCheckoutSession {
            amount: Money::new(2500, "EUR"),
            order_id: order,
            success_url: "http://localhost/ok?session_id={CHECKOUT_SESSION_ID}".into(),
            cancel_url: "http://localhost/no".into(),
        };
        let s = sim.create_checkout_session(&new, "k-s").await.unwrap();
        assert!(s.id.starts_with("cs_test_"));
        assert_eq!((s.status, s.payment_intent.as_deref()), (SessionStatus::Open, None));
        assert_eq!(s.url.as_deref(), Some(format!("/api/v1/payments/hosted/{}", s.id).as_str()));
        let in_a_day = time::OffsetDateTime::now_utc().unix_timestamp() + 24 * 3600;
        assert!((in_a_day - 5..=in_a_day).contains(&s.expires_at), "{}", s.expires_at);
        // Idempotent replay; the key with other parameters is refused; no webhook for a creation.
        assert_eq!(sim.create_checkout_session(&new, "k-s").await.unwrap(), s);
        let other = NewCheckoutSession { success_url: "http://localhost/other".into(), ..new.clone() };
        assert!(matches!(sim.create_checkout_session(&other, "k-s").await, Err(ProviderError::Refused(_))));
        assert!(queued_webhooks(&db).await.is_empty());

        // A restart keeps the session; paying it creates its intent, authorised (manual capture).
        let sim = simulated(&db);
        assert_eq!(sim.retrieve_checkout_session(&s.id).await.unwrap(), s);
        assert!(matches!(sim.pay_checkout_session(&s.id, "pm_card_authenticationRequired", "k-p0").await,
            Err(ProviderError::Refused(_))), "3-D Secure cannot be completed on the page");
        let (paid, intent) = sim.pay_checkout_session(&s.id, "pm_card_visa", "k-p1").await.unwrap();
        let intent = intent.unwrap();
        assert_eq!((paid.status, paid.url.as_deref()), (SessionStatus::Complete, None));
        assert_eq!(paid.payment_intent.as_deref(), Some(intent.id.as_str()));
        assert_eq!((intent.status, intent.amount_capturable, intent.amount), (IntentStatus::RequiresCapture, 2500, 2500));
        assert_eq!(intent.charge_id, Some(format!("ch_{}", intent.id.trim_start_matches("pi_"))));
        // The same key and card replay; the session cannot be paid again nor expired.
        assert_eq!(sim.pay_checkout_session(&s.id, "pm_card_visa", "k-p1").await.unwrap().0, paid);
        assert!(matches!(sim.pay_checkout_session(&s.id, "pm_card_visa", "k-p2").await, Err(ProviderError::Refused(_))));
        assert!(matches!(sim.expire_checkout_session(&s.id, "k-e0").await, Err(ProviderError::Refused(_))));
        assert_eq!(sim.capture(&intent.id, None, "k-cap").await.unwrap().amount_received, 2500);
        assert_eq!(queued_webhooks(&db).await,
            ["payment_intent.created", "payment_intent.amount_capturable_updated", "checkout.session.completed",
             "payment_intent.succeeded"]);
        let due = simulated(&db).due_webhooks(kit::db::Timestamp::now() + Duration::from_secs(1), 100).await.unwrap();
        let completed: serde_json::Value = due.iter().map(|(_, p)| serde_json::from_str::<serde_json::Value>(p).unwrap())
            .find(|e| e["type"] == "checkout.session.completed").unwrap();
        let object = &completed["data"]["object"];
        assert_eq!((object["id"].as_str(), object["payment_intent"].as_str()), (Some(s.id.as_str()), Some(intent.id.as_str())));
        assert_eq!((object["status"].as_str(), object["payment_status"].as_str()), (Some("complete"), Some("unpaid")));
        assert_eq!((object["amount_total"].as_i64(), object["client_reference_id"].as_str()), (Some(2500), Some(order.to_string().as_str())));
        // The simulated session object parses as Stripe's.
        let parsed: ::stripe::CheckoutSession = serde_json::from_value(object.clone()).unwrap();
        assert_eq!(parsed.id.as_str(), s.id);

        // A declined card ends the session (one attempt per session); the intent keeps the decline.
        let d = sim.create_checkout_session(&NewCheckoutSession { order_id: Uuid::now_v7(), ..new.clone() }, "k-ds").await.unwrap();
        let (after, intent) = sim.pay_checkout_session(&d.id, "4000000000000002", "k-dp").await.unwrap();
        let intent = intent.unwrap();
        assert_eq!(after.status, SessionStatus::Expired);
        assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(intent.last_error.unwrap().code, "card_declined");
        // Expiring: once; then it cannot be paid.
        let e = sim.create_checkout_session(&NewCheckoutSession { order_id: Uuid::now_v7(), ..new.clone() }, "k-es").await.unwrap();
        assert_eq!(sim.expire_checkout_session(&e.id, "k-e1").await.unwrap().status, SessionStatus::Expired);
        assert_eq!(sim.expire_checkout_session(&e.id, "k-e1").await.unwrap().status, SessionStatus::Expired, "replayed");
        assert!(matches!(sim.expire_checkout_session(&e.id, "k-e2").await, Err(ProviderError::Refused(_))));
        assert!(matches!(sim.pay_checkout_session(&e.id, "pm_card_visa", "k-e3").await, Err(ProviderError::Refused(_))));
        assert!(matches!(sim.retrieve_checkout_session("cs_test_nope").await, Err(ProviderError::Refused(_))));
        let hooks = queued_webhooks(&db).await;
        assert_eq!(hooks.iter().filter(|h| *h == "checkout.session.expired").count(), 2);
        assert_eq!(hooks.iter().filter(|h| *h == "payment_intent.payment_failed").count(), 1);
        assert_eq!(sim.expire_due_sessions().await.unwrap(), 0, "nothing is due yet");
    }
}
