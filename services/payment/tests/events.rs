//! Event consumers through the in-process bus, on SQLite and PostgreSQL: `order.confirmed`
//! captures, `order.cancelled` refunds a captured payment or voids an authorised one, a
//! redelivered event has no second effect (inbox); the simulated provider's webhooks are
//! delivered by the background task meanwhile.

mod support;

use axum::http::{Method, StatusCode};
use kit::events::contract::sources;
use kit::events::memory::InProcessBus;
use kit::events::payloads::{OrderCancelled, OrderConfirmed};
use kit::events::{Envelope, EventBus, RetryPolicy};
use kit::money::Money;
use kit::with_db;
use serde_json::{json, Value};
use support::*;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn status(app: &App, id: &str) -> Value {
    app.call(&app.admin, Method::GET, &format!("/api/v1/payments/{id}"), None, None)
        .await
        .ok(StatusCode::OK)
        .clone()
}

async fn claimed(app: &App) -> i64 {
    count(&app.db, "SELECT COUNT(*) FROM inbox WHERE consumer_group = 'payment'").await
}

fn confirmed(order: Uuid, user: Uuid) -> Envelope {
    Envelope::new(
        sources::ORDER,
        &OrderConfirmed { order_id: order, user_id: user, total: Money::new(1, "USD") },
    )
    .unwrap()
}

fn cancelled(order: Uuid, user: Uuid) -> Envelope {
    Envelope::new(
        sources::ORDER,
        &OrderCancelled {
            order_id: order,
            user_id: user,
            reason: "customer".into(),
            items: vec![],
            refund: true,
        },
    )
    .unwrap()
}

kit::db_tests! { shop_payment::MIGRATIONS;

    async fn order_events_capture_refund_and_void_once(db) {
        let app = App::new(db.clone()).await;
        let bus = InProcessBus::new("", RetryPolicy::default());
        kit::events::register(&bus, shop_payment::handlers(app.state.clone())).unwrap();
        let shutdown = CancellationToken::new();
        let consumers = bus.start(shutdown.clone()).await.unwrap();
        let deliveries = shop_payment::spawn_simulated_webhooks(app.state.clone(), shutdown.clone());
        let sweeper = shop_payment::spawn_sweeper(app.state.clone(), shutdown.clone());
        let alice = app.alice.id;

        // order.confirmed → the AUTHORIZED payment is captured, once.
        let a = app.order(&app.alice, 2000);
        let pa = app.intent(&app.alice, a).await;
        let ida = pa["id"].as_str().unwrap().to_string();
        assert_eq!(app.confirm(&app.alice, &ida, "pm_card_visa").await.ok(StatusCode::OK)["status"], "AUTHORIZED");
        let ev = confirmed(a, alice);
        bus.publish(&ev).await.unwrap();
        bus.publish(&ev).await.unwrap();
        wait_for("the capture", || async { status(&app, &ida).await["status"] == "CAPTURED" }).await;
        wait_for("both deliveries handled", || async { claimed(&app).await == 1 && outbox_count(&app.db, "payment.captured").await == 1 }).await;
        let p = status(&app, &ida).await;
        assert_eq!(p["capturedAmount"], 2000);
        let captured: String = with_db!(&app.db, pool => sqlx::query_scalar(
            "SELECT envelope FROM outbox WHERE event_type = 'payment.captured'").fetch_one(pool).await).unwrap();
        let captured: Envelope = serde_json::from_str(&captured).unwrap();
        // The event's capture at the provider makes the simulated provider send its webhook too:
        // whichever of the two reaches the store first moves the payment (once), the other
        // finds it done. Only the event's move is caused by the event.
        let source = p["history"].as_array().unwrap().last().unwrap()["source"].clone();
        assert!(source == "event" || source == "webhook", "{source}");
        if source == "event" {
            assert_eq!(captured.causationid.as_deref(), Some(ev.id.to_string().as_str()));
            assert_eq!(captured.correlationid, ev.correlationid);
        }

        // order.cancelled after capture → the rest is refunded ("order cancelled").
        let b = app.order(&app.alice, 5000);
        let pb = app.intent(&app.alice, b).await;
        let idb = pb["id"].as_str().unwrap().to_string();
        app.confirm(&app.alice, &idb, "pm_card_visa").await.ok(StatusCode::OK);
        app.call(&app.admin, Method::POST, &format!("/api/v1/payments/{idb}/capture"), None, None).await.ok(StatusCode::OK);
        app.call(&app.admin, Method::POST, &format!("/api/v1/payments/{idb}/refund"), Some("part"), Some(json!({"amount": 1200})))
            .await.ok(StatusCode::OK);
        let cancel_b = cancelled(b, alice);
        bus.publish(&cancel_b).await.unwrap();
        bus.publish(&cancel_b).await.unwrap();
        wait_for("the refund", || async { status(&app, &idb).await["status"] == "REFUNDED" }).await;
        let p = status(&app, &idb).await;
        assert_eq!(p["refundedAmount"], 5000);
        let refunds = p["refunds"].as_array().unwrap();
        assert_eq!(refunds.len(), 2);
        assert_eq!(refunds[1]["reason"], "order cancelled");
        assert_eq!(refunds[1]["amount"]["amount"], 3800);

        // order.cancelled before capture → voided, no money event.
        let c = app.order(&app.alice, 900);
        let pc = app.intent(&app.alice, c).await;
        let idc = pc["id"].as_str().unwrap().to_string();
        app.confirm(&app.alice, &idc, "pm_card_visa").await.ok(StatusCode::OK);
        bus.publish(&cancelled(c, alice)).await.unwrap();
        wait_for("the void", || async { status(&app, &idc).await["status"] == "CANCELLED" }).await;
        // A pending (never confirmed) payment is voided too, and an order without payment is fine.
        let d = app.order(&app.alice, 300);
        let pd = app.intent(&app.alice, d).await;
        bus.publish(&cancelled(d, alice)).await.unwrap();
        bus.publish(&cancelled(Uuid::now_v7(), alice)).await.unwrap();
        // order.confirmed for a payment that is not authorised: refused and acknowledged.
        let e = app.order(&app.alice, 400);
        app.intent(&app.alice, e).await;
        bus.publish(&confirmed(e, alice)).await.unwrap();
        wait_for("every event handled", || async { claimed(&app).await == 6 }).await;
        assert_eq!(status(&app, pd["id"].as_str().unwrap()).await["status"], "CANCELLED");
        assert_eq!(outbox_count(&app.db, "payment.refunded").await, 2, "one refund per cancellation + the partial one");
        assert_eq!(outbox_count(&app.db, "payment.captured").await, 2);
        let refunded: Vec<String> = with_db!(&app.db, pool => sqlx::query_scalar(
            "SELECT envelope FROM outbox WHERE event_type = 'payment.refunded' ORDER BY seq").fetch_all(pool).await).unwrap();
        // The admin's partial refund and the cancellation's refund may reach the outbox in
        // either order (the partial one can complete through the provider's webhook): exactly
        // one of them is caused by the cancellation.
        let caused: Vec<Envelope> = refunded.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        let by_cancel = caused.iter().filter(|e| e.causationid.as_deref() == Some(cancel_b.id.to_string().as_str())).count();
        assert_eq!(by_cancel, 1, "{caused:?}");
        assert!(bus.dead_letters().is_empty(), "{:?}", bus.dead_letters());

        // The background task delivered the simulated provider's webhooks; none changed anything.
        wait_for("simulated webhooks delivered", || async {
            count(&app.db, "SELECT COUNT(*) FROM simulated_webhooks WHERE delivered_at IS NULL").await == 0
        }).await;
        assert!(count(&app.db, "SELECT COUNT(*) FROM webhook_events").await >= 10);
        assert_eq!(outbox_count(&app.db, "payment.authorized").await, 3);
        assert_eq!(outbox_count(&app.db, "payment.refunded").await, 2);
        shutdown.cancel();
        consumers.join().await;
        deliveries.await.unwrap();
        sweeper.await.unwrap();
    }
}
