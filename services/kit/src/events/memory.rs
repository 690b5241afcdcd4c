//! The in-process bus (embedded mode): Kafka's semantics without a broker.
//!
//! Each topic is an append-only log split into partitions by key hash; each consumer group
//! keeps a committed offset per partition, so a group receives every event, one subscription
//! per partition (partitions are split among a group's subscriptions), in order per key,
//! at least once. A failed handler is retried with backoff and then dead-lettered (kept in
//! memory, [`InProcessBus::dead_letters`]); only then does the offset advance. Offsets survive
//! a stop/start of the consumers on the same bus. Nothing survives the process: durability in
//! embedded mode comes from the outbox, which re-publishes rows not yet marked sent.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::contract;
use super::delivery::{deliver, Outcome, RetryPolicy};
use super::tap::Tap;
use super::{ConsumerState, Consumers, Envelope, EventBus, EventError, Handler, Registry};

/// Partitions of every in-process topic.
pub const PARTITIONS: usize = 4;

/// An event that exhausted its retries in one consumer group.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub group: String,
    pub topic: String,
    pub partition: usize,
    pub offset: usize,
    pub attempts: u32,
    pub error: String,
    pub event: Envelope,
}

struct Topic {
    partitions: Vec<Vec<Envelope>>,
    appended: watch::Sender<u64>,
}

impl Topic {
    fn new() -> Topic {
        Topic { partitions: vec![Vec::new(); PARTITIONS], appended: watch::channel(0).0 }
    }
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    /// Committed offsets: (group, topic, partition) → next offset to deliver.
    offsets: HashMap<(String, String, usize), usize>,
    dead_letters: Vec<DeadLetter>,
}

/// The embedded event bus. Cheap to clone; clones share the logs.
#[derive(Clone)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    retry: RetryPolicy,
    state: Mutex<State>,
    registry: Registry,
    available: AtomicBool,
    tap: Tap,
}

impl InProcessBus {
    pub fn new(topic_prefix: impl Into<String>, retry: RetryPolicy) -> InProcessBus {
        InProcessBus {
            inner: Arc::new(Inner {
                prefix: topic_prefix.into(),
                retry,
                state: Mutex::default(),
                registry: Registry::default(),
                available: AtomicBool::new(true),
                tap: Tap::default(),
            }),
        }
    }

    /// Fault injection: while unavailable, `publish` fails like a broker that is down.
    pub fn set_available(&self, available: bool) {
        self.inner.available.store(available, Ordering::SeqCst);
    }

    /// Every event dead-lettered so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.inner.state.lock().expect("bus lock").dead_letters.clone()
    }

    /// Every event in a logical topic, in partition order (for tests and diagnostics).
    pub fn events(&self, topic: &str) -> Vec<Envelope> {
        let full = contract::full_topic(&self.inner.prefix, topic);
        let st = self.inner.state.lock().expect("bus lock");
        st.topics.get(&full).map(|t| t.partitions.concat()).unwrap_or_default()
    }

    fn partition_of(key: &str) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % PARTITIONS as u64) as usize
    }

    fn subscribe_topic(&self, topic: &str) -> watch::Receiver<u64> {
        let mut st = self.inner.state.lock().expect("bus lock");
        st.topics.entry(topic.to_string()).or_insert_with(Topic::new).appended.subscribe()
    }

    /// The next event for (group, topic, partition) at its committed offset, if any.
    fn next(&self, group: &str, topic: &str, partition: usize) -> Option<(usize, Envelope)> {
        let st = self.inner.state.lock().expect("bus lock");
        let offset = st.offsets.get(&(group.to_string(), topic.to_string(), partition)).copied().unwrap_or(0);
        let ev = st.topics.get(topic)?.partitions[partition].get(offset)?.clone();
        Some((offset, ev))
    }

    fn commit(&self, group: &str, topic: &str, partition: usize, offset: usize) {
        let mut st = self.inner.state.lock().expect("bus lock");
        st.offsets.insert((group.to_string(), topic.to_string(), partition), offset + 1);
    }

    #[allow(clippy::too_many_arguments)]
    async fn consume_partition(
        self,
        group: String,
        topic: String,
        partition: usize,
        handler: Arc<dyn Handler>,
        shutdown: CancellationToken,
    ) {
        let mut appended = self.subscribe_topic(&topic);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            // Mark the current version seen before looking, so no append is missed.
            appended.borrow_and_update();
            let Some((offset, event)) = self.next(&group, &topic, partition) else {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = appended.changed() => if r.is_err() { return },
                }
                continue;
            };
            match deliver(&*handler, &event, &group, &self.inner.retry, &shutdown).await {
                Outcome::Processed => {}
                Outcome::Exhausted { error, attempts } => {
                    tracing::error!(event_id = %event.id, %topic, %group, %error, "event dead-lettered");
                    metrics::counter!("events_dead_lettered_total", "type" => event.ty.clone(), "group" => group.clone())
                        .increment(1);
                    self.inner.state.lock().expect("bus lock").dead_letters.push(DeadLetter {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition,
                        offset,
                        attempts,
                        error,
                        event,
                    });
                }
                Outcome::Cancelled => return,
            }
            self.commit(&group, &topic, partition, offset);
        }
    }
}

#[async_trait::async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &Envelope) -> Result<(), EventError> {
        if !self.inner.available.load(Ordering::SeqCst) {
            return Err(EventError::Unavailable("in-process bus switched off (fault injection)".into()));
        }
        let topic = contract::full_topic(&self.inner.prefix, event.topic()?);
        let mut st = self.inner.state.lock().expect("bus lock");
        let t = st.topics.entry(topic).or_insert_with(Topic::new);
        t.partitions[Self::partition_of(event.key())].push(event.clone());
        t.appended.send_modify(|v| *v += 1);
        drop(st);
        metrics::counter!("events_published_total", "type" => event.ty.clone()).increment(1);
        self.inner.tap.record(event);
        Ok(())
    }

    fn tap(&self) -> Option<Tap> {
        Some(self.inner.tap.clone())
    }

    fn subscribe(&self, group: &str, topics: &[&str], handler: Arc<dyn Handler>) -> Result<(), EventError> {
        self.inner.registry.add(group, topics, handler)
    }

    async fn start(&self, shutdown: CancellationToken) -> Result<Consumers, EventError> {
        let subs = self.inner.registry.take()?;
        let mut consumers = Consumers::new(shutdown.clone());
        // Members of each (group, topic), in registration order; partition p goes to member p % n.
        let mut members: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, s) in subs.iter().enumerate() {
            for t in &s.topics {
                members.entry((s.group.clone(), t.clone())).or_default().push(i);
            }
        }
        for ((group, topic), idx) in members {
            let full = contract::full_topic(&self.inner.prefix, &topic);
            for partition in 0..PARTITIONS {
                let sub = &subs[idx[partition % idx.len()]];
                let slot = consumers.slot(format!("{group}/{full}/{partition}"));
                slot.set(ConsumerState::Running);
                let fut = self.clone().consume_partition(
                    group.clone(),
                    full.clone(),
                    partition,
                    sub.handler.clone(),
                    shutdown.clone(),
                );
                consumers.push(tokio::spawn(async move {
                    fut.await;
                    slot.set(ConsumerState::Stopped);
                }));
            }
        }
        let bus = self.clone();
        consumers.on_stopped(move || bus.inner.registry.reopen());
        Ok(consumers)
    }
}
