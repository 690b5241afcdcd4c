//! In-memory sliding-window limiters for login attempts (per client IP) and login failures
//! (per account). Per process: with several replicas each one counts on its own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys are pruned when the map grows past this many entries.
const PRUNE_AT: usize = 10_000;

/// A sliding-window log: at most `limit` events per `window` per key.
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        SlidingWindow { limit: limit as usize, window, events: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn trim(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
    }

    /// `Err(retry_after)` when `key` has reached the limit, without recording anything.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(()); // 0 disables the limiter
        }
        let mut map = self.lock();
        let Some(q) = map.get_mut(key) else { return Ok(()) };
        Self::trim(q, now, self.window);
        if q.len() >= self.limit {
            let oldest = *q.front().expect("non-empty when at the limit");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    /// Records an event for `key`.
    pub fn record(&self, key: &str) {
        self.record_at(key, Instant::now())
    }

    fn record_at(&self, key: &str, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut map = self.lock();
        if map.len() >= PRUNE_AT {
            let window = self.window;
            map.retain(|_, q| {
                Self::trim(q, now, window);
                !q.is_empty()
            });
        }
        let q = map.entry(key.to_string()).or_default();
        Self::trim(q, now, self.window);
        q.push_back(now);
    }

    /// Checks and, when allowed, records in one step.
    pub fn hit(&self, key: &str) -> Result<(), Duration> {
        self.hit_at(key, Instant::now())
    }

    fn hit_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.check_at(key, now)?;
        self.record_at(key, now);
        Ok(())
    }

    /// Forgets `key` (e.g. after a successful login).
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// Seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_the_window_and_recovers() {
        let w = SlidingWindow::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(w.hit_at("ip", t0 + Duration::from_secs(i)).is_ok());
        }
        let wait = w.hit_at("ip", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(w.hit_at("other", t0 + Duration::from_secs(10)).is_ok(), "keys are independent");
        assert!(w.hit_at("ip", t0 + Duration::from_secs(60)).is_ok(), "the oldest event left the window");
        assert!(w.hit_at("ip", t0 + Duration::from_secs(60)).is_err());
        w.clear("ip");
        assert!(w.check_at("ip", t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn prunes_idle_keys() {
        let w = SlidingWindow::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..PRUNE_AT {
            w.record_at(&i.to_string(), t0);
        }
        w.record_at("late", t0 + Duration::from_secs(2));
        assert_eq!(w.lock().len(), 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
    }
}
