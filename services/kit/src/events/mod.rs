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
//! - [`tap`]: a bounded, read-only view of recent events for operators, with no effect on delivery.

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
pub mod tap;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
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
    /// The events configuration is inconsistent; the message names the keys.
    #[error("invalid events configuration: {0}")]
    Config(String),
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

    /// The read-only view of the events this bus published ([`tap::Tap`]), if it keeps one.
    fn tap(&self) -> Option<tap::Tap> {
        None
    }
}

/// Registers `subscriptions` on `bus` (before it starts consuming): the one loop every
/// composition and test uses.
pub fn register(bus: &dyn EventBus, subscriptions: Vec<Subscription>) -> Result<(), EventError> {
    for s in subscriptions {
        let topics: Vec<&str> = s.topics.iter().map(String::as_str).collect();
        bus.subscribe(&s.group, &topics, s.handler)?;
    }
    Ok(())
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

/// How Kafka clients talk to the brokers: librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[serde(alias = "PLAINTEXT")]
    Plaintext,
    #[serde(alias = "SSL")]
    Ssl,
    #[serde(alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(alias = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    /// The librdkafka value.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }
    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    pub fn is_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// SASL mechanisms built into the bus's librdkafka (with OpenSSL; no Kerberos/GSSAPI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN", alias = "plain")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The librdkafka value.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Event configuration, under `events` in a service's config (`SHOP_EVENTS__*`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EventsConfig {
    pub bus: BusKind,
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Prefix of every topic name (the platform name in Kubernetes, e.g. `shop-`).
    pub topic_prefix: String,
    pub client_id: String,
    /// `security.protocol` of every Kafka client (`SHOP_EVENTS__SECURITY_PROTOCOL`); unset is
    /// librdkafka's `plaintext`.
    pub security_protocol: Option<SecurityProtocol>,
    /// `ssl.ca.location`: CA certificates (PEM) that verify the brokers (`SHOP_EVENTS__SSL_CA_FILE`);
    /// unset is the system's CA store as OpenSSL finds it.
    pub ssl_ca_file: Option<PathBuf>,
    /// `sasl.mechanism` (`SHOP_EVENTS__SASL_MECHANISM`): `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// `sasl.username` (`SHOP_EVENTS__SASL_USERNAME`).
    pub sasl_username: Option<String>,
    /// `sasl.password` (`SHOP_EVENTS__SASL_PASSWORD`), never logged.
    #[serde(serialize_with = "ser_opt_secret")]
    pub sasl_password: Option<SecretString>,
    /// librdkafka properties for producers, consumers and the admin client (passed through
    /// verbatim, last wins).
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
    /// How long start-up waits for the brokers to answer the producer's and the consumers'
    /// metadata request before it fails (`SHOP_EVENTS__CONNECT_TIMEOUT`, ms).
    #[serde(with = "millis")]
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

// Serialised in clear so a configuration round-trips; `Debug` stays redacted.
fn ser_opt_secret<S: serde::Serializer>(s: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.expose_secret()),
        None => ser.serialize_none(),
    }
}

/// librdkafka properties whose values are credentials: redacted in `Debug`.
fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.ends_with(".key.pem") || k.contains("sasl.jaas")
}

fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    map.iter()
        .map(|(k, v)| (k.as_str(), if is_secret_property(k) { "[REDACTED]" } else { v.as_str() }))
        .collect()
}

impl std::fmt::Debug for EventsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsConfig")
            .field("bus", &self.bus)
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("client_id", &self.client_id)
            .field("security_protocol", &self.security_protocol)
            .field("ssl_ca_file", &self.ssl_ca_file)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password)
            .field("properties", &redacted(&self.properties))
            .field("producer_properties", &redacted(&self.producer_properties))
            .field("consumer_properties", &redacted(&self.consumer_properties))
            .field("create_topics", &self.create_topics)
            .field("partitions", &self.partitions)
            .field("publish_timeout", &self.publish_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            bus: BusKind::Memory,
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            client_id: "shop".into(),
            security_protocol: None,
            ssl_ca_file: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            create_topics: false,
            partitions: 4,
            publish_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// The configuration keys of the typed Kafka security settings.
pub mod keys {
    pub const BROKERS: &str = "SHOP_EVENTS__BROKERS";
    pub const SECURITY_PROTOCOL: &str = "SHOP_EVENTS__SECURITY_PROTOCOL";
    pub const SSL_CA_FILE: &str = "SHOP_EVENTS__SSL_CA_FILE";
    pub const SASL_MECHANISM: &str = "SHOP_EVENTS__SASL_MECHANISM";
    pub const SASL_USERNAME: &str = "SHOP_EVENTS__SASL_USERNAME";
    pub const SASL_PASSWORD: &str = "SHOP_EVENTS__SASL_PASSWORD";
    pub const CONNECT_TIMEOUT: &str = "SHOP_EVENTS__CONNECT_TIMEOUT";
}

impl EventsConfig {
    /// The security protocol in effect: the typed key, else a pass-through `security.protocol`,
    /// else librdkafka's default `plaintext`.
    pub fn effective_security_protocol(&self) -> String {
        match (self.security_protocol, self.properties.get("security.protocol")) {
            (Some(p), _) => p.as_str().to_string(),
            (None, Some(p)) => p.to_ascii_lowercase(),
            (None, None) => "plaintext".to_string(),
        }
    }

    /// The librdkafka properties every client (producer, consumer, admin) gets: bootstrap
    /// servers, client id, the typed security settings, then `properties`. Checks the typed
    /// settings against each other and against the pass-through maps (a key set both ways is
    /// an error), and that the CA file is a readable PEM file; errors name the keys.
    pub fn client_properties(&self) -> Result<BTreeMap<String, String>, EventError> {
        use keys::*;
        let mut typed: Vec<(&str, &str, String)> = Vec::new(); // (librdkafka key, our key, value)
        if let Some(p) = self.security_protocol {
            typed.push(("security.protocol", SECURITY_PROTOCOL, p.as_str().to_string()));
        }
        if let Some(ca) = &self.ssl_ca_file {
            typed.push(("ssl.ca.location", SSL_CA_FILE, ca.display().to_string()));
        }
        if let Some(m) = self.sasl_mechanism {
            typed.push(("sasl.mechanism", SASL_MECHANISM, m.as_str().to_string()));
        }
        if let Some(u) = &self.sasl_username {
            typed.push(("sasl.username", SASL_USERNAME, u.clone()));
        }
        if let Some(p) = &self.sasl_password {
            typed.push(("sasl.password", SASL_PASSWORD, p.expose_secret().to_string()));
        }
        let mut errors = Vec::new();
        for (rd, ours, _) in &typed {
            for (map, name) in [
                (&self.properties, "PROPERTIES"),
                (&self.producer_properties, "PRODUCER_PROPERTIES"),
                (&self.consumer_properties, "CONSUMER_PROPERTIES"),
            ] {
                if map.contains_key(*rd) {
                    errors.push(format!("{ours} and SHOP_EVENTS__{name}__{rd} are both set: keep one"));
                }
            }
        }
        if let Some(p) = self.security_protocol {
            let sasl_keys: Vec<&str> = [
                (self.sasl_mechanism.is_some(), SASL_MECHANISM),
                (self.sasl_username.is_some(), SASL_USERNAME),
                (self.sasl_password.is_some(), SASL_PASSWORD),
            ]
            .into_iter()
            .filter_map(|(set, k)| set.then_some(k))
            .collect();
            if !p.is_sasl() && !sasl_keys.is_empty() {
                errors.push(format!(
                    "{} set, but {SECURITY_PROTOCOL} is {}: use sasl_ssl (or sasl_plaintext)",
                    sasl_keys.join(", "),
                    p.as_str()
                ));
            }
            if p.is_sasl() {
                for (missing, k) in [
                    (self.sasl_mechanism.is_none(), SASL_MECHANISM),
                    (self.sasl_username.is_none(), SASL_USERNAME),
                    (self.sasl_password.is_none(), SASL_PASSWORD),
                ] {
                    if missing {
                        errors.push(format!("{k} is required with {SECURITY_PROTOCOL}={}", p.as_str()));
                    }
                }
            }
            if !p.is_tls() && self.ssl_ca_file.is_some() {
                errors.push(format!(
                    "{SSL_CA_FILE} set, but {SECURITY_PROTOCOL} is {}: use ssl (or sasl_ssl)",
                    p.as_str()
                ));
            }
        } else if self.sasl_mechanism.is_some()
            || self.sasl_username.is_some()
            || self.sasl_password.is_some()
            || self.ssl_ca_file.is_some()
        {
            errors.push(format!(
                "TLS or SASL settings given without {SECURITY_PROTOCOL} (ssl, sasl_ssl or sasl_plaintext)"
            ));
        }
        if let Some(ca) = &self.ssl_ca_file {
            if let Err(e) = crate::db::read_ca_file(ca, SSL_CA_FILE) {
                errors.push(e.to_string());
            }
        }
        if !errors.is_empty() {
            return Err(EventError::Config(errors.join("; ")));
        }
        let mut props = BTreeMap::new();
        props.insert("bootstrap.servers".to_string(), self.brokers.clone());
        props.insert("client.id".to_string(), self.client_id.clone());
        for (rd, _, value) in typed {
            props.insert(rd.to_string(), value);
        }
        for (k, v) in &self.properties {
            props.insert(k.clone(), v.clone());
        }
        Ok(props)
    }

    /// Describes how the clients reach the brokers, naming the keys (for errors; no secrets).
    pub fn describe_connection(&self) -> String {
        use keys::*;
        let mut s = format!(
            "Kafka at {} ({BROKERS}), security.protocol={}",
            self.brokers,
            self.effective_security_protocol()
        );
        if self.security_protocol.is_some() {
            s.push_str(&format!(" ({SECURITY_PROTOCOL})"));
        }
        if let Some(ca) = &self.ssl_ca_file {
            s.push_str(&format!(", CA {SSL_CA_FILE}={}", ca.display()));
        }
        if let Some(m) = self.sasl_mechanism {
            s.push_str(&format!(", {SASL_MECHANISM}={}", m.as_str()));
        }
        if let Some(u) = &self.sasl_username {
            s.push_str(&format!(", {SASL_USERNAME}={u} (password from {SASL_PASSWORD})"));
        }
        s
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

#[cfg(test)]
// `figment::Jail` closures return `figment::Error`, which is large; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn ca_file() -> (tempfile_path::TempPath, String) {
        let path = tempfile_path::TempPath::new(
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        );
        let s = path.0.display().to_string();
        (path, s)
    }

    /// A file removed when dropped (no dependency for one helper).
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new(name: &str, content: &str) -> TempPath {
                let p = std::env::temp_dir()
                    .join(format!("shop-events-{}-{name}", uuid::Uuid::new_v4().simple()));
                std::fs::write(&p, content).unwrap();
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn sasl_ssl(ca: &str) -> EventsConfig {
        EventsConfig {
            bus: BusKind::Kafka,
            brokers: "kafka-0.kafka:9093,kafka-1.kafka:9093".into(),
            security_protocol: Some(SecurityProtocol::SaslSsl),
            ssl_ca_file: Some(ca.into()),
            sasl_mechanism: Some(SaslMechanism::ScramSha512),
            sasl_username: Some("shop".into()),
            sasl_password: Some("hunter2".into()),
            ..Default::default()
        }
    }

    #[test]
    fn typed_settings_become_the_client_properties() {
        let (_f, ca) = ca_file();
        let mut cfg = sasl_ssl(&ca);
        cfg.properties.insert("socket.keepalive.enable".into(), "true".into());
        let props = cfg.client_properties().unwrap();
        let get = |k: &str| props.get(k).map(String::as_str);
        assert_eq!(get("bootstrap.servers"), Some("kafka-0.kafka:9093,kafka-1.kafka:9093"));
        assert_eq!(get("client.id"), Some("shop"));
        assert_eq!(get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(get("ssl.ca.location"), Some(ca.as_str()));
        assert_eq!(get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(get("sasl.username"), Some("shop"));
        assert_eq!(get("sasl.password"), Some("hunter2"), "the secret goes to librdkafka only");
        assert_eq!(get("socket.keepalive.enable"), Some("true"), "pass-through kept");

        let described = cfg.describe_connection();
        assert!(
            described.contains("SHOP_EVENTS__SASL_USERNAME=shop") && !described.contains("hunter2"),
            "{described}"
        );
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("hunter2"), "Debug redacts the password: {debug}");

        // No typed settings: librdkafka's defaults, nothing added.
        let plain = EventsConfig::default().client_properties().unwrap();
        assert_eq!(plain.keys().collect::<Vec<_>>(), ["bootstrap.servers", "client.id"]);
    }

    #[test]
    fn debug_redacts_secret_pass_through_properties() {
        let mut cfg = EventsConfig::default();
        cfg.properties.insert("sasl.password".into(), "hunter2".into());
        cfg.consumer_properties.insert("ssl.key.password".into(), "hunter3".into());
        cfg.producer_properties.insert("sasl.oauthbearer.client.secret".into(), "hunter4".into());
        cfg.properties.insert("linger.ms".into(), "5".into());
        let debug = format!("{cfg:?}");
        for secret in ["hunter2", "hunter3", "hunter4"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("linger.ms") && debug.contains("\"5\""), "{debug}");
    }

    fn err(cfg: &EventsConfig) -> String {
        cfg.client_properties().unwrap_err().to_string()
    }

    #[test]
    fn inconsistent_settings_are_errors_naming_the_keys() {
        let (_f, ca) = ca_file();

        let mut both = sasl_ssl(&ca);
        both.properties.insert("security.protocol".into(), "plaintext".into());
        both.consumer_properties.insert("sasl.password".into(), "x".into());
        let e = err(&both);
        assert!(
            e.contains("SHOP_EVENTS__SECURITY_PROTOCOL and SHOP_EVENTS__PROPERTIES__security.protocol"),
            "{e}"
        );
        assert!(
            e.contains("SHOP_EVENTS__SASL_PASSWORD and SHOP_EVENTS__CONSUMER_PROPERTIES__sasl.password"),
            "{e}"
        );

        let mut ssl_with_sasl = sasl_ssl(&ca);
        ssl_with_sasl.security_protocol = Some(SecurityProtocol::Ssl);
        let e = err(&ssl_with_sasl);
        assert!(
            e.contains("SHOP_EVENTS__SASL_MECHANISM") && e.contains("SHOP_EVENTS__SECURITY_PROTOCOL is ssl"),
            "{e}"
        );

        let mut no_user = sasl_ssl(&ca);
        no_user.sasl_username = None;
        no_user.sasl_password = None;
        let e = err(&no_user);
        assert!(
            e.contains("SHOP_EVENTS__SASL_USERNAME is required")
                && e.contains("SHOP_EVENTS__SASL_PASSWORD is required"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");

        let mut ca_in_cleartext = sasl_ssl(&ca);
        ca_in_cleartext.security_protocol = Some(SecurityProtocol::SaslPlaintext);
        assert!(err(&ca_in_cleartext)
            .contains("SHOP_EVENTS__SSL_CA_FILE set, but SHOP_EVENTS__SECURITY_PROTOCOL is sasl_plaintext"));

        let mut no_protocol = sasl_ssl(&ca);
        no_protocol.security_protocol = None;
        assert!(err(&no_protocol).contains("without SHOP_EVENTS__SECURITY_PROTOCOL"));

        let mut missing_ca = sasl_ssl("/nonexistent/kafka-ca.pem");
        missing_ca.sasl_password = Some("hunter2".into());
        let e = err(&missing_ca);
        assert!(e.contains("SHOP_EVENTS__SSL_CA_FILE") && e.contains("/nonexistent/kafka-ca.pem"), "{e}");
    }

    #[test]
    fn keys_load_from_the_environment() {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Root {
            events: EventsConfig,
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("SHOP_EVENTS__SECURITY_PROTOCOL", "SASL_SSL");
            jail.set_env("SHOP_EVENTS__SSL_CA_FILE", "/etc/kafka/ca.pem");
            jail.set_env("SHOP_EVENTS__SASL_MECHANISM", "SCRAM-SHA-256");
            jail.set_env("SHOP_EVENTS__SASL_USERNAME", "shop");
            jail.set_env("SHOP_EVENTS__SASL_PASSWORD", "hunter2");
            jail.set_env("SHOP_EVENTS__CONNECT_TIMEOUT", "2500");
            let root: Root = crate::config::load().unwrap();
            let e = root.events;
            assert_eq!(e.security_protocol, Some(SecurityProtocol::SaslSsl));
            assert_eq!(e.ssl_ca_file.as_deref(), Some(std::path::Path::new("/etc/kafka/ca.pem")));
            assert_eq!(e.sasl_mechanism, Some(SaslMechanism::ScramSha256));
            assert_eq!(e.sasl_username.as_deref(), Some("shop"));
            assert_eq!(
                e.sasl_password.as_ref().map(|p| p.expose_secret().to_string()),
                Some("hunter2".into())
            );
            assert_eq!(e.connect_timeout, Duration::from_millis(2500));

            jail.set_env("SHOP_EVENTS__SECURITY_PROTOCOL", "tls");
            let err = crate::config::load::<Root>().err().unwrap().to_string();
            assert!(err.contains("SHOP_EVENTS__SECURITY_PROTOCOL"), "{err}");
            Ok(())
        });
    }
}
