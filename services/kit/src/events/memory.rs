//! The in-process bus (embedded mode): Kafka's semantics without a broker.
//!
//! Each topic is an append-only log split into partitions by key hash; each consumer group
//! keeps a committed offset per partition, so a group receives every event, one subscription
//! per partition (partitions are split among a group's subscriptions), in order per key,
//! at least once. A failed handler is retried with backoff and then dead-lettered (kept in
//! memory, [`InProcessBus::dead_letters`]); only then does the offset advance. Offsets survive
//! a stop/start of the consumers on the same bus. Nothing survives the process: durability in
//! embedded mode comes from the outbox, which re-publishes rows not yet deleted. Like a broker's
//! retention, a partition keeps only [`RETAINED`] events that every consumer group reading the
//! topic has processed (the bus would otherwise grow with every event ever published).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
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

/// Events kept per partition once every group reading the topic has processed them (for
/// [`InProcessBus::events`] and late subscribers); older ones are dropped.
pub const RETAINED: usize = 256;

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

/// One partition's log: the events from offset `base` on.
#[derive(Default)]
struct Log {
    base: usize,
    events: VecDeque<Envelope>,
}

impl Log {
    fn end(&self) -> usize {
        self.base + self.events.len()
    }

    fn get(&self, offset: usize) -> Option<&Envelope> {
        self.events.get(offset.checked_sub(self.base)?)
    }

    /// Drops events before `offset`, keeping at least [`RETAINED`].
    fn trim(&mut self, offset: usize) {
        let keep_from = offset.min(self.end().saturating_sub(RETAINED));
        while self.base < keep_from {
            self.events.pop_front();
            self.base += 1;
        }
    }
}

struct Topic {
    partitions: Vec<Log>,
    appended: watch::Sender<u64>,
    /// The consumer groups that read this topic (their committed offsets bound the trimming).
    groups: Vec<String>,
}

impl Topic {
    fn new() -> Topic {
        Topic {
            partitions: (0..PARTITIONS).map(|_| Log::default()).collect(),
            appended: watch::channel(0).0,
            groups: Vec::new(),
        }
    }
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    /// Committed offsets: (group, topic, partition) → next offset to deliver.
    offsets: HashMap<(String, String, usize), usize>,
    dead_letters: Vec<DeadLetter>,
}

impl State {
    /// Drops what every group reading `topic` has processed in `partition`, beyond [`RETAINED`].
    fn trim(&mut self, topic: &str, partition: usize) {
        let Some(t) = self.topics.get(topic) else { return };
        let log = &t.partitions[partition];
        if log.events.len() < 2 * RETAINED {
            return;
        }
        let done = t
            .groups
            .iter()
            .map(|g| self.offsets.get(&(g.clone(), topic.to_string(), partition)).copied().unwrap_or(0))
            .min()
            .unwrap_or(log.end());
        if let Some(t) = self.topics.get_mut(topic) {
            t.partitions[partition].trim(done);
        }
    }
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
        st.topics
            .get(&full)
            .map(|t| t.partitions.iter().flat_map(|p| p.events.iter().cloned()).collect())
            .unwrap_or_default()
    }

    fn partition_of(key: &str) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % PARTITIONS as u64) as usize
    }

    fn subscribe_topic(&self, group: &str, topic: &str) -> watch::Receiver<u64> {
        let mut st = self.inner.state.lock().expect("bus lock");
        let t = st.topics.entry(topic.to_string()).or_insert_with(Topic::new);
        if !t.groups.iter().any(|g| g == group) {
            t.groups.push(group.to_string());
        }
        t.appended.subscribe()
    }

    /// The next event for (group, topic, partition) at its committed offset, if any (an offset
    /// trimmed away moves to the oldest event kept, as Kafka's `earliest` reset does).
    fn next(&self, group: &str, topic: &str, partition: usize) -> Option<(usize, Envelope)> {
        let st = self.inner.state.lock().expect("bus lock");
        let log = &st.topics.get(topic)?.partitions[partition];
        let offset = st
            .offsets
            .get(&(group.to_string(), topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
            .max(log.base);
        let ev = log.get(offset)?.clone();
        Some((offset, ev))
    }

    fn commit(&self, group: &str, topic: &str, partition: usize, offset: usize) {
        let mut st = self.inner.state.lock().expect("bus lock");
        st.offsets.insert((group.to_string(), topic.to_string(), partition), offset + 1);
        st.trim(topic, partition);
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
        let mut appended = self.subscribe_topic(&group, &topic);
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
                    metrics::counter!(crate::contract::metrics::EVENTS_DEAD_LETTERED.name, "type" => event.ty.clone(), "group" => group.clone())
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
        let partition = Self::partition_of(event.key());
        let mut st = self.inner.state.lock().expect("bus lock");
        let t = st.topics.entry(topic.clone()).or_insert_with(Topic::new);
        t.partitions[partition].events.push_back(event.clone());
        t.appended.send_modify(|v| *v += 1);
        st.trim(&topic, partition);
        drop(st);
        metrics::counter!(crate::contract::metrics::EVENTS_PUBLISHED.name, "type" => event.ty.clone())
            .increment(1);
        self.inner.tap.record(event);
        Ok(())
    }

    fn tap(&self) -> Option<Tap> {
        Some(self.inner.tap.clone())
    }

    fn subscribe(&self, group: &str, topics: &[&str], handler: Arc<dyn Handler>) -> Result<(), EventError> {
        self.inner.registry.add(group, topics, handler)?;
        // From now on the group's offsets bound what the topics may drop, even before it starts.
        for t in topics {
            let full = contract::full_topic(&self.inner.prefix, t);
            drop(self.subscribe_topic(group, &full));
        }
        Ok(())
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
