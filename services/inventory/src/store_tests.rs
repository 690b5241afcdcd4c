//! Store contract tests, run on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use kit::db::{Db, Timestamp};
use kit::events::Envelope;
use kit::pagination::PageRequest;
use kit::with_db;
use uuid::Uuid;

use crate::model::*;
use crate::store::{Origin, ReserveOutcome, Store, StoreError, Transition};

const TTL: Duration = Duration::from_secs(900);

fn admin() -> Origin {
    Origin::user(Uuid::nil())
}

async fn product(store: &Store, sku: &str, quantity: i64, reorder_level: i64) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create(
            &NewStock { product_id: id, sku: sku.into(), quantity, reorder_level, reorder_quantity: 50 },
            &admin(),
        )
        .await
        .unwrap();
    id
}

fn line(product_id: Uuid, quantity: i64) -> ReservationLine {
    ReservationLine { product_id, quantity }
}

/// Every stock row satisfies available + reserved = total, all ≥ 0, and reserved equals the
/// sum of active reservation lines.
async fn check_invariants(db: &Db) {
    let rows: Vec<(Uuid, i64, i64, i64)> = with_db!(db, pool => sqlx::query_as(
        "SELECT product_id, available_quantity, reserved_quantity, total_quantity FROM stock")
        .fetch_all(pool).await)
    .unwrap();
    for (id, a, r, t) in rows {
        assert!(a >= 0 && r >= 0 && t >= 0, "{id}: {a} {r} {t}");
        assert_eq!(a + r, t, "{id}: available {a} + reserved {r} != total {t}");
        let held: i64 = with_db!(db, pool => sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM reservation_items i JOIN reservations r ON r.id = i.reservation_id \
             WHERE r.status = 'ACTIVE' AND i.product_id = $1")
            .bind(id).fetch_one(pool).await)
        .unwrap();
        assert_eq!(held, r, "{id}: reserved {r} but active reservations hold {held}");
    }
}

async fn outbox_types(db: &Db) -> Vec<String> {
    with_db!(db, pool => sqlx::query_scalar("SELECT event_type FROM outbox ORDER BY seq").fetch_all(pool).await)
        .unwrap()
}

async fn stock(store: &Store, id: Uuid) -> Stock {
    store.get(id).await.unwrap().unwrap()
}

fn created(o: ReserveOutcome) -> Reservation {
    match o {
        ReserveOutcome::Created(r) => r,
        other => panic!("expected a new reservation, got {other:?}"),
    }
}

kit::db_tests! { crate::MIGRATIONS;

    async fn reserve_commit_release_lifecycle(db) {
        let store = Store::new(db.clone(), TTL);
        let a = product(&store, "A-1", 10, 2).await;
        let b = product(&store, "B-1", 5, 1).await;
        let order = Uuid::now_v7();
        // Lines summed per product.
        let items = vec![line(a, 2), line(b, 1), line(a, 1)];
        let r = created(store.reserve(order, &items, &admin()).await.unwrap());
        assert_eq!(r.status, ReservationStatus::Active);
        assert_eq!(r.items.iter().find(|l| l.product_id == a).unwrap().quantity, 3);
        let sa = stock(&store, a).await;
        assert_eq!((sa.available_quantity, sa.reserved_quantity, sa.total_quantity), (7, 3, 10));
        check_invariants(&db).await;

        // Repeat: same answer, no second effect.
        match store.reserve(order, &items, &admin()).await.unwrap() {
            ReserveOutcome::Existing(e) => assert_eq!(e.id, r.id),
            other => panic!("{other:?}"),
        }
        assert_eq!(stock(&store, a).await.available_quantity, 7);
        // Same order, other lines: refused.
        let err = store.reserve(order, &[line(a, 1)], &admin()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::ReservationMismatch, .. }), "{err:?}");

        // Commit: reserved ↓, total ↓; repeat unchanged.
        let c = store.commit(order, &admin()).await.unwrap();
        assert!(matches!(&c, Transition::Done(r) if r.status == ReservationStatus::Committed), "{c:?}");
        let sa = stock(&store, a).await;
        assert_eq!((sa.available_quantity, sa.reserved_quantity, sa.total_quantity), (7, 0, 7));
        assert!(matches!(store.commit(order, &admin()).await.unwrap(), Transition::Unchanged(_)));
        assert_eq!(stock(&store, a).await.total_quantity, 7);
        // Release after commit → 409.
        let err = store.release(order, "cancel", &admin()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::ReservationCommitted, .. }), "{err:?}");
        check_invariants(&db).await;

        // Release path.
        let order2 = Uuid::now_v7();
        created(store.reserve(order2, &[line(b, 4)], &admin()).await.unwrap());
        assert_eq!(stock(&store, b).await.available_quantity, 0);
        let rel = store.release(order2, "order cancelled", &admin()).await.unwrap();
        assert!(matches!(&rel, Transition::Done(r) if r.status == ReservationStatus::Released), "{rel:?}");
        let sb = stock(&store, b).await;
        assert_eq!((sb.available_quantity, sb.reserved_quantity, sb.total_quantity), (4, 0, 4));
        assert!(matches!(store.release(order2, "again", &admin()).await.unwrap(), Transition::Unchanged(_)));
        assert_eq!(stock(&store, b).await.available_quantity, 4);
        let err = store.commit(order2, &admin()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::ReservationReleased, .. }), "{err:?}");
        let err = store.reserve(order2, &[line(b, 4)], &admin()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::ReservationClosed, .. }), "{err:?}");
        assert!(matches!(store.commit(Uuid::now_v7(), &admin()).await.unwrap_err(), StoreError::NotFound(_)));
        check_invariants(&db).await;

        let types = outbox_types(&db).await;
        for t in ["inventory.reserved", "inventory.committed", "inventory.released"] {
            assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
        }
        assert_eq!(types.iter().filter(|t| *t == "inventory.reserved").count(), 2, "{types:?}");
        assert_eq!(types.iter().filter(|t| *t == "inventory.committed").count(), 1, "{types:?}");
        assert_eq!(types.iter().filter(|t| *t == "inventory.released").count(), 1, "{types:?}");
    }

    async fn committed_units_return_to_stock_once(db) {
        let store = Store::new(db.clone(), TTL);
        let a = product(&store, "R-1", 10, 0).await;
        let order = Uuid::now_v7();
        created(store.reserve(order, &[line(a, 3)], &admin()).await.unwrap());
        // Nothing committed yet: returning is refused, release is the way.
        let err = store.restock(order, "cancel", &admin()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::ReservationNotCommitted, .. }), "{err:?}");
        store.commit(order, &admin()).await.unwrap();
        assert_eq!(stock(&store, a).await.total_quantity, 7);
        // Cancel after payment: release_or_restock returns the units, once.
        let t = store.release_or_restock(order, "order cancelled: changed mind", &admin()).await.unwrap();
        assert!(matches!(&t, Transition::Done(r) if r.returned_at.is_some()), "{t:?}");
        let s = stock(&store, a).await;
        assert_eq!((s.available_quantity, s.reserved_quantity, s.total_quantity), (10, 0, 10));
        let again = store.release_or_restock(order, "again", &admin()).await.unwrap();
        assert!(matches!(again, Transition::Unchanged(_)), "{again:?}");
        assert_eq!(stock(&store, a).await.total_quantity, 10);
        check_invariants(&db).await;
        let (trail, _) = store.transactions(a, PageRequest { page: 1, page_size: 50 }).await.unwrap();
        assert!(trail.iter().any(|t| t.ty == TransactionType::Return && t.quantity == 3), "{trail:?}");
    }

    async fn reserve_is_all_or_nothing(db) {
        let store = Store::new(db.clone(), TTL);
        let a = product(&store, "A-1", 10, 0).await;
        let b = product(&store, "B-1", 2, 0).await;
        let missing = Uuid::now_v7();
        let order = Uuid::now_v7();
        match store.reserve(order, &[line(a, 5), line(b, 3), line(missing, 1)], &admin()).await.unwrap() {
            ReserveOutcome::Insufficient(short) => {
                let mut ids: Vec<Uuid> = short.iter().map(|s| s.product_id).collect();
                ids.sort();
                let mut want = vec![b, missing];
                want.sort();
                assert_eq!(ids, want);
                let sb = short.iter().find(|s| s.product_id == b).unwrap();
                assert_eq!((sb.requested, sb.available), (3, 2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stock(&store, a).await.available_quantity, 10, "nothing reserved");
        assert_eq!(stock(&store, b).await.available_quantity, 2);
        assert!(store.reservation(order).await.unwrap().is_none());
        let (tx, _) = store.transactions(a, PageRequest { page: 1, page_size: 50 }).await.unwrap();
        assert!(tx.iter().all(|t| t.ty != TransactionType::Reservation), "no audit row of the undone work");
        assert_eq!(outbox_types(&db).await, vec!["inventory.reservation_failed"]);
        check_invariants(&db).await;
        // Invalid lines.
        assert!(matches!(store.reserve(order, &[], &admin()).await.unwrap_err(), StoreError::Invalid(_)));
        assert!(matches!(store.reserve(order, &[line(a, 0)], &admin()).await.unwrap_err(), StoreError::Invalid(_)));
    }

    async fn expired_reservations_are_swept(db) {
        let store = Store::new(db.clone(), Duration::from_secs(60));
        let a = product(&store, "A-1", 10, 0).await;
        let (o1, o2) = (Uuid::now_v7(), Uuid::now_v7());
        created(store.reserve(o1, &[line(a, 3)], &admin()).await.unwrap());
        created(store.reserve(o2, &[line(a, 2)], &admin()).await.unwrap());
        store.commit(o2, &admin()).await.unwrap();
        // Not due yet.
        assert_eq!(store.sweep_expired(Timestamp::now()).await.unwrap(), 0);
        let later = Timestamp::now() + Duration::from_secs(61);
        assert_eq!(store.sweep_expired(later).await.unwrap(), 1);
        assert_eq!(store.sweep_expired(later).await.unwrap(), 0, "idempotent");
        let r = store.reservation(o1).await.unwrap().unwrap();
        assert_eq!(r.status, ReservationStatus::Expired);
        assert_eq!(r.reason.as_deref(), Some("expired"));
        let s = stock(&store, a).await;
        assert_eq!((s.available_quantity, s.reserved_quantity, s.total_quantity), (8, 0, 8));
        // Release after expiry: unchanged; commit after expiry: 409.
        assert!(matches!(store.release(o1, "cancel", &admin()).await.unwrap(), Transition::Unchanged(_)));
        assert!(matches!(store.commit(o1, &admin()).await.unwrap_err(), StoreError::Conflict { .. }));
        let (tx, _) = store.transactions(a, PageRequest { page: 1, page_size: 50 }).await.unwrap();
        assert_eq!(tx[0].ty, TransactionType::Expiry);
        assert_eq!(tx[0].quantity, 3);
        assert_eq!(tx[0].actor, "system:sweeper");
        check_invariants(&db).await;
    }

    async fn adjustments_and_audit_trail(db) {
        let store = Store::new(db.clone(), TTL);
        let a = product(&store, "A-1", 10, 3).await;
        let adj = |ty, quantity| AdjustRequest { ty, quantity, reference: Some("PO-7".into()), reason: None };
        let s = store.adjust(a, &adj(TransactionType::Purchase, 5), &admin()).await.unwrap();
        assert_eq!((s.available_quantity, s.total_quantity), (15, 15));
        let s = store.adjust(a, &adj(TransactionType::Damage, 4), &admin()).await.unwrap();
        assert_eq!(s.available_quantity, 11);
        let s = store.adjust(a, &adj(TransactionType::Adjustment, -1), &admin()).await.unwrap();
        assert_eq!(s.available_quantity, 10);
        let err = store.adjust(a, &adj(TransactionType::Sale, 11), &admin()).await.unwrap_err();
        assert!(matches!(&err, StoreError::Refused(crate::store::Shortfall(s)) if s[0].available == 10), "{err:?}");
        assert!(matches!(store.adjust(a, &adj(TransactionType::Purchase, -1), &admin()).await.unwrap_err(), StoreError::Invalid(_)));
        assert!(matches!(store.adjust(a, &adj(TransactionType::Reservation, 1), &admin()).await.unwrap_err(), StoreError::Invalid(_)));
        assert!(matches!(store.adjust(Uuid::now_v7(), &adj(TransactionType::Purchase, 1), &admin()).await.unwrap_err(), StoreError::NotFound(_)));
        created(store.reserve(Uuid::now_v7(), &[line(a, 2)], &admin()).await.unwrap());
        let (tx, total) = store.transactions(a, PageRequest { page: 1, page_size: 50 }).await.unwrap();
        assert_eq!(total, 5);
        let kinds: Vec<(TransactionType, i64, i64)> = tx.iter().map(|t| (t.ty, t.quantity, t.available_after)).collect();
        assert_eq!(kinds, vec![
            (TransactionType::Reservation, -2, 8),
            (TransactionType::Adjustment, -1, 10),
            (TransactionType::Damage, -4, 11),
            (TransactionType::Purchase, 5, 15),
            (TransactionType::Adjustment, 10, 10),
        ]);
        assert_eq!(tx[1].reference.as_deref(), Some("PO-7"));
        assert_eq!(tx[0].reserved_after, 2);
        assert_eq!(tx[0].total_after, 10);
        // Duplicate row and settings.
        let dup = store.create(&NewStock { product_id: a, sku: "X".into(), quantity: 1, reorder_level: 1, reorder_quantity: 1 }, &admin()).await;
        assert!(matches!(dup.unwrap_err(), StoreError::Conflict { code: kit::problem::ErrorCode::StockExists, .. }));
        let s = store.update_settings(a, &StockSettings { reorder_level: Some(9), ..Default::default() }).await.unwrap();
        assert_eq!((s.sku.as_str(), s.reorder_level, s.low_stock), ("A-1", 9, true));
        let (low, n) = store.list(true, PageRequest { page: 1, page_size: 10 }).await.unwrap();
        assert_eq!((low.len(), n), (1, 1));
        check_invariants(&db).await;
    }

    async fn low_stock_event_when_crossing_the_reorder_level(db) {
        let store = Store::new(db.clone(), TTL);
        let a = product(&store, "A-1", 10, 5).await;
        created(store.reserve(Uuid::now_v7(), &[line(a, 4)], &admin()).await.unwrap());
        assert!(!outbox_types(&db).await.contains(&"inventory.low_stock".to_string()), "6 > 5: not yet");
        created(store.reserve(Uuid::now_v7(), &[line(a, 1)], &admin()).await.unwrap());
        created(store.reserve(Uuid::now_v7(), &[line(a, 1)], &admin()).await.unwrap());
        let types = outbox_types(&db).await;
        assert_eq!(types.iter().filter(|t| *t == "inventory.low_stock").count(), 1, "only on crossing: {types:?}");
        let env: String = with_db!(&db, pool => sqlx::query_scalar(
            "SELECT envelope FROM outbox WHERE event_type = 'inventory.low_stock'").fetch_one(pool).await).unwrap();
        let env: Envelope = serde_json::from_str(&env).unwrap();
        let low: kit::events::payloads::InventoryLowStock = env.decode().unwrap();
        assert_eq!((low.product_id, low.available, low.threshold), (a, 5, 5));
        // An adjustment crossing it again after a refill.
        store.adjust(a, &AdjustRequest { ty: TransactionType::Purchase, quantity: 10, reference: None, reason: None }, &admin()).await.unwrap();
        store.adjust(a, &AdjustRequest { ty: TransactionType::Damage, quantity: 12, reference: None, reason: None }, &admin()).await.unwrap();
        let types = outbox_types(&db).await;
        assert_eq!(types.iter().filter(|t| *t == "inventory.low_stock").count(), 2, "{types:?}");
        check_invariants(&db).await;
    }

    async fn concurrent_reservations_never_oversell(db) {
        let store = Store::new(db.clone(), TTL);
        let a = product(&store, "HOT-1", 10, 0).await;
        let store = Arc::new(store);
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.reserve(Uuid::now_v7(), &[line(a, 1)], &Origin::service()).await })
            })
            .collect();
        let (mut ok, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(ReserveOutcome::Created(_)) => ok += 1,
                Ok(ReserveOutcome::Insufficient(_)) => refused += 1,
                other => panic!("unexpected outcome: {other:?}"),
            }
        }
        eprintln!("{:?}: 1000 concurrent reservations in {:?}", db.backend(), started.elapsed());
        assert_eq!((ok, refused), (10, 990));
        let s = stock(&store, a).await;
        assert_eq!((s.available_quantity, s.reserved_quantity, s.total_quantity), (0, 10, 10));
        check_invariants(&db).await;
        let types = outbox_types(&db).await;
        assert_eq!(types.iter().filter(|t| *t == "inventory.reserved").count(), 10);
        assert_eq!(types.iter().filter(|t| *t == "inventory.reservation_failed").count(), 990);
    }

    async fn concurrent_repeats_of_one_order_reserve_once(db) {
        let store = Arc::new(Store::new(db.clone(), TTL));
        let a = product(&store, "A-1", 100, 0).await;
        let order = Uuid::now_v7();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.reserve(order, &[line(a, 3)], &Origin::service()).await })
            })
            .collect();
        let mut created_n = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                ReserveOutcome::Created(_) => created_n += 1,
                ReserveOutcome::Existing(_) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(created_n, 1);
        assert_eq!(stock(&store, a).await.available_quantity, 97);
        check_invariants(&db).await;
    }

    async fn seed_is_idempotent(db) {
        let products: Vec<crate::seed::SeedProduct> = (0..600)
            .map(|i| crate::seed::SeedProduct { id: Uuid::now_v7(), sku: format!("SKU-{i:04}") })
            .collect();
        let r = crate::seed(&db, &products).await.unwrap();
        assert_eq!(r.stock, 600);
        assert_eq!(crate::seed(&db, &products).await.unwrap().stock, 0);
        let store = Store::new(db.clone(), TTL);
        let (_, low) = store.list(true, PageRequest { page: 1, page_size: 10 }).await.unwrap();
        let (_, all) = store.list(false, PageRequest { page: 1, page_size: 10 }).await.unwrap();
        assert_eq!(all, 600);
        assert!(low > 30 && low < 200, "some low stock: {low}");
        let zero: i64 = with_db!(&db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM stock WHERE available_quantity = 0")
            .fetch_one(pool).await).unwrap();
        assert!(zero > 5 && zero < 60, "a few sold out: {zero}");
        let first = products[0].id;
        assert!(store.get(first).await.unwrap().is_some());
        check_invariants(&db).await;
    }
}
