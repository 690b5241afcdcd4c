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
//! - Configuration: [`EventsConfig`]; TLS and SASL through typed keys, arbitrary librdkafka
//!   properties pass through. Every client (producer, consumers, admin) gets the same
//!   connection properties ([`EventsConfig::client_properties`]).
//! - Start-up fails instead of hanging: `connect` (the producer) and `start` (the consumers)
//!   wait for a metadata answer within `connect_timeout`, and fail at once on an SSL or
//!   authentication error, naming the brokers and the keys involved (never the password).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use super::contract::{self, headers};
use super::delivery::{deliver, Outcome};
use super::tap::Tap;
use super::{
    keys, ConsumerState, Consumers, Envelope, EventBus, EventError, EventsConfig, Registry, Subscription,
};

/// The production event bus.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: EventsConfig,
    /// The connection properties of every client ([`EventsConfig::client_properties`]).
    client_properties: BTreeMap<String, String>,
    /// Replaced after a timed-out publish: a fresh client gets a new idempotent producer id
    /// and fresh metadata (a broker that lost its state, e.g. restarted, otherwise never
    /// accepts the old producer's sequence again).
    producer: std::sync::RwLock<FutureProducer<BusContext>>,
    registry: Registry,
    /// The events this process published (in one process: every service's).
    tap: Tap,
}

/// The client context of the bus's clients: librdkafka's errors and log lines go to the log,
/// and the most telling recent failure is kept so that a start-up failure can say what went
/// wrong (an SSL handshake, an authentication) rather than only "timed out".
#[derive(Clone, Default)]
pub struct BusContext {
    last_error: Arc<Mutex<Option<ClientFailure>>>,
    /// The consumer group of a consumer's context: its statistics report the group's lag.
    group: Option<String>,
}

/// A failure reported by librdkafka; `fatal` ones (TLS, authentication) end start-up at once.
#[derive(Clone, Debug)]
struct ClientFailure {
    reason: String,
    fatal: bool,
}

/// Whether a librdkafka failure is one that retrying will not fix.
fn is_fatal(code: Option<RDKafkaErrorCode>, reason: &str) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::SSL
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::UnsupportedSASLMechanism
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::IllegalSASLState
        )
    ) || reason.contains("SSL handshake failed")
        || reason.contains("SASL authentication error")
        || reason.contains("mechanism handshake failed")
}

impl BusContext {
    fn record(&self, code: Option<RDKafkaErrorCode>, reason: &str) {
        // Log lines may start with librdkafka's thread name: `[thrd:…]: `.
        let reason = match reason.strip_prefix("[thrd:").and_then(|r| r.split_once("]: ")) {
            Some((_, rest)) => rest,
            None => reason,
        };
        let fatal = is_fatal(code, reason);
        let vague = code == Some(RDKafkaErrorCode::AllBrokersDown);
        let mut last = self.last_error.lock().expect("error lock");
        // A fatal reason is kept; "all brokers down" never replaces a more specific one.
        let keep = match last.as_ref() {
            None => true,
            Some(l) if l.fatal => false,
            Some(_) => fatal || !vague,
        };
        if keep {
            *last = Some(ClientFailure { reason: reason.to_string(), fatal });
        }
    }

    fn last_error(&self) -> Option<ClientFailure> {
        self.last_error.lock().expect("error lock").clone()
    }
}

impl ClientContext for BusContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
        // Connection failures (`FAIL`: an SSL handshake, a refused SASL mechanism) are logged,
        // not always reported through the error callback.
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) && fac == "FAIL" {
            self.record(None, message);
        }
    }

    /// A consumer's statistics (every `statistics.interval.ms`): its lag per partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(group) = &self.group else { return };
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka reports -1 for the internal partition and while the lag is unknown.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(crate::contract::metrics::CONSUMER_LAG.name, "group" => group.clone(),
                        "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            // Follows every connection failure, which was logged already.
            tracing::debug!(error = %error, reason, "Kafka client error");
        } else {
            tracing::warn!(error = %error, reason, "Kafka client error");
        }
        self.record(code, reason);
    }
}

impl ConsumerContext for BusContext {}

/// A configuration error at start-up: the client could not be created from the properties.
fn config_err(what: &str, config: &EventsConfig, e: KafkaError) -> EventError {
    EventError::Config(format!("{what} for {}: {e}", config.describe_connection()))
}

/// A producer with the bus's connection properties, and its context (to read its errors).
fn new_producer(
    client_properties: &BTreeMap<String, String>,
    config: &EventsConfig,
) -> Result<(FutureProducer<BusContext>, BusContext), EventError> {
    let mut cc = client_config(client_properties);
    cc.set("enable.idempotence", "true").set("acks", "all");
    cc.set("message.timeout.ms", config.publish_timeout.as_millis().to_string());
    for (k, v) in &config.producer_properties {
        cc.set(k, v);
    }
    let context = BusContext::default();
    let producer = cc
        .create_with_context(context.clone())
        .map_err(|e| config_err("cannot create the Kafka producer", config, e))?;
    Ok((producer, context))
}

/// Checks that a client reaches the brokers: `probe` sends a metadata request that waits at
/// most the given time (and serves the client's callbacks), repeated until one is answered or
/// `connect_timeout` passed; an SSL or authentication failure reported through `context` ends
/// the wait at once. Runs on a blocking thread that ends when this returns.
async fn verify_connection<F>(
    what: &str,
    config: &EventsConfig,
    context: &BusContext,
    mut probe: F,
) -> Result<(), EventError>
where
    F: FnMut(Duration) -> Result<(), KafkaError> + Send + 'static,
{
    let timeout = config.connect_timeout;
    let ctx = context.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + timeout;
        let mut last = String::from("no answer");
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(last);
            }
            match probe(left.min(Duration::from_millis(250))) {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if let Some(f) = ctx.last_error().filter(|f| f.fatal) {
                return Err(f.reason);
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("metadata request task failed: {e}")));
    let failure = match outcome {
        Ok(()) => return Ok(()),
        Err(failure) => failure,
    };
    let reason = match context.last_error() {
        Some(f) if !failure.contains(&f.reason) => format!("{} ({failure})", f.reason),
        Some(_) => failure,
        // Nothing more specific: a TLS client whose handshake never completes (a plaintext
        // listener keeps waiting for the rest of what it takes for a request) says nothing.
        None if config.effective_security_protocol().contains("ssl") => format!(
            "{failure}; no TLS handshake completed: check that the brokers' listener speaks TLS \
             and that {} is the CA that signed their certificates",
            keys::SSL_CA_FILE
        ),
        None => failure,
    };
    Err(EventError::Unavailable(format!(
        "{what} cannot reach {} (waited at most {} ms, {}): {reason}",
        config.describe_connection(),
        timeout.as_millis(),
        keys::CONNECT_TIMEOUT,
    )))
}

impl KafkaBus {
    /// Creates the producer, checks that it reaches the brokers (a metadata request within
    /// `connect_timeout`), and, with `create_topics`, creates the contract topics.
    pub async fn connect(config: EventsConfig) -> Result<KafkaBus, EventError> {
        let client_properties = config.client_properties()?;
        let (producer, context) = new_producer(&client_properties, &config)?;
        warn_if_cleartext(&config);
        let probe = producer.clone();
        verify_connection("the Kafka producer", &config, &context, move |t| {
            probe.client().fetch_metadata(None, t).map(|_| ())
        })
        .await?;
        let producer = std::sync::RwLock::new(producer);
        let bus = KafkaBus {
            inner: Arc::new(Inner {
                config,
                client_properties,
                producer,
                registry: Registry::default(),
                tap: Tap::default(),
            }),
        };
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
        let admin: AdminClient<BusContext> = client_config(&self.inner.client_properties)
            .create_with_context(BusContext::default())
            .map_err(|e| config_err("cannot create the Kafka admin client", &self.inner.config, e))?;
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
    fn reset_producer(&self, failed: &FutureProducer<BusContext>) {
        let mut guard = self.inner.producer.write().expect("producer lock");
        if std::ptr::eq(guard.client().native_ptr(), failed.client().native_ptr()) {
            match new_producer(&self.inner.client_properties, &self.inner.config) {
                Ok((p, _)) => {
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

    /// The configuration of a consumer of `group`: the bus's connection properties, then the
    /// consumer settings and `consumer_properties`.
    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut cc = client_config(&self.inner.client_properties);
        cc.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Statistics feed `events_consumer_lag` (see `BusContext::stats`).
            .set("statistics.interval.ms", "15000");
        for (k, v) in &self.inner.config.consumer_properties {
            cc.set(k, v);
        }
        cc
    }

    fn new_consumer(&self, group: &str) -> Result<StreamConsumer<BusContext>, EventError> {
        let context = BusContext { group: Some(group.to_string()), ..BusContext::default() };
        self.consumer_config(group).create_with_context(context).map_err(|e| {
            config_err(&format!("cannot create the Kafka consumer of group {group}"), &self.inner.config, e)
        })
    }

    /// Checks that consumers of `group` reach the brokers, with a probe consumer of the same
    /// configuration that never subscribes (a stream consumer serves its callbacks only while
    /// it is read, so it could not tell why it failed).
    async fn verify_consumers(&self, group: &str) -> Result<(), EventError> {
        let context = BusContext::default();
        let probe: BaseConsumer<BusContext> =
            self.consumer_config(group).create_with_context(context.clone()).map_err(|e| {
                config_err(
                    &format!("cannot create the Kafka consumer of group {group}"),
                    &self.inner.config,
                    e,
                )
            })?;
        verify_connection("the Kafka consumers", &self.inner.config, &context, move |t| {
            let answer = probe.fetch_metadata(None, t).map(|_| ());
            // Serve the callbacks (errors, logs) queued meanwhile.
            let _ = probe.poll(Duration::ZERO);
            answer
        })
        .await
    }

    async fn consume(
        self,
        sub: Subscription,
        consumer: Arc<StreamConsumer<BusContext>>,
        slot: super::StateSlot,
        shutdown: CancellationToken,
    ) {
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
        _consumer: &StreamConsumer<BusContext>,
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
                    metrics::counter!(crate::contract::metrics::EVENTS_DEAD_LETTERED.name, "type" => ty, "group" => sub.group.clone())
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

/// Feeds `tap` with the events of every contract topic from the moment it starts, as a reader
/// that takes no part in delivery: the consumer is *assigned* every partition at its end offset
/// (it never subscribes, so it never joins a consumer group and takes no partition from anyone),
/// never stores or commits an offset, and drops what it cannot parse. Its `group.id` (required
/// by librdkafka) is unique to this process, `<client_id>-tap-<uuid>`, so no group's committed
/// offsets are ever touched. Topics that do not exist yet are looked up again every 10 s. Ends
/// when `shutdown` is cancelled.
pub fn spawn_tap(config: EventsConfig, tap: Tap, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            match run_tap(&config, &tap, &shutdown).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "event tap: cannot read Kafka; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}

/// The tap's consumer settings: the bus's connection properties, a private group id, no
/// offset storage, no commits.
fn tap_consumer_config(config: &EventsConfig) -> Result<ClientConfig, EventError> {
    let mut cc = client_config(&config.client_properties()?);
    cc.set("group.id", format!("{}-tap-{}", config.client_id, uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest");
    for (k, v) in &config.consumer_properties {
        cc.set(k, v);
    }
    Ok(cc)
}

async fn run_tap(config: &EventsConfig, tap: &Tap, shutdown: &CancellationToken) -> Result<(), EventError> {
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let consumer: Arc<StreamConsumer<BusContext>> = Arc::new(
        tap_consumer_config(config)?
            .create_with_context(BusContext::default())
            .map_err(|e| config_err("cannot create the event tap's Kafka consumer", config, e))?,
    );
    let wanted: Vec<String> =
        contract::topics::ALL.iter().map(|t| contract::full_topic(&config.topic_prefix, t)).collect();
    let mut assigned = TopicPartitionList::new();
    let mut missing = wanted.clone();
    let mut next_lookup = tokio::time::Instant::now();
    loop {
        if !missing.is_empty() && tokio::time::Instant::now() >= next_lookup {
            // Partitions of the topics not assigned yet (metadata is a blocking call).
            let c = consumer.clone();
            let names = missing.clone();
            let found = tokio::task::spawn_blocking(move || -> Result<Vec<(String, i32)>, KafkaError> {
                let md = c.fetch_metadata(None, Duration::from_secs(5))?;
                Ok(md
                    .topics()
                    .iter()
                    .filter(|t| names.iter().any(|n| n == t.name()) && t.error().is_none())
                    .flat_map(|t| t.partitions().iter().map(move |p| (t.name().to_string(), p.id())))
                    .collect())
            })
            .await
            .map_err(|e| EventError::Kafka(e.to_string()))?
            .map_err(kafka_err)?;
            if !found.is_empty() {
                for (topic, partition) in &found {
                    assigned.add_partition_offset(topic, *partition, Offset::End).map_err(kafka_err)?;
                }
                consumer.assign(&assigned).map_err(kafka_err)?;
                missing.retain(|m| !found.iter().any(|(t, _)| t == m));
                tracing::info!(topics = ?wanted.iter().filter(|w| !missing.contains(w)).collect::<Vec<_>>(), "event tap reading Kafka (no group, no commits)");
            }
            next_lookup = tokio::time::Instant::now() + Duration::from_secs(10);
        }
        let wait = if missing.is_empty() { Duration::from_secs(3600) } else { Duration::from_secs(10) };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            m = consumer.recv(), if assigned.count() > 0 => match m {
                Ok(m) => {
                    let parsed = Envelope::from_kafka(
                        |name| m.headers().and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value)),
                        m.payload(),
                    );
                    match parsed {
                        Ok(event) => tap.record(&event),
                        Err(e) => tracing::debug!(topic = m.topic(), error = %e, "event tap: not an event; skipped"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event tap: Kafka read failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn client_config(properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut cc = ClientConfig::new();
    for (k, v) in properties {
        cc.set(k, v);
    }
    cc
}

/// Warns loudly when the clients will talk to brokers off this host without TLS.
fn warn_if_cleartext(config: &EventsConfig) {
    let protocol = config.effective_security_protocol();
    if protocol.contains("ssl") {
        tracing::info!(brokers = %config.brokers, security_protocol = %protocol, "Kafka connections encrypted (TLS)");
        return;
    }
    let remote: Vec<&str> = config
        .brokers
        .split(',')
        .map(str::trim)
        .filter(|b| {
            let host = b.rsplit_once(':').map_or(*b, |(h, _)| h);
            !host.is_empty() && !crate::db::is_loopback_host(host)
        })
        .collect();
    if remote.is_empty() {
        tracing::info!(brokers = %config.brokers, security_protocol = %protocol, "Kafka connections in cleartext (loopback)");
    } else {
        tracing::warn!(
            brokers = %config.brokers,
            security_protocol = %protocol,
            "Kafka connections are NOT ENCRYPTED: events{} cross the network in cleartext. Set {}=ssl \
             or sasl_ssl (and {} for a private CA)",
            if protocol == "sasl_plaintext" { " and SASL credentials" } else { "" },
            keys::SECURITY_PROTOCOL,
            keys::SSL_CA_FILE,
        );
    }
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
        metrics::counter!(crate::contract::metrics::EVENTS_PUBLISHED.name, "type" => event.ty.clone())
            .increment(1);
        self.inner.tap.record(event);
        Ok(())
    }

    fn tap(&self) -> Option<Tap> {
        Some(self.inner.tap.clone())
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
        // Create every consumer first, and check that they reach the brokers (they share the
        // connection properties: one metadata request answers for all of them).
        let mut created = Vec::with_capacity(subs.len());
        for sub in subs {
            match self.new_consumer(&sub.group) {
                Ok(c) => created.push((sub, Arc::new(c))),
                Err(e) => {
                    self.inner.registry.reopen();
                    return Err(e);
                }
            }
        }
        if let Some((sub, _)) = created.first() {
            if let Err(e) = self.verify_consumers(&sub.group).await {
                self.inner.registry.reopen();
                return Err(e);
            }
        }
        let mut consumers = Consumers::new(shutdown.clone());
        for (sub, consumer) in created {
            let slot = consumers.slot(format!("{}/{}", sub.group, sub.topics.join(",")));
            consumers.push(tokio::spawn(self.clone().consume(sub, consumer, slot, shutdown.clone())));
        }
        let bus = self.clone();
        consumers.on_stopped(move || bus.inner.registry.reopen());
        Ok(consumers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka's statistics of a consumer (trimmed to what the lag needs; the format of
    /// STATISTICS.md): partition 0 is 42 behind, partition 1 is unknown (-1), -1 is internal.
    const STATS: &str = r#"{
        "name": "rdkafka#consumer-1", "client_id": "rdkafka", "type": "consumer", "ts": 1, "time": 1,
        "age": 1, "replyq": 0, "msg_cnt": 0, "msg_size": 0, "msg_max": 0, "msg_size_max": 0,
        "simple_cnt": 0, "metadata_cache_cnt": 1, "brokers": {}, "tx": 0, "tx_bytes": 0, "rx": 0,
        "rx_bytes": 0, "txmsgs": 0, "txmsg_bytes": 0, "rxmsgs": 0, "rxmsg_bytes": 0,
        "topics": {"shop-payments": {"topic": "shop-payments", "age": 1, "metadata_age": 1,
            "batchsize": {"min":0,"max":0,"avg":0,"sum":0,"stddev":0,"p50":0,"p75":0,"p90":0,"p95":0,"p99":0,"p99_99":0,"outofrange":0,"hdrsize":0,"cnt":0},
            "batchcnt": {"min":0,"max":0,"avg":0,"sum":0,"stddev":0,"p50":0,"p75":0,"p90":0,"p95":0,"p99":0,"p99_99":0,"outofrange":0,"hdrsize":0,"cnt":0},
            "partitions": {
                "0": {"partition": 0, "broker": 1, "leader": 1, "desired": true, "unknown": false,
                      "msgq_cnt": 0, "msgq_bytes": 0, "xmit_msgq_cnt": 0, "xmit_msgq_bytes": 0,
                      "fetchq_cnt": 0, "fetchq_size": 0, "fetch_state": "active", "query_offset": 0,
                      "next_offset": 58, "app_offset": 58, "stored_offset": 58, "committed_offset": 58,
                      "eof_offset": 100, "lo_offset": 0, "hi_offset": 100, "ls_offset": 100,
                      "consumer_lag": 42, "consumer_lag_stored": 42, "txmsgs": 0, "txbytes": 0,
                      "rxmsgs": 58, "rxbytes": 0, "msgs": 58, "rx_ver_drops": 0, "msgs_inflight": 0,
                      "next_ack_seq": 0, "next_err_seq": 0, "acked_msgid": 0},
                "1": {"partition": 1, "broker": 1, "leader": 1, "desired": true, "unknown": false,
                      "msgq_cnt": 0, "msgq_bytes": 0, "xmit_msgq_cnt": 0, "xmit_msgq_bytes": 0,
                      "fetchq_cnt": 0, "fetchq_size": 0, "fetch_state": "none", "query_offset": 0,
                      "next_offset": 0, "app_offset": -1001, "stored_offset": -1001, "committed_offset": -1001,
                      "eof_offset": -1001, "lo_offset": -1, "hi_offset": -1, "ls_offset": -1,
                      "consumer_lag": -1, "consumer_lag_stored": -1, "txmsgs": 0, "txbytes": 0,
                      "rxmsgs": 0, "rxbytes": 0, "msgs": 0, "rx_ver_drops": 0, "msgs_inflight": 0,
                      "next_ack_seq": 0, "next_err_seq": 0, "acked_msgid": 0},
                "-1": {"partition": -1, "broker": -1, "leader": -1, "desired": false, "unknown": false,
                      "msgq_cnt": 0, "msgq_bytes": 0, "xmit_msgq_cnt": 0, "xmit_msgq_bytes": 0,
                      "fetchq_cnt": 0, "fetchq_size": 0, "fetch_state": "none", "query_offset": 0,
                      "next_offset": 0, "app_offset": -1001, "stored_offset": -1001, "committed_offset": -1001,
                      "eof_offset": -1001, "lo_offset": -1, "hi_offset": -1, "ls_offset": -1,
                      "consumer_lag": 7, "consumer_lag_stored": 7, "txmsgs": 0, "txbytes": 0,
                      "rxmsgs": 0, "rxbytes": 0, "msgs": 0, "rx_ver_drops": 0, "msgs_inflight": 0,
                      "next_ack_seq": 0, "next_err_seq": 0, "acked_msgid": 0}
            }}}
    }"#;

    #[test]
    fn consumer_statistics_become_the_lag_gauge() {
        let stats: rdkafka::Statistics = serde_json::from_str(STATS).expect("librdkafka statistics");
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let consumer = BusContext { group: Some("order".into()), ..BusContext::default() };
        let producer = BusContext::default();
        metrics::with_local_recorder(&recorder, || {
            consumer.stats(stats.clone());
            producer.stats(stats); // a producer's statistics carry no group: nothing recorded
        });
        let text = handle.render();
        let lag: Vec<&str> = text.lines().filter(|l| l.starts_with("events_consumer_lag{")).collect();
        assert_eq!(lag.len(), 1, "only partition 0 has a known lag: {text}");
        assert!(lag[0].contains(r#"group="order""#) && lag[0].contains(r#"topic="shop-payments""#));
        assert!(lag[0].contains(r#"partition="0""#) && lag[0].ends_with(" 42"), "{}", lag[0]);
    }

    #[test]
    fn the_tap_consumer_never_commits_and_has_a_group_of_its_own() {
        let config =
            EventsConfig { brokers: "kafka:9092".into(), client_id: "shop-gw".into(), ..Default::default() };
        let (a, b) = (tap_consumer_config(&config).unwrap(), tap_consumer_config(&config).unwrap());
        assert_eq!(a.get("enable.auto.commit"), Some("false"));
        assert_eq!(a.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(a.get("bootstrap.servers"), Some("kafka:9092"));
        let group = a.get("group.id").unwrap();
        assert!(group.starts_with("shop-gw-tap-"), "{group}");
        assert_ne!(a.get("group.id"), b.get("group.id"), "one group per process: no one else's offsets");
    }
}
