//! Event backbone figures on this machine: Kafka publish throughput (acks=all, idempotent) and
//! outbox → handler latency (PostgreSQL outbox, relay woken by LISTEN/NOTIFY, Kafka, consumer).
//!
//! Needs `SHOP_TEST_KAFKA_BROKERS` (see `scripts/kafka-test-broker`) and the PostgreSQL test
//! server. Run: `cargo bench -p shop-kit --bench events`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kit::events::kafka::KafkaBus;
use kit::events::outbox::{self, Relay, RelayConfig};
use kit::events::payloads::InventoryLowStock;
use kit::events::{contract, handler_fn, BusKind, Envelope, EventBus, EventsConfig, RetryPolicy};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("tests/migrations/postgres"),
    sqlite: sqlx::migrate!("tests/migrations/sqlite"),
};

fn event(key: Uuid, n: i64) -> Envelope {
    Envelope::new(
        contract::sources::INVENTORY,
        &InventoryLowStock { product_id: key, available: n, threshold: 0 },
    )
    .unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let brokers = std::env::var("SHOP_TEST_KAFKA_BROKERS")
        .expect("SHOP_TEST_KAFKA_BROKERS is not set: start scripts/kafka-test-broker first");
    let config = EventsConfig {
        bus: BusKind::Kafka,
        brokers,
        topic_prefix: format!("bench{}-", Uuid::new_v4().simple()),
        create_topics: true,
        partitions: 4,
        retry: RetryPolicy::default(),
        // Test-broker workarounds (docs/events.md).
        producer_properties: BTreeMap::from([("batch.num.messages".into(), "1".into())]),
        consumer_properties: BTreeMap::from([("fetch.wait.max.ms".into(), "10".into())]),
        ..Default::default()
    };
    let bus = KafkaBus::connect(config.clone()).await.unwrap();

    // 1. Publish throughput: N events, up to 64 in flight, each counted at its broker ack.
    let n = 2000;
    let events: Vec<Envelope> = (0..n).map(|i| event(Uuid::now_v7(), i)).collect();
    let start = Instant::now();
    let bus_ref = &bus;
    futures::stream::iter(events.iter())
        .for_each_concurrent(64, |e| async move { bus_ref.publish(e).await.unwrap() })
        .await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "publish (acks=all, idempotent, 64 in flight): {n} events in {secs:.2}s = {:.0} events/s",
        n as f64 / secs
    );
    let start = Instant::now();
    for e in events.iter().take(300) {
        bus.publish(e).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "publish (one at a time): 300 events in {secs:.2}s = {:.0} events/s, {:.2} ms each",
        300.0 / secs,
        secs * 1000.0 / 300.0
    );

    // 2. Consumer throughput: one group drains the backlog published above (in order per
    //    partition; the offset is stored and committed after every event).
    let backlog = n as usize + 300;
    let seen: Arc<Mutex<usize>> = Arc::default();
    let counter = seen.clone();
    bus.subscribe(
        "drain",
        &[contract::topics::INVENTORY],
        handler_fn(move |_ev: Envelope| {
            let counter = counter.clone();
            async move {
                *counter.lock().unwrap() += 1;
                Ok(())
            }
        }),
    )
    .unwrap();
    let drain_stop = CancellationToken::new();
    let start = Instant::now();
    let drain = bus.start(drain_stop.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while *seen.lock().unwrap() < backlog && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let got = *seen.lock().unwrap();
    println!(
        "consume (one consumer, 4 partitions, commit per event): {got} events in {secs:.2}s = {:.0} events/s (incl. group join)",
        got as f64 / secs
    );
    drain.stop().await;

    // 3. Outbox → handler latency on PostgreSQL: commit time → handler start (fresh topics).
    let bus = KafkaBus::connect(EventsConfig {
        topic_prefix: format!("bench{}-", Uuid::new_v4().simple()),
        ..config
    })
    .await
    .unwrap();
    let t = kit::testing::postgres(&MIGRATIONS).await;
    let db = t.db.clone();
    let shutdown = CancellationToken::new();
    let relay = Relay::new(db.clone(), Arc::new(bus.clone()), RelayConfig::default());
    let relay_task = relay.spawn(shutdown.clone());
    let commits: Arc<Mutex<BTreeMap<Uuid, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let handler = {
        let (commits, latencies) = (commits.clone(), latencies.clone());
        handler_fn(move |ev: Envelope| {
            let (commits, latencies) = (commits.clone(), latencies.clone());
            async move {
                let now = Instant::now();
                if let Some(c) = commits.lock().unwrap().get(&ev.id) {
                    latencies.lock().unwrap().push(now.duration_since(*c).as_secs_f64() * 1000.0);
                }
                Ok(())
            }
        })
    };
    bus.subscribe("bench", &[contract::topics::INVENTORY], handler).unwrap();
    let consumers = bus.start(shutdown.clone()).await.unwrap();
    // Warm up: wait until the consumer joined its group and handled a first event.
    let warm = event(Uuid::now_v7(), -1);
    commits.lock().unwrap().insert(warm.id, Instant::now());
    kit::with_db!(&db, pool => {
        let mut tx = pool.begin().await.unwrap();
        outbox::enqueue(&mut *tx, &warm).await.unwrap();
        tx.commit().await.unwrap();
    });
    let joined = Instant::now();
    while latencies.lock().unwrap().is_empty() && joined.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("first event after consumer start (group join): {:.1} s", joined.elapsed().as_secs_f64());
    latencies.lock().unwrap().clear();
    let m = 300;
    for i in 0..m {
        let ev = event(Uuid::now_v7(), i);
        kit::with_db!(&db, pool => {
            let mut tx = pool.begin().await.unwrap();
            outbox::enqueue(&mut *tx, &ev).await.unwrap();
            tx.commit().await.unwrap();
        });
        commits.lock().unwrap().insert(ev.id, Instant::now());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.lock().unwrap().len() < m as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut l = latencies.lock().unwrap().clone();
    l.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "outbox -> handler latency over {} events (PostgreSQL + LISTEN/NOTIFY relay + Kafka): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        l.len(),
        percentile(&l, 0.50),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or_default()
    );
    shutdown.cancel();
    consumers.join().await;
    relay_task.await.unwrap();
}
