//! The transactional outbox and its relay, on both SQL backends, with the in-process bus (and
//! its fault injection standing in for a broker that is down).

#[path = "events_support.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kit::db::{Backend, Db};
use kit::events::memory::InProcessBus;
use kit::events::outbox::{self, Relay, RelayConfig};
use kit::events::{contract, handler_fn, inbox, Envelope, EventBus, RetryPolicy};
use kit::health::Check;
use support::*;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn relay_config() -> RelayConfig {
    RelayConfig {
        batch_size: 50,
        poll_interval: Duration::from_millis(50),
        retry: RetryPolicy {
            max_attempts: u32::MAX,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        ..Default::default()
    }
}

/// Writes an order row and its event in one transaction; rolls back when `commit` is false.
async fn place(db: &Db, ev: &Envelope, commit: bool) {
    kit::with_db!(db, pool => {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO orders (id) VALUES ($1)").bind(ev.id.to_string()).execute(&mut *tx).await.unwrap();
        outbox::enqueue(&mut *tx, ev).await.unwrap();
        if commit { tx.commit().await.unwrap() } else { tx.rollback().await.unwrap() }
    })
}

async fn count(db: &Db, sql: &str) -> i64 {
    kit::with_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await).unwrap()
}

async fn drain(relay: &Relay) {
    for _ in 0..200 {
        if relay.pending().await.unwrap() == 0 {
            return;
        }
        relay.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("outbox not drained");
}

/// Per key, the bus log must hold the events in `n` order.
fn assert_in_order(events: &[Envelope]) {
    let mut per_key: HashMap<&str, Vec<i64>> = HashMap::new();
    for e in events {
        per_key.entry(&e.subject).or_default().push(n_of(e));
    }
    for (k, ns) in per_key {
        let mut sorted = ns.clone();
        sorted.sort();
        assert_eq!(ns, sorted, "key {k}");
    }
}

kit::db_tests! { MIGRATIONS;
    async fn outbox_rows_are_written_in_the_callers_transaction(db) {
        let key = Uuid::now_v7();
        place(&db, &event(key, 0), false).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox").await, 0, "rolled back: no event");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM orders").await, 0);
        let ev = event(key, 1);
        place(&db, &ev, true).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL").await, 1);
        let stored: String = kit::with_db!(&db, pool => sqlx::query_scalar("SELECT envelope FROM outbox")
            .fetch_one(pool).await).unwrap();
        let back: Envelope = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, ev);
    }

    async fn relay_publishes_in_order_and_deletes_what_it_published(db) {
        let bus = InProcessBus::new("", fast_retry());
        let relay = Relay::new(db.clone(), Arc::new(bus.clone()), relay_config());
        let keys: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for n in 0..10 {
            for k in &keys {
                place(&db, &event(*k, n), true).await;
            }
        }
        drain(&relay).await;
        let events = bus.events(contract::topics::INVENTORY);
        assert_eq!(events.len(), 30, "each row published once");
        assert_in_order(&events);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox").await, 0, "published rows leave the table");
        // Rows an earlier relay marked sent and kept go once the retention period passed.
        kit::with_db!(&db, pool => sqlx::query(
            "INSERT INTO outbox (event_id, event_type, topic, message_key, envelope, created_at_ms, sent_at_ms) \
             VALUES ($1, 't', 't', 'k', '{}', 1, 1)").bind(Uuid::now_v7()).execute(pool).await.map(|_| ())).unwrap();
        let relay = Relay::new(db.clone(), Arc::new(bus), RelayConfig { retention: Duration::ZERO, ..relay_config() });
        assert_eq!(relay.pending().await.unwrap(), 0, "a sent row is not pending");
        assert_eq!(relay.run_once().await.unwrap().published, 0, "nor published again");
        assert_eq!(relay.cleanup().await.unwrap(), 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox").await, 0);
    }

    async fn a_failed_publish_keeps_the_row_pending_until_delivered(db) {
        let bus = InProcessBus::new("", fast_retry());
        let relay = Relay::new(db.clone(), Arc::new(bus.clone()), relay_config());
        let key = Uuid::now_v7();
        for n in 0..5 {
            place(&db, &event(key, n), true).await;
        }
        bus.set_available(false);
        let r = relay.run_once().await.unwrap();
        assert_eq!(r.published, 0);
        assert!(r.failed >= 1, "{r:?}");
        assert_eq!(relay.pending().await.unwrap(), 5, "nothing lost, nothing marked sent");
        let err: Option<String> = kit::with_db!(&db, pool => sqlx::query_scalar(
            "SELECT last_error FROM outbox ORDER BY seq LIMIT 1").fetch_one(pool).await).unwrap();
        assert!(err.unwrap().contains("unavailable"));
        bus.set_available(true);
        drain(&relay).await;
        let events = bus.events(contract::topics::INVENTORY);
        assert_eq!(events.iter().map(n_of).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    }

    async fn broker_outage_loses_nothing_and_the_inbox_makes_it_exactly_once(db) {
        let bus = InProcessBus::new("", fast_retry());
        let shutdown = CancellationToken::new();
        let relay = Relay::new(db.clone(), Arc::new(bus.clone()), relay_config());
        let waker = relay.waker();
        let health = relay.health();
        let relay_task = relay.spawn(shutdown.clone());
        let g = group();
        let handler = {
            let (db, g) = (db.clone(), g.clone());
            handler_fn(move |ev: Envelope| {
                let (db, g) = (db.clone(), g.clone());
                async move {
                    kit::with_db!(&db, pool => {
                        let mut tx = pool.begin().await?;
                        if inbox::claim(&mut *tx, &g, ev.id).await? {
                            sqlx::query("INSERT INTO effects (consumer_group, event_id, message_key, n) VALUES ($1, $2, $3, $4)")
                                .bind(&g).bind(ev.id.to_string()).bind(&ev.subject).bind(n_of(&ev))
                                .execute(&mut *tx).await?;
                        }
                        tx.commit().await?;
                    });
                    Ok(())
                }
            })
        };
        bus.subscribe(&g, &[contract::topics::INVENTORY], handler).unwrap();
        let consumers = bus.start(shutdown.clone()).await.unwrap();
        let keys: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        for n in 0..40 {
            if n == 10 {
                bus.set_available(false); // the broker goes down while events are written
            }
            if n == 30 {
                bus.set_available(true);
            }
            place(&db, &event(keys[n as usize % 4], n), true).await;
            waker.wake();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        wait_until(WAIT, "40 effects", || async {
            count(&db, "SELECT COUNT(*) FROM effects").await == 40
        }).await;
        wait_until(WAIT, "relay ready", || async { health.check().await.is_ok() }).await;
        let published = bus.events(contract::topics::INVENTORY);
        assert_eq!(published.len(), 40, "each row published once");
        assert_in_order(&published);
        // Simulate a relay that re-publishes everything (e.g. acks lost): no second effect.
        for e in &published {
            bus.publish(e).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM effects").await, 40);
        assert_eq!(count(&db, "SELECT COUNT(DISTINCT event_id) FROM effects").await, 40);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL").await, 0);
        shutdown.cancel();
        consumers.join().await;
        relay_task.await.unwrap();
        assert!(health.check().await.is_err(), "a stopped relay is not ready");
    }

    async fn the_relay_wakes_promptly_on_new_rows(db) {
        let bus = InProcessBus::new("", fast_retry());
        let shutdown = CancellationToken::new();
        let relay = Relay::new(db.clone(), Arc::new(bus.clone()),
            RelayConfig { poll_interval: Duration::from_secs(60), ..relay_config() });
        let task = relay.spawn(shutdown.clone());
        tokio::time::sleep(Duration::from_millis(200)).await; // the relay is idle now
        for n in 0..5 {
            let started = std::time::Instant::now();
            place(&db, &event(Uuid::now_v7(), n), true).await;
            db.clone().outbox_committed(); // any clone of the database's handle wakes its relay
            wait_until(Duration::from_secs(5), "prompt publish", || async {
                bus.events(contract::topics::INVENTORY).len() == n as usize + 1
            }).await;
            assert!(started.elapsed() < Duration::from_millis(500), "woken, not polled: {:?}", started.elapsed());
        }
        shutdown.cancel();
        task.await.unwrap();
    }

    async fn rows_written_without_a_signal_are_published_by_the_poll(db) {
        // Another process (another replica, a script) writes the outbox: nothing wakes this
        // process's relay, its poll finds the rows.
        let bus = InProcessBus::new("", fast_retry());
        let shutdown = CancellationToken::new();
        let relay = Relay::new(db.clone(), Arc::new(bus.clone()),
            RelayConfig { poll_interval: Duration::from_millis(300), ..relay_config() });
        let task = relay.spawn(shutdown.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
        place(&db, &event(Uuid::now_v7(), 0), true).await;
        wait_until(Duration::from_secs(5), "polled publish", || async {
            !bus.events(contract::topics::INVENTORY).is_empty()
        }).await;
        wait_until(Duration::from_secs(5), "the published row deleted", || async {
            count(&db, "SELECT COUNT(*) FROM outbox").await == 0
        }).await;
        assert_eq!(bus.events(contract::topics::INVENTORY).len(), 1);
        shutdown.cancel();
        task.await.unwrap();
    }

    async fn a_row_committed_after_a_later_one_is_still_published(db) {
        if db.backend() != Backend::Postgres {
            return; // SQLite takes ids under its write lock: they become visible in order
        }
        // Ids are taken at insert and rows become visible at commit: a relay that has published
        // a later id must still find the earlier one, soon after a quick round (within the lag
        // of its cursor) and by a sweep after that.
        let bus = InProcessBus::new("", fast_retry());
        let shutdown = CancellationToken::new();
        let relay = Relay::new(db.clone(), Arc::new(bus.clone()), RelayConfig {
            poll_interval: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(1),
            ..relay_config()
        });
        let task = relay.spawn(shutdown.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (n, late) in [(0, Duration::from_millis(50)), (2, Duration::from_millis(600))] {
            let kit::db::Pool::Postgres(pool) = db.pool() else { unreachable!() };
            let mut early = pool.begin().await.unwrap();
            outbox::enqueue(&mut *early, &event(Uuid::now_v7(), n)).await.unwrap();
            place(&db, &event(Uuid::now_v7(), n + 1), true).await;
            db.outbox_committed();
            wait_until(Duration::from_secs(5), "the later row", || async {
                bus.events(contract::topics::INVENTORY).len() == n as usize + 1
            }).await;
            tokio::time::sleep(late).await;
            early.commit().await.unwrap();
            db.outbox_committed();
            let started = std::time::Instant::now();
            wait_until(Duration::from_secs(5), "the earlier row", || async {
                bus.events(contract::topics::INVENTORY).len() == n as usize + 2
            }).await;
            assert!(started.elapsed() < Duration::from_millis(1500), "{late:?}: {:?}", started.elapsed());
        }
        shutdown.cancel();
        task.await.unwrap();
    }

    async fn several_relays_share_a_postgres_outbox_without_reordering(db) {
        if db.backend() != Backend::Postgres {
            return; // SQLite runs a single relay
        }
        let bus = InProcessBus::new("", fast_retry());
        let keys: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        for n in 0..20 {
            for k in &keys {
                place(&db, &event(*k, n), true).await;
            }
        }
        let relays: Vec<Relay> = (0..3)
            .map(|_| Relay::new(db.clone(), Arc::new(bus.clone()), RelayConfig { batch_size: 3, ..relay_config() }))
            .collect();
        let runs = relays.iter().map(|r| async move {
            for _ in 0..500 {
                if r.pending().await.unwrap() == 0 {
                    break;
                }
                r.run_once().await.unwrap();
            }
        });
        futures::future::join_all(runs).await;
        let events = bus.events(contract::topics::INVENTORY);
        assert_eq!(events.len(), 100, "each row published exactly once");
        assert_in_order(&events);
    }
}
