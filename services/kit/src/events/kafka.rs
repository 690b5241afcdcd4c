//! The Kafka bus (`rdkafka`, librdkafka built from its bundled sources).
//!
//! - Producer: `FutureProducer` with `enable.idempotence=true` and `acks=all`; `publish`
//!   returns only when the delivery report came back Ok.
//! - Consumers: one `StreamConsumer` per subscription in the subscription's consumer group,
//!   `enable.auto.commit=false` and `enable.auto.offset.store=false`: an offset is stored only
//!   after the handler succeeded (or the event was copied to the dead-letter topic), and
//!   stored offsets are committed after each event and synchronously on shutdown.
//! - Dead letters: `<topic>.dlq.<group>` with the original key, value and `ce_*` headers plus
//!   `dlq_error`, `dlq_group`, `dlq_attempts`, `dlq_original_{topic,partition,offset}`.
//! - Configuration: [`EventsConfig`]; arbitrary librdkafka properties pass through.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use super::contract::{self, headers};
use super::delivery::{deliver, Outcome};
use super::{ConsumerState, Consumers, Envelope, EventBus, EventError, EventsConfig, Registry, Subscription};

/// The production event bus.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: EventsConfig,
    /// Replaced after a timed-out publish: a fresh client gets a new idempotent producer id
    /// and fresh metadata (a broker that lost its state, e.g. restarted, otherwise never
    /// accepts the old producer's sequence again).
    producer: std::sync::RwLock<FutureProducer>,
    registry: Registry,
}

fn new_producer(config: &EventsConfig) -> Result<FutureProducer, EventError> {
    let mut cc = base_config(config);
    cc.set("enable.idempotence", "true").set("acks", "all");
    cc.set("message.timeout.ms", config.publish_timeout.as_millis().to_string());
    for (k, v) in &config.producer_properties {
        cc.set(k, v);
    }
    cc.create().map_err(kafka_err)
}

impl KafkaBus {
    /// Creates the producer (and, with `create_topics`, the contract topics).
    pub async fn connect(config: EventsConfig) -> Result<KafkaBus, EventError> {
        let producer = std::sync::RwLock::new(new_producer(&config)?);
        let bus = KafkaBus { inner: Arc::new(Inner { config, producer, registry: Registry::default() }) };
        if bus.inner.config.create_topics {
            let all: Vec<String> = contract::topics::ALL.iter().map(|t| bus.full(t)).collect();
            bus.ensure_topics(&all).await?;
        }
        Ok(bus)
    }

    fn full(&self, topic: &str) -> String {
        contract::full_topic(&self.inner.config.topic_prefix, topic)
    }

    /// Creates the given (full) topic names; "already exists" counts as success.
    pub async fn ensure_topics(&self, names: &[String]) -> Result<(), EventError> {
        // A CreateTopics request must not name a topic twice.
        let mut names = names.to_vec();
        names.sort();
        names.dedup();
        let admin: AdminClient<DefaultClientContext> =
            base_config(&self.inner.config).create().map_err(kafka_err)?;
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| NewTopic::new(n, self.inner.config.partitions, TopicReplication::Fixed(1)))
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin.create_topics(&new, &opts).await.map_err(kafka_err)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(EventError::Kafka(format!("create topic {name}: {code}"))),
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), EventError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        let producer = self.inner.producer.read().expect("producer lock").clone();
        match producer.send(record, self.inner.config.publish_timeout).await {
            Ok(_) => Ok(()),
            Err((e, _)) => {
                if matches!(
                    e,
                    KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
                        | KafkaError::MessageProduction(RDKafkaErrorCode::Fatal)
                ) {
                    self.reset_producer(&producer);
                }
                Err(EventError::Publish(format!("{topic}: {e}")))
            }
        }
    }

    /// Replaces `failed` with a fresh producer (unless another task already did).
    fn reset_producer(&self, failed: &FutureProducer) {
        let mut guard = self.inner.producer.write().expect("producer lock");
        if std::ptr::eq(guard.client().native_ptr(), failed.client().native_ptr()) {
            match new_producer(&self.inner.config) {
                Ok(p) => {
                    tracing::warn!("Kafka publish timed out: producer re-created");
                    *guard = p;
                }
                Err(e) => tracing::error!(error = %e, "cannot re-create the Kafka producer"),
            }
        }
    }

    /// Flushes the producer (call on shutdown).
    pub fn flush(&self, timeout: Duration) {
        let producer = self.inner.producer.read().expect("producer lock").clone();
        let _ = producer.flush(timeout);
    }

    async fn consume(self, sub: Subscription, slot: super::StateSlot, shutdown: CancellationToken) {
        let cfg = &self.inner.config;
        let mut cc = base_config(cfg);
        cc.set("group.id", &sub.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in &cfg.consumer_properties {
            cc.set(k, v);
        }
        let consumer: StreamConsumer = match cc.create() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(group = %sub.group, error = %e, "cannot create Kafka consumer");
                slot.set(ConsumerState::Failed(e.to_string()));
                return;
            }
        };
        let consumer = Arc::new(consumer);
        let topics: Vec<String> = sub.topics.iter().map(|t| self.full(t)).collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        if let Err(e) = consumer.subscribe(&refs) {
            slot.set(ConsumerState::Failed(e.to_string()));
            return;
        }
        slot.set(ConsumerState::Running);
        loop {
            let msg = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                m = consumer.recv() => m,
            };
            let msg = match msg {
                Ok(m) => m.detach(),
                Err(e) => {
                    tracing::warn!(group = %sub.group, error = %e, "Kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if !self.process(&sub, &consumer, &msg, &shutdown).await {
                // Shutdown while retrying: the offset stays where it was; redelivered later.
                break;
            }
            if let Err(e) = consumer.store_offset(msg.topic(), msg.partition(), msg.offset()) {
                // The partition was revoked meanwhile: its new owner redelivers (at least once).
                tracing::warn!(group = %sub.group, error = %e, "cannot store offset");
                continue;
            }
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
                tracing::warn!(group = %sub.group, error = %e, "offset commit failed; retried with the next");
            }
        }
        // Commit what was stored synchronously, then leave the group (both block: off the runtime).
        let group = sub.group.clone();
        let _ = tokio::task::spawn_blocking(move || {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(%group, error = %e, "final offset commit failed"),
            }
            consumer.unsubscribe();
            drop(consumer);
        })
        .await;
        slot.set(ConsumerState::Stopped);
    }

    /// Handles one message to the end: processed, or dead-lettered. False when shutdown
    /// interrupted it (then nothing may be committed).
    async fn process(
        &self,
        sub: &Subscription,
        _consumer: &StreamConsumer,
        msg: &OwnedMessage,
        shutdown: &CancellationToken,
    ) -> bool {
        let parsed = Envelope::from_kafka(
            |name| msg.headers().and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value)),
            msg.payload(),
        );
        let (error, attempts, ty) = match parsed {
            Ok(event) => {
                match deliver(&*sub.handler, &event, &sub.group, &self.inner.config.retry, shutdown).await {
                    Outcome::Processed => return true,
                    Outcome::Cancelled => return false,
                    Outcome::Exhausted { error, attempts } => (error, attempts, event.ty),
                }
            }
            Err(e) => (e.to_string(), 0, "malformed".to_string()),
        };
        tracing::error!(topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), group = %sub.group, %error, "event dead-lettered");
        let dlq = contract::dead_letter_topic(msg.topic(), &sub.group);
        let mut attempt = 0;
        loop {
            let mut hs = OwnedHeaders::new();
            if let Some(orig) = msg.headers() {
                for h in orig.iter() {
                    hs = hs.insert(Header { key: h.key, value: h.value });
                }
            }
            let extra = [
                (headers::DLQ_ERROR, error.clone()),
                (headers::DLQ_GROUP, sub.group.clone()),
                (headers::DLQ_ATTEMPTS, attempts.to_string()),
                (headers::DLQ_ORIGINAL_TOPIC, msg.topic().to_string()),
                (headers::DLQ_ORIGINAL_PARTITION, msg.partition().to_string()),
                (headers::DLQ_ORIGINAL_OFFSET, msg.offset().to_string()),
            ];
            for (k, v) in &extra {
                hs = hs.insert(Header { key: k, value: Some(v.as_bytes()) });
            }
            match self.send(&dlq, msg.key(), msg.payload(), hs).await {
                Ok(()) => {
                    metrics::counter!("events_dead_lettered_total", "type" => ty, "group" => sub.group.clone())
                        .increment(1);
                    return true;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(%dlq, error = %e, "dead-letter publish failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(self.inner.config.retry.backoff(attempt)) => {}
                    }
                }
            }
        }
    }
}

fn base_config(cfg: &EventsConfig) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &cfg.brokers).set("client.id", &cfg.client_id);
    for (k, v) in &cfg.properties {
        cc.set(k, v);
    }
    cc
}

fn kafka_err(e: KafkaError) -> EventError {
    EventError::Kafka(e.to_string())
}

#[async_trait::async_trait]
impl EventBus for KafkaBus {
    async fn publish(&self, event: &Envelope) -> Result<(), EventError> {
        let topic = self.full(event.topic()?);
        let mut hs = OwnedHeaders::new();
        for (k, v) in event.to_kafka_headers() {
            hs = hs.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        let value = event.to_kafka_value();
        self.send(&topic, Some(event.key().as_bytes()), Some(&value), hs).await?;
        metrics::counter!("events_published_total", "type" => event.ty.clone()).increment(1);
        Ok(())
    }

    fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
        handler: Arc<dyn super::Handler>,
    ) -> Result<(), EventError> {
        self.inner.registry.add(group, topics, handler)
    }

    async fn start(&self, shutdown: CancellationToken) -> Result<Consumers, EventError> {
        let subs = self.inner.registry.take()?;
        if self.inner.config.create_topics {
            let mut names = std::collections::BTreeSet::new();
            for s in &subs {
                for t in &s.topics {
                    names.insert(self.full(t));
                    names.insert(contract::dead_letter_topic(&self.full(t), &s.group));
                }
            }
            let names: Vec<String> = names.into_iter().collect();
            if let Err(e) = self.ensure_topics(&names).await {
                self.inner.registry.reopen();
                return Err(e);
            }
        }
        let mut consumers = Consumers::new(shutdown.clone());
        for sub in subs {
            let slot = consumers.slot(format!("{}/{}", sub.group, sub.topics.join(",")));
            consumers.push(tokio::spawn(self.clone().consume(sub, slot, shutdown.clone())));
        }
        let bus = self.clone();
        consumers.on_stopped(move || bus.inner.registry.reopen());
        Ok(consumers)
    }
}
