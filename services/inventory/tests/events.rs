//! Event consumers through the in-process bus, on SQLite and PostgreSQL: order.placed reserves
//! (and writes inventory.reserved to the outbox), payment.authorized commits, order.cancelled /
//! payment.failed release, and a redelivered event has no second effect (inbox).

use std::time::Duration;

use kit::db::Db;
use kit::events::contract::sources;
use kit::events::memory::InProcessBus;
use kit::events::payloads::{LineItem, OrderCancelled, OrderPlaced, PaymentAuthorized, PaymentFailed};
use kit::events::{Envelope, EventBus, RetryPolicy};
use kit::money::Money;
use kit::with_db;
use shop_inventory::model::{NewStock, ReservationStatus};
use shop_inventory::{InventoryConfig, InventoryState, Origin};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn count(db: &Db, event_type: &str) -> i64 {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event_type = $1")
        .bind(event_type).fetch_one(pool).await)
    .unwrap()
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn placed(order_id: Uuid, product: Uuid, quantity: u32) -> Envelope {
    Envelope::new(
        sources::ORDER,
        &OrderPlaced {
            order_id,
            user_id: Uuid::now_v7(),
            items: vec![LineItem { product_id: product, quantity, unit_price: None }],
            total: Money::new(1000, "USD"),
            customer_email: None,
            customer_name: None,
        },
    )
    .unwrap()
}

kit::db_tests! { shop_inventory::MIGRATIONS;

    async fn consumers_reserve_commit_release_once(db) {
        let state = InventoryState::new(db.clone(), InventoryConfig::default());
        let store = state.store.clone();
        let product = Uuid::now_v7();
        store.create(&NewStock { product_id: product, sku: "EV-1".into(), quantity: 10, reorder_level: 2, reorder_quantity: 20 },
            &Origin::service()).await.unwrap();
        let bus = InProcessBus::new("", RetryPolicy::default());
        kit::events::register(&bus, shop_inventory::handlers(state.clone())).unwrap();
        let shutdown = CancellationToken::new();
        let consumers = bus.start(shutdown.clone()).await.unwrap();

        // order.placed → reserved, inventory.reserved in the outbox.
        let order = Uuid::now_v7();
        let ev = placed(order, product, 3);
        bus.publish(&ev).await.unwrap();
        wait_for("the reservation", || async { store.reservation(order).await.unwrap().is_some() }).await;
        assert_eq!(store.get(product).await.unwrap().unwrap().available_quantity, 7);
        assert_eq!(count(&db, "inventory.reserved").await, 1);
        let env: String = with_db!(&db, pool => sqlx::query_scalar(
            "SELECT envelope FROM outbox WHERE event_type = 'inventory.reserved'").fetch_one(pool).await).unwrap();
        let env: Envelope = serde_json::from_str(&env).unwrap();
        assert_eq!(env.causationid.as_deref(), Some(ev.id.to_string().as_str()), "caused by order.placed");

        // Redelivery of the same event, then payment.authorized (same key: processed after it).
        bus.publish(&ev).await.unwrap();
        let auth = Envelope::new(sources::PAYMENT, &PaymentAuthorized {
            order_id: order, payment_id: Uuid::now_v7(), amount: Money::new(1000, "USD"), charge_id: None }).unwrap();
        bus.publish(&auth).await.unwrap();
        wait_for("the commit", || async {
            store.reservation(order).await.unwrap().unwrap().status == ReservationStatus::Committed
        }).await;
        bus.publish(&auth).await.unwrap();
        // A later event on the same key proves the redelivery was handled.
        let marker = Uuid::now_v7();
        bus.publish(&placed(marker, product, 1)).await.unwrap();
        wait_for("the marker", || async { store.reservation(marker).await.unwrap().is_some() }).await;
        let s = store.get(product).await.unwrap().unwrap();
        assert_eq!((s.available_quantity, s.reserved_quantity, s.total_quantity), (6, 1, 7), "no second effect");
        assert_eq!(count(&db, "inventory.reserved").await, 2);
        assert_eq!(count(&db, "inventory.committed").await, 1);
        let claimed: i64 = with_db!(&db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM inbox WHERE consumer_group = 'inventory'").fetch_one(pool).await).unwrap();
        assert_eq!(claimed, 3);

        // payment.failed and order.cancelled release (the second is a no-op), shortage fails.
        let failed = Envelope::new(sources::PAYMENT, &PaymentFailed {
            order_id: marker, payment_id: Uuid::now_v7(), amount: Money::new(1, "USD"), reason: "declined".into() }).unwrap();
        bus.publish(&failed).await.unwrap();
        bus.publish(&Envelope::new(sources::ORDER, &OrderCancelled {
            order_id: marker, user_id: Uuid::now_v7(), reason: "payment failed".into(), items: vec![], refund: false }).unwrap()).await.unwrap();
        let short = Uuid::now_v7();
        bus.publish(&placed(short, product, 50)).await.unwrap();
        wait_for("the refusal", || async { count(&db, "inventory.reservation_failed").await == 1 }).await;
        wait_for("the release", || async {
            store.reservation(marker).await.unwrap().unwrap().status == ReservationStatus::Released
        }).await;
        wait_for("both releases handled", || async {
            let n: i64 = with_db!(&db, pool => sqlx::query_scalar(
                "SELECT COUNT(*) FROM inbox WHERE consumer_group = 'inventory'").fetch_one(pool).await).unwrap();
            n == 6
        }).await;
        let s = store.get(product).await.unwrap().unwrap();
        assert_eq!((s.available_quantity, s.reserved_quantity, s.total_quantity), (7, 0, 7));
        assert_eq!(count(&db, "inventory.released").await, 1);
        assert!(bus.dead_letters().is_empty(), "{:?}", bus.dead_letters());
        consumers.stop().await;
    }
}
