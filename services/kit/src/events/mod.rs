//! The event backbone: CloudEvents on Kafka (or in process), a transactional outbox, and
//! idempotent consumers with an inbox. See `docs/events.md` and ADR 0006.
//!
//! - [`Envelope`]: CloudEvents 1.0 with `correlationid`/`causationid`; typed payloads implement
//!   [`EventPayload`] (all of them live in [`payloads`]); topics and types in [`contract`].
//! - [`EventBus`]: `publish` returns once the broker acknowledged; handlers are registered with
//!   `subscribe` and run only after `start`. Two implementations with the same semantics:
//!   [`kafka::KafkaBus`] and [`memory::InProcessBus`]. Delivery is at least once per consumer
//!   group, in order per key; a failing (or panicking) handler is retried with exponential
//!   backoff and then dead-lettered, never acknowledged and forgotten.
//! - [`outbox`]: events written in the caller's transaction, published by a [`outbox::Relay`].
//! - [`inbox`]: processed event ids per consumer group, so redelivery has no second effect.

/// Topics, event types, sources, the type → topic table, headers, env keys: `contract::events`
/// of the `shop-contract` crate.
pub use ::contract::events as contract;
mod delivery;
mod envelope;
pub mod inbox;
pub mod kafka;
pub mod memory;
pub mod outbox;
pub mod payloads;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use delivery::RetryPolicy;
pub use envelope::{Envelope, EventPayload, JSON, SPEC_VERSION};

/// Errors of the event machinery (not of handlers: those return `anyhow::Error`).
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event type `{0}` is not in the topic contract")]
    UnknownType(String),
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    #[error("publish failed: {0}")]
    Publish(String),
    #[error("consumers already started: register every handler before `start`")]
    AlreadyStarted,
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What a handler returns; any error (or a panic) means "not processed, retry".
pub type HandlerResult = anyhow::Result<()>;

/// Processes one event. Make the effect idempotent with [`inbox::claim`] in the same
/// database transaction: delivery is at least once.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, event: Envelope) -> HandlerResult;
}

/// A handler from an async closure: `handler_fn(|ev| async move { … Ok(()) })`.
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(Envelope) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    struct FnHandler<F>(F);
    #[async_trait::async_trait]
    impl<F, Fut> Handler for FnHandler<F>
    where
        F: Fn(Envelope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        async fn handle(&self, event: Envelope) -> HandlerResult {
            (self.0)(event).await
        }
    }
    Arc::new(FnHandler(f))
}

/// One registered handler: a consumer group reading some (logical) topics.
#[derive(Clone)]
pub struct Subscription {
    pub group: String,
    pub topics: Vec<String>,
    pub handler: Arc<dyn Handler>,
}

/// The broker-facing contract shared by the Kafka and the in-process bus.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes `event` to its type's topic, keyed by its subject. Returns once the broker
    /// acknowledged it (for Kafka: the delivery report came back Ok under `acks=all`).
    async fn publish(&self, event: &Envelope) -> Result<(), EventError>;

    /// Registers `handler` for consumer group `group` on the logical `topics`. Each group
    /// receives every event of its topics; several subscriptions in one group share the work
    /// (partitions). Fails once [`EventBus::start`] ran: register everything first.
    fn subscribe(&self, group: &str, topics: &[&str], handler: Arc<dyn Handler>) -> Result<(), EventError>;

    /// Starts consuming for every subscription registered so far. The consumers stop when
    /// `shutdown` is cancelled: they stop fetching, finish the in-flight event, commit, and
    /// [`Consumers::join`] returns.
    async fn start(&self, shutdown: CancellationToken) -> Result<Consumers, EventError>;
}

/// Subscriptions registered but not started; shared by both buses.
#[derive(Default)]
pub(crate) struct Registry {
    pending: Mutex<Vec<Subscription>>,
    started: std::sync::atomic::AtomicBool,
}

impl Registry {
    pub(crate) fn add(
        &self,
        group: &str,
        topics: &[&str],
        handler: Arc<dyn Handler>,
    ) -> Result<(), EventError> {
        if self.started.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(EventError::AlreadyStarted);
        }
        self.pending.lock().expect("registry lock").push(Subscription {
            group: group.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            handler,
        });
        Ok(())
    }

    pub(crate) fn take(&self) -> Result<Vec<Subscription>, EventError> {
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(EventError::AlreadyStarted);
        }
        Ok(std::mem::take(&mut *self.pending.lock().expect("registry lock")))
    }

    /// After the previous consumers stopped, a new set may be registered and started.
    pub(crate) fn reopen(&self) {
        self.started.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// State of one running consumer, as reported by `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerState {
    Starting,
    Running,
    Stopped,
    Failed(String),
}

/// The running consumers of one `start`: a readiness check and the handle to wait for them.
pub struct Consumers {
    states: Arc<Mutex<Vec<(String, ConsumerState)>>>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
    on_stopped: Option<Box<dyn FnOnce() + Send>>,
}

/// Shared view of the consumer states (cheap to clone into a readiness check).
#[derive(Clone)]
pub struct ConsumerHealth {
    states: Arc<Mutex<Vec<(String, ConsumerState)>>>,
}

impl Consumers {
    pub(crate) fn new(shutdown: CancellationToken) -> Consumers {
        Consumers { states: Arc::default(), tasks: Vec::new(), shutdown, on_stopped: None }
    }

    /// Registers a consumer's name and returns the index to update its state with.
    pub(crate) fn slot(&self, name: String) -> StateSlot {
        let mut s = self.states.lock().expect("state lock");
        s.push((name, ConsumerState::Starting));
        StateSlot { states: self.states.clone(), index: s.len() - 1 }
    }

    pub(crate) fn push(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    pub(crate) fn on_stopped(&mut self, f: impl FnOnce() + Send + 'static) {
        self.on_stopped = Some(Box::new(f));
    }

    pub fn health(&self) -> ConsumerHealth {
        ConsumerHealth { states: self.states.clone() }
    }

    pub fn states(&self) -> Vec<(String, ConsumerState)> {
        self.states.lock().expect("state lock").clone()
    }

    /// Cancels the shutdown token and waits until every consumer committed and stopped.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.join().await;
    }

    /// Waits until every consumer stopped (after the shutdown token was cancelled).
    pub async fn join(mut self) {
        for t in self.tasks.drain(..) {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "event consumer task ended abnormally");
            }
        }
        if let Some(f) = self.on_stopped.take() {
            f();
        }
    }
}

pub(crate) struct StateSlot {
    states: Arc<Mutex<Vec<(String, ConsumerState)>>>,
    index: usize,
}

impl StateSlot {
    pub(crate) fn set(&self, state: ConsumerState) {
        self.states.lock().expect("state lock")[self.index].1 = state;
    }
}

#[async_trait::async_trait]
impl crate::health::Check for ConsumerHealth {
    fn name(&self) -> &str {
        "event-consumers"
    }
    async fn check(&self) -> Result<(), String> {
        let states = self.states.lock().expect("state lock");
        let bad: Vec<String> = states
            .iter()
            .filter(|(_, s)| *s != ConsumerState::Running)
            .map(|(n, s)| format!("{n}: {s:?}"))
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }
}

/// Which bus a service uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// The in-process bus (`shop serve all`, embedded default).
    #[default]
    Memory,
    Kafka,
}

/// Event configuration, under `events` in a service's config (`SHOP_EVENTS__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    pub bus: BusKind,
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Prefix of every topic name (the platform name in Kubernetes, e.g. `shop-`).
    pub topic_prefix: String,
    pub client_id: String,
    /// librdkafka properties for producers and consumers (passed through verbatim, last wins).
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the producer only.
    pub producer_properties: BTreeMap<String, String>,
    /// librdkafka properties for consumers only.
    pub consumer_properties: BTreeMap<String, String>,
    /// Create the contract topics and dead-letter topics on start (dev/test; the operator
    /// creates them in Kubernetes).
    pub create_topics: bool,
    /// Partitions of topics created by the bus.
    pub partitions: i32,
    /// How long a publish may wait for the broker's acknowledgement.
    #[serde(with = "millis")]
    pub publish_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            bus: BusKind::Memory,
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            client_id: "shop".into(),
            properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            create_topics: false,
            partitions: 4,
            publish_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Connects the configured bus.
pub async fn connect(config: &EventsConfig) -> Result<Arc<dyn EventBus>, EventError> {
    Ok(match config.bus {
        BusKind::Memory => {
            Arc::new(memory::InProcessBus::new(config.topic_prefix.clone(), config.retry.clone()))
        }
        BusKind::Kafka => Arc::new(kafka::KafkaBus::connect(config.clone()).await?),
    })
}
