//! Fault test on a real broker: the broker stops while services keep writing events through
//! the PostgreSQL outbox; when it is back, everything is delivered, and the inbox makes the
//! effect exactly once. Uses a private tansu instance (its own port) so that stopping it does
//! not disturb the other Kafka tests running against `SHOP_TEST_KAFKA_BROKERS`.

#[path = "events_support.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kit::db::Db;
use kit::events::kafka::KafkaBus;
use kit::events::outbox::{self, Relay, RelayConfig};
use kit::events::{contract, handler_fn, inbox, Envelope, EventBus, RetryPolicy};
use support::*;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct PrivateBroker {
    port: u16,
    run_dir: PathBuf,
}

impl PrivateBroker {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka-test-broker")
    }

    fn run(&self, action: &str) {
        let out = Command::new("bash")
            .arg(Self::script())
            .arg(action)
            .env("SHOP_KAFKA_TEST_PORT", self.port.to_string())
            .env("SHOP_KAFKA_TEST_RUN_DIR", &self.run_dir)
            .output()
            .expect("run scripts/kafka-test-broker");
        assert!(
            out.status.success(),
            "kafka-test-broker {action} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> PrivateBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let run_dir = std::env::temp_dir().join(format!("shop-kafka-fault-{}", Uuid::new_v4().simple()));
        let b = PrivateBroker { port, run_dir };
        b.run("start");
        b
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .env("SHOP_KAFKA_TEST_PORT", self.port.to_string())
            .env("SHOP_KAFKA_TEST_RUN_DIR", &self.run_dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

async fn place(db: &Db, ev: &Envelope) {
    kit::with_db!(db, pool => {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO orders (id) VALUES ($1)").bind(ev.id.to_string()).execute(&mut *tx).await.unwrap();
        outbox::enqueue(&mut *tx, ev).await.unwrap();
        tx.commit().await.unwrap();
    })
}

async fn count(db: &Db, sql: &str) -> i64 {
    kit::with_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_outage_during_writes_loses_nothing_and_applies_once() {
    // Like every Kafka test, this one requires the test broker configuration (fails without).
    let _shared = kafka_brokers();
    let broker = PrivateBroker::start();
    let t = kit::testing::postgres(&MIGRATIONS).await;
    let db = t.db.clone();

    let mut cfg = kafka_config(&broker.addr());
    cfg.publish_timeout = Duration::from_secs(3);
    let bus = KafkaBus::connect(cfg.clone()).await.unwrap();
    let shutdown = CancellationToken::new();
    let relay = Relay::new(
        db.clone(),
        Arc::new(bus.clone()),
        RelayConfig {
            poll_interval: Duration::from_millis(200),
            retry: RetryPolicy {
                max_attempts: u32::MAX,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
            },
            ..Default::default()
        },
    );
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

    let keys: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for n in 0..10 {
        place(&db, &event(keys[n as usize % 3], n)).await;
    }
    wait_until(Duration::from_secs(60), "10 effects before the outage", || async {
        count(&db, "SELECT COUNT(*) FROM effects").await == 10
    })
    .await;

    broker.run("stop");
    for n in 10..20 {
        place(&db, &event(keys[n as usize % 3], n)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pending = count(&db, "SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL").await;
    assert!(pending > 0, "rows written while the broker is down stay pending");
    wait_until(Duration::from_secs(30), "the relay to record failed publishes", || async {
        count(&db, "SELECT COUNT(*) FROM outbox WHERE attempts > 0").await > 0
    })
    .await;

    // The in-memory broker comes back empty: topics are created again (the operator's job in
    // Kubernetes), the consumer group starts over from the earliest offset.
    broker.run("start");
    let mut topics: Vec<String> =
        contract::topics::ALL.iter().map(|t| contract::full_topic(&cfg.topic_prefix, t)).collect();
    topics.push(contract::dead_letter_topic(
        &contract::full_topic(&cfg.topic_prefix, contract::topics::INVENTORY),
        &g,
    ));
    wait_until(Duration::from_secs(30), "topics re-created", || async {
        bus.ensure_topics(&topics).await.is_ok()
    })
    .await;
    wait_until(Duration::from_secs(90), "20 effects after the outage", || async {
        count(&db, "SELECT COUNT(*) FROM effects").await >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM effects").await, 20, "exactly once in effect");
    assert_eq!(count(&db, "SELECT COUNT(DISTINCT event_id) FROM effects").await, 20);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL").await, 0);

    shutdown.cancel();
    consumers.join().await;
    relay_task.await.unwrap();
}
