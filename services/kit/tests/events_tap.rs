//! The read-only tap of the bus (`kit::events::tap`, ADR 0015), on both buses: it sees what is
//! published, and watching it — slowly, or not at all — changes nothing for the consumers.

#[path = "events_support.rs"]
mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit::events::kafka::{self, KafkaBus};
use kit::events::memory::InProcessBus;
use kit::events::tap::{Tap, LIVE_SLOTS};
use kit::events::{contract, handler_fn, EventBus};
use support::*;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(40);

/// A consumer group that records the `n` of every event it handles.
async fn record_group(bus: &dyn EventBus, seen: Arc<Mutex<Vec<i64>>>) {
    bus.subscribe(
        &group(),
        &[contract::topics::INVENTORY],
        handler_fn(move |ev| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(n_of(&ev));
                Ok(())
            }
        }),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_bus_taps_what_it_publishes_and_a_stalled_watcher_changes_nothing() {
    let bus = InProcessBus::new("", fast_retry());
    let tap = bus.tap().expect("the in-process bus keeps a tap");
    let seen = Arc::new(Mutex::new(Vec::new()));
    record_group(&bus, seen.clone()).await;
    let shutdown = CancellationToken::new();
    let consumers = bus.start(shutdown.clone()).await.unwrap();

    // A watcher that never reads, and far more events than the live channel holds.
    let mut stalled = tap.subscribe();
    let key = Uuid::now_v7();
    let total = LIVE_SLOTS as i64 * 3;
    for n in 0..total {
        tokio::time::timeout(Duration::from_secs(1), bus.publish(&event(key, n)))
            .await
            .expect("publishing never waits for the tap")
            .unwrap();
    }
    wait_until(WAIT, "the group to handle every event", || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().len() as i64 == total }
    })
    .await;
    assert_eq!(*seen.lock().unwrap(), (0..total).collect::<Vec<_>>(), "every event, in order");
    assert_eq!(tap.recorded(), total as u64);
    let recent: Vec<i64> = tap.recent().iter().map(|e| n_of(e)).collect();
    assert_eq!(recent.len(), tap.capacity().min(total as usize));
    assert_eq!(recent.last(), Some(&(total - 1)));
    match stalled.recv().await {
        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
            assert_eq!(n as i64, total - LIVE_SLOTS as i64)
        }
        other => panic!("the stalled watcher should have lagged: {other:?}"),
    }
    consumers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_tap_reads_without_joining_a_group_or_committing() {
    let cfg = kafka_config(&kafka_brokers());
    let bus = KafkaBus::connect(cfg.clone()).await.expect("connect to the test broker");
    let key = Uuid::now_v7();
    bus.publish(&event(key, -1)).await.unwrap();

    let tap = Tap::new(100);
    let shutdown = CancellationToken::new();
    let reader = kafka::spawn_tap(cfg.clone(), tap.clone(), shutdown.clone());
    // The tap starts at the end: keep publishing until it reports one (it takes the partitions
    // when it has found the topics).
    let mut n = 0;
    wait_until(WAIT, "the tap to see a new event", || {
        n += 1;
        let (bus, tap) = (bus.clone(), tap.clone());
        let n = n;
        async move {
            if n % 10 == 1 {
                bus.publish(&event(key, n)).await.unwrap();
            }
            tap.recorded() > 0
        }
    })
    .await;
    let live = tap.subscribe();
    drop(live);
    for m in 1000..1005 {
        bus.publish(&event(key, m)).await.unwrap();
    }
    wait_until(WAIT, "the tap to see the last five", || {
        let tap = tap.clone();
        async move {
            let got: HashSet<i64> = tap.recent().iter().map(|e| n_of(e)).collect();
            (1000..1005).all(|m| got.contains(&m))
        }
    })
    .await;

    // A consumer group started now still gets every event from the beginning: the tap took no
    // partition from anyone and moved no group's offsets.
    let seen = Arc::new(Mutex::new(Vec::new()));
    record_group(&bus, seen.clone()).await;
    let consumers = bus.start(shutdown.clone()).await.unwrap();
    wait_until(WAIT, "the group to read the whole topic", || {
        let seen = seen.clone();
        async move {
            let seen = seen.lock().unwrap();
            seen.contains(&-1) && (1000..1005).all(|m| seen.contains(&m))
        }
    })
    .await;
    shutdown.cancel();
    consumers.join().await;
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the tap stops with the shutdown")
        .unwrap();
}
