//! Store contract tests, run on SQLite and PostgreSQL.

use kit::db::Db;
use kit::money::Money;
use kit::pagination::PageRequest;
use kit::with_db;
use uuid::Uuid;

use crate::model::*;
use crate::store::{Actor, NewOrder, Patch, Store, StoreError, Transitioned, UnpaidLimits};

fn address() -> Address {
    Address {
        name: "Ada".into(),
        line1: "1 Road".into(),
        line2: None,
        city: "Town".into(),
        state: None,
        postal_code: "12345".into(),
        country: "US".into(),
        phone: None,
    }
}

fn new_order(user: Uuid, key: Option<&str>) -> NewOrder {
    let price = Money::new(1250, "USD");
    NewOrder {
        id: Uuid::now_v7(),
        user_id: user,
        items: vec![OrderItem {
            product_id: Uuid::now_v7(),
            sku: "SKU-1".into(),
            name: "Thing".into(),
            quantity: 2,
            unit_price: price.clone(),
            line_total: Money::new(2500, "USD"),
        }],
        subtotal: Money::new(2500, "USD"),
        shipping_cost: Money::new(599, "USD"),
        tax: Money::new(0, "USD"),
        total: Money::new(3099, "USD"),
        shipping_method: "standard".into(),
        shipping_address: address(),
        customer_email: Some("ada@example.com".into()),
        notes: None,
        idempotency_key: key.map(str::to_string),
    }
}

async fn outbox_types(db: &Db) -> Vec<String> {
    with_db!(db, pool => sqlx::query_scalar("SELECT event_type FROM outbox ORDER BY seq").fetch_all(pool).await)
        .unwrap()
}

kit::db_tests! { crate::MIGRATIONS;

    async fn search_by_customer_email_and_summary(db) {
        let store = Store::new(db.clone());
        let page = PageRequest { page: 1, page_size: 10 };
        let before = kit::db::Timestamp::now();
        let ada = store.insert(&new_order(Uuid::now_v7(), None)).await.unwrap().unwrap();
        let mut grace = new_order(Uuid::now_v7(), None);
        grace.customer_email = Some("grace_h%@example.org".into());
        let grace = store.insert(&grace).await.unwrap().unwrap();
        let mut anonymous = new_order(Uuid::now_v7(), None);
        anonymous.customer_email = None;
        store.insert(&anonymous).await.unwrap().unwrap();
        assert_eq!(ada.customer_email.as_deref(), Some("ada@example.com"));

        let search = |email: &str| crate::store::OrderFilter { email: Some(email.into()), ..Default::default() };
        let ids = |found: Vec<Order>| found.into_iter().map(|o| o.id).collect::<Vec<_>>();
        let (found, total) = store.list_filtered(&search("ADA@"), page).await.unwrap();
        assert_eq!((ids(found), total), (vec![ada.id], 1), "case-insensitive substring");
        let (found, _) = store.list_filtered(&search("example"), page).await.unwrap();
        assert_eq!(ids(found), [grace.id, ada.id]);
        let (found, _) = store.list_filtered(&search("h%@"), page).await.unwrap();
        assert_eq!(ids(found), [grace.id], "% is literal");
        let (found, _) = store.list_filtered(&search("a_a"), page).await.unwrap();
        assert!(found.is_empty(), "_ is literal");

        // Paid, then partly refunded: revenue counts what was kept.
        store.transition(ada.id, OrderStatus::AwaitingPayment, None, &Actor::system("t"), None, Patch::default()).await.unwrap();
        store.transition(ada.id, OrderStatus::Paid, None, &Actor::system("t"), None, Patch::default()).await.unwrap();
        with_db!(&db, pool => sqlx::query("UPDATE orders SET refunded_amount = 99 WHERE id = $1").bind(ada.id).execute(pool).await.map(|_| ())).unwrap();
        let (by_status, revenue) = store.summary(Some(before), None).await.unwrap();
        assert_eq!(by_status, [("PAID".to_string(), 1), ("PENDING".to_string(), 2)]);
        assert_eq!(revenue, [("USD".to_string(), 3000)]);
        let later = kit::db::Timestamp::from(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
        let (by_status, revenue) = store.summary(Some(later), None).await.unwrap();
        assert!(by_status.is_empty() && revenue.is_empty());
        let (by_status, _) = store.summary(None, Some(before)).await.unwrap();
        assert!(by_status.is_empty(), "nothing before the first order");
    }

    async fn lifecycle_history_and_events(db) {
        let store = Store::new(db.clone());
        let user = Uuid::now_v7();
        let o = store.insert(&new_order(user, Some("k1"))).await.unwrap().unwrap();
        assert_eq!(o.status, OrderStatus::Pending);
        assert_eq!(o.shipment.as_ref().map(|s| s.status), Some(ShipmentStatus::PendingPayment), "a draft shipment");
        assert_eq!(o.total, Money::new(3099, "USD"));
        // Same idempotency key: the same order's id.
        assert_eq!(store.insert(&new_order(user, Some("k1"))).await.unwrap().unwrap_err(), o.id);

        let sys = Actor::system("test");
        for to in [OrderStatus::AwaitingPayment, OrderStatus::Paid, OrderStatus::Shipped, OrderStatus::Delivered] {
            let patch = Patch {
                carrier: (to == OrderStatus::Shipped).then(|| "UPS".into()),
                tracking_number: (to == OrderStatus::Shipped).then(|| "1Z999".into()),
                ..Default::default()
            };
            let t = store.transition(o.id, to, None, &sys, Some("step"), patch).await.unwrap();
            assert!(matches!(&t, Transitioned::Done(x) if x.status == to), "{t:?}");
        }
        // Repeating the last step writes nothing.
        let again = store.transition(o.id, OrderStatus::Delivered, None, &sys, None, Patch::default()).await.unwrap();
        assert!(matches!(again, Transitioned::Already(_)));
        // Terminal: cancel refused.
        let err = store.transition(o.id, OrderStatus::Cancelled, None, &sys, None, Patch::default()).await.unwrap_err();
        assert!(matches!(err, StoreError::Refused(crate::store::IllegalTransition { from: OrderStatus::Delivered, to: OrderStatus::Cancelled })), "{err:?}");

        let o = store.get(o.id).await.unwrap().unwrap();
        assert_eq!(o.carrier.as_deref(), Some("UPS"));
        let shipment = o.shipment.clone().unwrap();
        assert_eq!(shipment.status, ShipmentStatus::Delivered);
        assert_eq!((shipment.carrier.as_deref(), shipment.tracking_number.as_deref()), (Some("UPS"), Some("1Z999")));
        assert!(shipment.shipped_at.is_some() && shipment.delivered_at.is_some());
        assert!(o.paid_at.is_some() && o.shipped_at.is_some() && o.delivered_at.is_some());
        let h = o.history.unwrap();
        let path: Vec<_> = h.iter().map(|e| e.to).collect();
        assert_eq!(path, [OrderStatus::Pending, OrderStatus::AwaitingPayment, OrderStatus::Paid, OrderStatus::Shipped, OrderStatus::Delivered]);
        assert_eq!(h[1].from, Some(OrderStatus::Pending));
        assert_eq!(h[1].actor, "system:test");

        let types = outbox_types(&db).await;
        assert_eq!(types.iter().filter(|t| *t == "order.status_changed").count(), 4, "{types:?}");
        for t in ["order.placed", "order.confirmed", "order.shipped", "order.delivered", "shipment.shipped", "shipment.delivered"] {
            assert_eq!(types.iter().filter(|x| *x == t).count(), 1, "{t} in {types:?}");
        }

        // Listing: own orders only, status filter.
        let other = store.insert(&new_order(Uuid::now_v7(), None)).await.unwrap().unwrap();
        let page = PageRequest { page: 1, page_size: 10 };
        let (mine, total) = store.list(Some(user), None, page).await.unwrap();
        assert_eq!((mine.len(), total), (1, 1));
        let (all, _) = store.list(None, None, page).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, other.id, "newest first");
        let (pending, _) = store.list(None, Some(OrderStatus::Pending), page).await.unwrap();
        assert_eq!(pending.iter().map(|o| o.id).collect::<Vec<_>>(), [other.id]);
    }

    async fn racing_transitions_make_one(db) {
        let store = Store::new(db.clone());
        let o = store.insert(&new_order(Uuid::now_v7(), None)).await.unwrap().unwrap();
        store.transition(o.id, OrderStatus::AwaitingPayment, None, &Actor::system("t"), None, Patch::default()).await.unwrap();
        // Payment and expiry race: PAID vs CANCELLED, many times each.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            let to = if i % 2 == 0 { OrderStatus::Paid } else { OrderStatus::Cancelled };
            tasks.push(tokio::spawn(async move {
                store.transition(o.id, to, Some(&[OrderStatus::AwaitingPayment]), &Actor::system("race"), None, Patch::default()).await
            }));
        }
        let mut done = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Transitioned::Done(_)) => done += 1,
                Ok(Transitioned::Already(_)) | Err(StoreError::Refused(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(done, 1);
        let after = store.get(o.id).await.unwrap().unwrap();
        let expected = if after.status == OrderStatus::Paid { ShipmentStatus::Ready } else { ShipmentStatus::Cancelled };
        assert_eq!(after.shipment.unwrap().status, expected);
        let h = store.get(o.id).await.unwrap().unwrap().history.unwrap();
        assert_eq!(h.len(), 3, "{h:?}");
        let changed = outbox_types(&db).await.iter().filter(|t| *t == "order.status_changed").count();
        assert_eq!(changed, 2);
    }

    async fn refunds_count_once_per_event(db) {
        let store = Store::new(db.clone());
        let o = store.insert(&new_order(Uuid::now_v7(), None)).await.unwrap().unwrap();
        let payment = Uuid::now_v7();
        let ev = kit::events::Envelope::new(
            kit::events::contract::sources::PAYMENT,
            &kit::events::payloads::PaymentRefunded {
                order_id: o.id, payment_id: payment, amount: Money::new(1000, "USD"), refund_id: Uuid::now_v7(),
            },
        ).unwrap();
        store.record_refund(&ev, o.id, payment, 1000).await.unwrap();
        store.record_refund(&ev, o.id, payment, 1000).await.unwrap();
        let o2 = store.get(o.id).await.unwrap().unwrap();
        assert_eq!(o2.refunded_amount.amount, 1000);
        assert_eq!(o2.payment_status.as_deref(), Some("PARTIALLY_REFUNDED"));
    }

    async fn unpaid_orders_and_units_are_capped_per_customer(db) {
        let limits = UnpaidLimits { orders: Some(3), units: Some(10) };
        let store = Store::new(db.clone()).with_unpaid_limits(limits);
        let ada = Uuid::now_v7();
        let code = |r: Result<_, StoreError>| match r {
            Err(StoreError::Conflict { code, .. }) => code.as_str(),
            other => panic!("{other:?}"),
        };
        let mut placed = Vec::new();
        for _ in 0..3 {
            placed.push(store.insert(&new_order(ada, None)).await.unwrap().unwrap());
        }
        // The fourth unpaid order is refused; nothing of it is stored.
        let fourth = new_order(ada, None);
        assert_eq!(code(store.insert(&fourth).await), "unpaid_order_limit");
        assert!(store.get(fourth.id).await.unwrap().is_none());
        // Another customer is not concerned.
        store.insert(&new_order(Uuid::now_v7(), None)).await.unwrap().unwrap();
        // Paid (or cancelled) orders free their place.
        let sys = Actor::system("test");
        store.transition(placed[0].id, OrderStatus::AwaitingPayment, None, &sys, None, Patch::default()).await.unwrap();
        store.transition(placed[0].id, OrderStatus::Paid, None, &sys, None, Patch::default()).await.unwrap();
        store.transition(placed[1].id, OrderStatus::Cancelled, None, &sys, None, Patch::default()).await.unwrap();
        // One unpaid order of 2 units is left; 9 more would make 11 > 10.
        let mut big = new_order(ada, None);
        big.items[0].quantity = 9;
        assert_eq!(code(store.insert(&big).await), "unpaid_unit_limit");
        big.items[0].quantity = 6;
        big.id = Uuid::now_v7();
        store.insert(&big).await.unwrap().unwrap();
        // Three unpaid orders (10 units) again: a replayed Idempotency-Key still answers with its
        // order; a new order is refused.
        let keyed = store.insert(&new_order(ada, Some("k-limit"))).await.unwrap().unwrap();
        assert_eq!(store.insert(&new_order(ada, Some("k-limit"))).await.unwrap().unwrap_err(), keyed.id);
        assert_eq!(code(store.insert(&new_order(ada, None)).await), "unpaid_order_limit");
    }

    async fn racing_placements_cannot_pass_the_limit(db) {
        let store = Store::new(db.clone()).with_unpaid_limits(UnpaidLimits { orders: Some(3), units: None });
        let ada = Uuid::now_v7();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.insert(&new_order(ada, None)).await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Ok(_)) => ok += 1,
                Err(StoreError::Conflict { code, .. }) => assert_eq!(code.as_str(), "unpaid_order_limit"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ok, 3, "exactly the limit was placed");
    }
}
