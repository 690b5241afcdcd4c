//! A bounded, read-only view of the events crossing the bus, for operators (the admin console's
//! event browser): the last `capacity` events and a live feed.
//!
//! A tap observes; it takes no part in delivery. [`Tap::record`] never waits and never fails:
//! it appends to a ring of fixed size (the oldest event falls out) and offers the event to the
//! live watchers through a bounded broadcast channel. A watcher that cannot keep up loses the
//! events it missed — they are counted ([`Tap::dropped`], `events_tap_dropped_total`) — and the
//! bus never waits for it. Memory is bounded by `capacity` events plus the channel's slots.
//!
//! Where events come from: the in-process bus and the Kafka bus record every event this process
//! publishes ([`super::EventBus::tap`]); a process that publishes nothing of its own (the
//! gateway running apart) feeds a tap from Kafka with [`super::kafka::spawn_tap`], a consumer
//! that never joins a group and never commits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::Envelope;

/// Events kept by default.
pub const DEFAULT_CAPACITY: usize = 1000;
/// Slots of the live channel: how far a watcher may fall behind before it loses events.
pub const LIVE_SLOTS: usize = 256;

/// The tap. Cheap to clone; clones share the ring and the live channel.
#[derive(Clone)]
pub struct Tap {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    recent: Mutex<VecDeque<Arc<Envelope>>>,
    live: broadcast::Sender<Arc<Envelope>>,
    recorded: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("capacity", &self.inner.capacity)
            .field("recorded", &self.recorded())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Default for Tap {
    fn default() -> Self {
        Tap::new(DEFAULT_CAPACITY)
    }
}

impl Tap {
    /// A tap keeping the last `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Tap {
        let capacity = capacity.max(1);
        Tap {
            inner: Arc::new(Inner {
                capacity,
                recent: Mutex::new(VecDeque::with_capacity(capacity)),
                live: broadcast::channel(LIVE_SLOTS).0,
                recorded: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Records one event: never waits, never fails.
    pub fn record(&self, event: &Envelope) {
        let event = Arc::new(event.clone());
        {
            let mut recent = self.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == self.inner.capacity {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        self.inner.recorded.fetch_add(1, Ordering::Relaxed);
        // No watcher is not an error; a full channel overwrites its oldest slot.
        let _ = self.inner.live.send(event);
    }

    /// The events kept, oldest first.
    pub fn recent(&self) -> Vec<Arc<Envelope>> {
        self.inner.recent.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// A live feed of the events recorded from now on. A receiver that falls more than
    /// [`LIVE_SLOTS`] events behind gets `Lagged(n)`: report it with [`Tap::note_dropped`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.inner.live.subscribe()
    }

    /// Counts `n` events a watcher lost because it was too slow.
    pub fn note_dropped(&self, n: u64) {
        self.inner.dropped.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(crate::contract::metrics::EVENTS_TAP_DROPPED.name).increment(n);
    }

    /// Events recorded since the tap was made.
    pub fn recorded(&self) -> u64 {
        self.inner.recorded.load(Ordering::Relaxed)
    }

    /// Events watchers lost (they were too slow), in total.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// How many events the ring keeps.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Live watchers right now.
    pub fn watchers(&self) -> usize {
        self.inner.live.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::payloads::InventoryLowStock;
    use uuid::Uuid;

    fn event(n: i64) -> Envelope {
        Envelope::new("/test", &InventoryLowStock { product_id: Uuid::now_v7(), available: n, threshold: 10 })
            .unwrap()
    }

    #[test]
    fn keeps_the_last_events_only() {
        let tap = Tap::new(3);
        for n in 0..5 {
            tap.record(&event(n));
        }
        let kept: Vec<i64> = tap.recent().iter().map(|e| e.data["available"].as_i64().unwrap()).collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(tap.recorded(), 5);
    }

    #[tokio::test]
    async fn a_slow_watcher_loses_events_and_nobody_waits() {
        let tap = Tap::new(10);
        let mut slow = tap.subscribe();
        // Far more than the live channel holds: recording never blocks.
        for n in 0..(LIVE_SLOTS as i64 + 50) {
            tap.record(&event(n));
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => {
                assert_eq!(n, 50);
                tap.note_dropped(n);
            }
            other => panic!("expected a lag, got {other:?}"),
        }
        // After the lag the watcher goes on with the oldest event still held.
        assert_eq!(slow.recv().await.unwrap().data["available"], 50);
        assert_eq!(tap.dropped(), 50);
        assert_eq!(tap.recent().len(), 10, "the ring stays bounded");
    }
}
