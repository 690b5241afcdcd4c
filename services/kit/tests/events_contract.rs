//! One contract suite, run on both buses: `memory::*` (in-process) and `kafka::*` (a real
//! Kafka-protocol broker at `SHOP_TEST_KAFKA_BROKERS`, see `scripts/kafka-test-broker`).

#[path = "events_support.rs"]
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit::events::kafka::KafkaBus;
use kit::events::memory::InProcessBus;
use kit::events::{contract, handler_fn, inbox, Envelope, EventBus, EventError, EventsConfig, RetryPolicy};
use kit::health::Check;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use support::*;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(40);

#[allow(clippy::large_enum_variant)]
enum Harness {
    Memory(InProcessBus),
    Kafka(KafkaBus, EventsConfig),
}

impl Harness {
    fn memory(retry: RetryPolicy) -> Harness {
        Harness::Memory(InProcessBus::new("", retry))
    }

    async fn kafka(retry: RetryPolicy) -> Harness {
        let mut cfg = kafka_config(&kafka_brokers());
        cfg.retry = retry;
        let bus = KafkaBus::connect(cfg.clone()).await.expect("connect to the test broker");
        Harness::Kafka(bus, cfg)
    }

    fn bus(&self) -> &dyn EventBus {
        match self {
            Harness::Memory(b) => b,
            Harness::Kafka(b, _) => b,
        }
    }

    fn is_kafka(&self) -> bool {
        matches!(self, Harness::Kafka(..))
    }

    /// Dead letters of `group` on the `inventory` topic: (event, error).
    async fn dead_letters(&self, group: &str, want: usize) -> Vec<(Envelope, String)> {
        match self {
            Harness::Memory(b) => {
                wait_until(WAIT, "dead letters", || async {
                    b.dead_letters().iter().filter(|d| d.group == group).count() >= want
                })
                .await;
                b.dead_letters()
                    .into_iter()
                    .filter(|d| d.group == group)
                    .map(|d| {
                        assert_eq!(d.topic, contract::topics::INVENTORY);
                        (d.event, d.error)
                    })
                    .collect()
            }
            Harness::Kafka(_, cfg) => {
                let topic = contract::dead_letter_topic(
                    &contract::full_topic(&cfg.topic_prefix, contract::topics::INVENTORY),
                    group,
                );
                let consumer: StreamConsumer = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &cfg.brokers)
                    .set("group.id", format!("dlq-reader-{}", Uuid::new_v4().simple()))
                    .set("auto.offset.reset", "earliest")
                    .set("fetch.wait.max.ms", "10")
                    .create()
                    .unwrap();
                consumer.subscribe(&[&topic]).unwrap();
                let mut out = Vec::new();
                let deadline = tokio::time::Instant::now() + WAIT;
                while out.len() < want {
                    let msg = tokio::time::timeout_at(deadline, consumer.recv())
                        .await
                        .unwrap_or_else(|_| panic!("timed out reading {topic}: got {}", out.len()))
                        .unwrap();
                    let header = |name: &str| {
                        msg.headers().and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value))
                    };
                    let ev = Envelope::from_kafka(header, msg.payload()).unwrap();
                    let error =
                        String::from_utf8(header(contract::headers::DLQ_ERROR).unwrap().to_vec()).unwrap();
                    let orig =
                        std::str::from_utf8(header(contract::headers::DLQ_ORIGINAL_TOPIC).unwrap()).unwrap();
                    assert_eq!(orig, contract::full_topic(&cfg.topic_prefix, contract::topics::INVENTORY));
                    assert!(header(contract::headers::DLQ_ORIGINAL_OFFSET).is_some());
                    assert_eq!(msg.key(), Some(ev.subject.as_bytes()));
                    out.push((ev, error));
                }
                out
            }
        }
    }

    /// Kafka consumers need a moment to join their group before the first fetch.
    async fn settle(&self) {
        if self.is_kafka() {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
}

type Seen = Arc<Mutex<Vec<Envelope>>>;

fn recorder(seen: &Seen) -> Arc<dyn kit::events::Handler> {
    let seen = seen.clone();
    handler_fn(move |ev| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(ev);
            Ok(())
        }
    })
}

fn distinct(seen: &Seen) -> usize {
    seen.lock().unwrap().iter().map(|e| e.id).collect::<HashSet<_>>().len()
}

/// Per key, the order of first deliveries must be the publish order.
fn assert_ordered_per_key(seen: &Seen) {
    let mut per_key: HashMap<String, Vec<i64>> = HashMap::new();
    let mut first = HashSet::new();
    for e in seen.lock().unwrap().iter() {
        if first.insert(e.id) {
            per_key.entry(e.subject.clone()).or_default().push(n_of(e));
        }
    }
    for (k, ns) in per_key {
        let mut sorted = ns.clone();
        sorted.sort();
        assert_eq!(ns, sorted, "key {k} out of order");
    }
}

async fn ordering_per_key_and_every_group_gets_every_event(h: Harness) {
    let (a, b): (Seen, Seen) = Default::default();
    h.bus().subscribe(&group(), &[contract::topics::INVENTORY], recorder(&a)).unwrap();
    h.bus().subscribe(&group(), &[contract::topics::INVENTORY], recorder(&b)).unwrap();
    let consumers = h.bus().start(CancellationToken::new()).await.unwrap();
    h.settle().await;
    wait_until(WAIT, "consumers running", || async { consumers.health().check().await.is_ok() }).await;
    let keys: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    for n in 0..15 {
        for k in &keys {
            h.bus().publish(&event(*k, n)).await.unwrap();
        }
    }
    wait_until(WAIT, "group a got 60", || async { distinct(&a) == 60 }).await;
    wait_until(WAIT, "group b got 60", || async { distinct(&b) == 60 }).await;
    assert_ordered_per_key(&a);
    assert_ordered_per_key(&b);
    let ev = a.lock().unwrap()[0].clone();
    assert_eq!(ev.specversion, "1.0");
    assert!(ev.dataschema.is_some());
    consumers.stop().await;
}

async fn redelivery_has_no_second_effect_with_the_inbox(h: Harness) {
    let t = kit::testing::sqlite(&MIGRATIONS).await;
    let db = t.db.clone();
    let g = group();
    let calls = Arc::new(Mutex::new(0usize));
    let handler = {
        let (db, g, calls) = (db.clone(), g.clone(), calls.clone());
        handler_fn(move |ev: Envelope| {
            let (db, g, calls) = (db.clone(), g.clone(), calls.clone());
            async move {
                *calls.lock().unwrap() += 1;
                let first = kit::with_db!(&db, pool => {
                    let mut tx = pool.begin().await?;
                    let first = inbox::claim(&mut *tx, &g, ev.id).await?;
                    if first {
                        sqlx::query("INSERT INTO effects (consumer_group, event_id, message_key, n) VALUES ($1, $2, $3, $4)")
                            .bind(&g).bind(ev.id.to_string()).bind(&ev.subject).bind(n_of(&ev))
                            .execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    first
                });
                // The effect committed but the acknowledgement is "lost": delivered again.
                if first {
                    anyhow::bail!("crash after commit");
                }
                Ok(())
            }
        })
    };
    h.bus().subscribe(&g, &[contract::topics::INVENTORY], handler).unwrap();
    let consumers = h.bus().start(CancellationToken::new()).await.unwrap();
    h.settle().await;
    let key = Uuid::now_v7();
    let evs: Vec<Envelope> = (0..5).map(|n| event(key, n)).collect();
    for e in &evs {
        h.bus().publish(e).await.unwrap();
    }
    // A duplicate publish (e.g. the relay retried after a lost acknowledgement).
    h.bus().publish(&evs[2]).await.unwrap();
    wait_until(WAIT, "every delivery handled", || async { *calls.lock().unwrap() >= 11 }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let effects: Vec<(String, i64)> =
        kit::with_db!(&db, pool => sqlx::query_as("SELECT event_id, n FROM effects ORDER BY n").fetch_all(pool).await)
            .unwrap();
    assert_eq!(effects.len(), 5, "one effect per event: {effects:?}");
    assert_eq!(effects.iter().map(|e| e.1).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    consumers.stop().await;
}

async fn failing_handler_is_retried_then_dead_lettered(h: Harness) {
    let g = group();
    let attempts = Arc::new(Mutex::new(BTreeMap::<i64, u32>::new()));
    let ok: Seen = Default::default();
    let handler = {
        let (attempts, ok) = (attempts.clone(), ok.clone());
        handler_fn(move |ev: Envelope| {
            let (attempts, ok) = (attempts.clone(), ok.clone());
            async move {
                let n = n_of(&ev);
                *attempts.lock().unwrap().entry(n).or_default() += 1;
                match n {
                    1 => anyhow::bail!("boom {n}"),
                    3 => panic!("kaboom {n}"),
                    _ => {
                        ok.lock().unwrap().push(ev);
                        Ok(())
                    }
                }
            }
        })
    };
    h.bus().subscribe(&g, &[contract::topics::INVENTORY], handler).unwrap();
    let consumers = h.bus().start(CancellationToken::new()).await.unwrap();
    h.settle().await;
    let key = Uuid::now_v7();
    for n in 0..5 {
        h.bus().publish(&event(key, n)).await.unwrap();
    }
    wait_until(WAIT, "events after the failing ones processed", || async {
        ok.lock().unwrap().iter().any(|e| n_of(e) == 4)
    })
    .await;
    let a = attempts.lock().unwrap().clone();
    assert_eq!(a[&1], 3, "retried up to max_attempts: {a:?}");
    assert_eq!(a[&3], 3, "a panic counts as a failed attempt: {a:?}");
    let ns: Vec<i64> = ok.lock().unwrap().iter().map(n_of).collect();
    assert_eq!(ns, [0, 2, 4]);
    let mut dead = h.dead_letters(&g, 2).await;
    dead.sort_by_key(|(e, _)| n_of(e));
    assert_eq!(dead.iter().map(|(e, _)| n_of(e)).collect::<Vec<_>>(), [1, 3]);
    assert!(dead[0].1.contains("boom 1"), "{}", dead[0].1);
    assert!(dead[1].1.contains("panicked") && dead[1].1.contains("kaboom 3"), "{}", dead[1].1);
    consumers.stop().await;
}

async fn failure_does_not_advance_the_offset_and_restart_resumes(h: Harness) {
    let g = group();
    let key = Uuid::now_v7();
    let first: Seen = Default::default();
    let failures = Arc::new(Mutex::new(0u32));
    let handler = {
        let (first, failures) = (first.clone(), failures.clone());
        handler_fn(move |ev: Envelope| {
            let (first, failures) = (first.clone(), failures.clone());
            async move {
                if n_of(&ev) == 5 {
                    let f = {
                        let mut f = failures.lock().unwrap();
                        *f += 1;
                        *f
                    };
                    if f % 2 == 0 {
                        panic!("panic on 5");
                    }
                    anyhow::bail!("error on 5");
                }
                first.lock().unwrap().push(ev);
                Ok(())
            }
        })
    };
    h.bus().subscribe(&g, &[contract::topics::INVENTORY], handler).unwrap();
    let consumers = h.bus().start(CancellationToken::new()).await.unwrap();
    h.settle().await;
    for n in 0..10 {
        h.bus().publish(&event(key, n)).await.unwrap();
    }
    wait_until(WAIT, "0..5 processed and 5 failing", || async {
        first.lock().unwrap().len() >= 5 && *failures.lock().unwrap() >= 4
    })
    .await;
    consumers.stop().await;
    let ns: Vec<i64> = first.lock().unwrap().iter().map(n_of).collect();
    assert_eq!(ns, [0, 1, 2, 3, 4], "nothing after the failing event was processed");

    for n in 10..15 {
        h.bus().publish(&event(key, n)).await.unwrap();
    }
    // Subscribing again is allowed once the previous consumers stopped.
    let second: Seen = Default::default();
    h.bus().subscribe(&g, &[contract::topics::INVENTORY], recorder(&second)).unwrap();
    let consumers = h.bus().start(CancellationToken::new()).await.unwrap();
    wait_until(WAIT, "5..15 after the restart", || async { distinct(&second) >= 10 }).await;
    let ns: Vec<i64> = second.lock().unwrap().iter().map(n_of).collect();
    assert_eq!(ns[..10], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14], "resumed at the committed offset: {ns:?}");
    consumers.stop().await;
}

async fn consumers_of_one_group_share_the_work(h: Harness) {
    let g = group();
    let (a, b): (Seen, Seen) = Default::default();
    h.bus().subscribe(&g, &[contract::topics::INVENTORY], recorder(&a)).unwrap();
    h.bus().subscribe(&g, &[contract::topics::INVENTORY], recorder(&b)).unwrap();
    let consumers = h.bus().start(CancellationToken::new()).await.unwrap();
    if h.is_kafka() {
        // Both members joined and the partitions are split before anything is published.
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    for n in 0..40 {
        h.bus().publish(&event(Uuid::now_v7(), n)).await.unwrap();
    }
    let union = || {
        let mut ids: HashSet<Uuid> = a.lock().unwrap().iter().map(|e| e.id).collect();
        ids.extend(b.lock().unwrap().iter().map(|e| e.id));
        ids.len()
    };
    wait_until(WAIT, "40 events across the group", || async { union() == 40 }).await;
    let (na, nb) = (a.lock().unwrap().len(), b.lock().unwrap().len());
    assert!(na > 0 && nb > 0, "both members got partitions: {na} + {nb}");
    assert_eq!(na + nb, 40, "each event handled by one member of the group");
    consumers.stop().await;
}

async fn handlers_register_before_start(h: Harness) {
    let seen: Seen = Default::default();
    h.bus().subscribe(&group(), &[contract::topics::ORDERS], recorder(&seen)).unwrap();
    let consumers = h.bus().start(CancellationToken::new()).await.unwrap();
    let late = h.bus().subscribe(&group(), &[contract::topics::ORDERS], recorder(&seen));
    assert!(matches!(late, Err(EventError::AlreadyStarted)), "{late:?}");
    assert!(matches!(h.bus().start(CancellationToken::new()).await, Err(EventError::AlreadyStarted)));
    let health = consumers.health();
    consumers.stop().await;
    assert!(health.check().await.is_err(), "stopped consumers are not ready");
}

macro_rules! suite {
    ($($name:ident $(: $retry:expr)?),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    #[allow(unused_mut, unused_assignments)]
                    let mut retry = super::fast_retry();
                    $( retry = $retry; )?
                    super::$name(super::Harness::memory(retry)).await
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    #[allow(unused_mut, unused_assignments)]
                    let mut retry = super::fast_retry();
                    $( retry = $retry; )?
                    super::$name(super::Harness::kafka(retry).await).await
                }
            )*
        }
    };
}

fn patient_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1000,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
    }
}

fn redelivery_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    }
}

suite! {
    ordering_per_key_and_every_group_gets_every_event,
    redelivery_has_no_second_effect_with_the_inbox: super::redelivery_retry(),
    failing_handler_is_retried_then_dead_lettered,
    failure_does_not_advance_the_offset_and_restart_resumes: super::patient_retry(),
    consumers_of_one_group_share_the_work,
    handlers_register_before_start,
}
