//! Shared helpers of the event tests (included with `#[path]` by the other `events_*` tests).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use kit::events::payloads::InventoryLowStock;
use kit::events::{contract, Envelope, EventsConfig, RetryPolicy};
use uuid::Uuid;

pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("tests/migrations/postgres"),
    sqlite: sqlx::migrate!("tests/migrations/sqlite"),
};

/// The broker of the Kafka tests; they fail (not skip) without one.
pub fn kafka_brokers() -> String {
    std::env::var("SHOP_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "SHOP_TEST_KAFKA_BROKERS is not set: the Kafka event tests need a broker. \
             Start one with `scripts/kafka-test-broker start` and export \
             `$(scripts/kafka-test-broker env)`"
        )
    })
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

/// Test configuration for the Kafka bus: a unique topic prefix, topics created by the bus,
/// and the test-broker workarounds (docs/events.md): one message per batch, short fetch waits.
pub fn kafka_config(brokers: &str) -> EventsConfig {
    EventsConfig {
        bus: kit::events::BusKind::Kafka,
        brokers: brokers.to_string(),
        topic_prefix: format!("t{}-", Uuid::new_v4().simple()),
        client_id: "shop-kit-test".into(),
        create_topics: true,
        partitions: 4,
        publish_timeout: Duration::from_secs(10),
        retry: fast_retry(),
        producer_properties: BTreeMap::from([
            ("batch.num.messages".to_string(), "1".to_string()),
            ("linger.ms".to_string(), "0".to_string()),
        ]),
        consumer_properties: BTreeMap::from([
            ("fetch.wait.max.ms".to_string(), "10".to_string()),
            ("session.timeout.ms".to_string(), "6000".to_string()),
            ("heartbeat.interval.ms".to_string(), "500".to_string()),
        ]),
        ..Default::default()
    }
}

/// An event on the `inventory` topic, keyed by `key`, carrying `n`.
pub fn event(key: Uuid, n: i64) -> Envelope {
    Envelope::new(
        contract::sources::INVENTORY,
        &InventoryLowStock { product_id: key, available: n, threshold: 0 },
    )
    .unwrap()
}

pub fn n_of(ev: &Envelope) -> i64 {
    ev.decode::<InventoryLowStock>().unwrap().available
}

pub fn group() -> String {
    format!("g{}", Uuid::new_v4().simple())
}

/// Polls `cond` until it holds or `timeout` passes; panics with `what` then.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
