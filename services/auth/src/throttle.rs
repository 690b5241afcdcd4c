//! Login throttles (docs/auth.md, "Login under abuse"):
//!
//! - [`SlidingWindow`]: at most N events per window per key (attempts per client address).
//! - [`FailureDelay`]: progressive delays after failed logins — the first `free` failures of a
//!   key cost nothing, then each one makes the next attempt wait `base · 2^k`, capped. Keyed by
//!   (account, client address), so nobody can lock an owner out from another address; and,
//!   with a far larger allowance and a short cap, by account alone, which slows a distributed
//!   guess without locking anyone out for long.
//!
//! Both keep at most `max_keys` keys in memory ([`Bounded`], an approximate LRU in two
//! generations: nothing is ever scanned whole). With Redis configured, the failure counters
//! live there instead ([`RedisFailures`]), shared by every replica.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::Digest;

/// A map that keeps at most `cap` keys: two generations; a hit in the old one moves the key to
/// the current one; when the current one is half the capacity it becomes the old one and the
/// previous old one is dropped. Every operation is O(1); the least recently used keys go first.
pub struct Bounded<V> {
    half: usize,
    current: HashMap<String, V>,
    old: HashMap<String, V>,
}

impl<V> Bounded<V> {
    pub fn new(cap: usize) -> Self {
        Bounded { half: (cap / 2).max(1), current: HashMap::new(), old: HashMap::new() }
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rotate_if_full(&mut self) {
        if self.current.len() >= self.half {
            self.old = std::mem::take(&mut self.current);
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        if !self.current.contains_key(key) {
            let v = self.old.remove(key)?;
            self.rotate_if_full();
            self.current.insert(key.to_string(), v);
        }
        self.current.get_mut(key)
    }

    pub fn entry_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        if self.get_mut(key).is_none() {
            self.rotate_if_full();
            self.current.insert(key.to_string(), make());
        }
        self.current.get_mut(key).expect("just inserted")
    }

    pub fn remove(&mut self, key: &str) {
        self.current.remove(key);
        self.old.remove(key);
    }
}

/// A sliding-window log: at most `limit` events per `window` per key.
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    events: Mutex<Bounded<VecDeque<Instant>>>,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration, max_keys: usize) -> Self {
        SlidingWindow { limit: limit as usize, window, events: Mutex::new(Bounded::new(max_keys)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bounded<VecDeque<Instant>>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn trim(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
    }

    /// Checks and, when allowed, records in one step; `Err(retry_after)` at the limit.
    pub fn hit(&self, key: &str) -> Result<(), Duration> {
        self.hit_at(key, Instant::now())
    }

    fn hit_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(()); // 0 disables the limiter
        }
        let mut map = self.lock();
        let q = map.entry_or_insert_with(key, VecDeque::new);
        Self::trim(q, now, self.window);
        if q.len() >= self.limit {
            let oldest = *q.front().expect("non-empty when at the limit");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
    }

    pub fn keys(&self) -> usize {
        self.lock().len()
    }
}

/// The delay rule of [`FailureDelay`].
#[derive(Debug, Clone, Copy)]
pub struct DelayPolicy {
    /// Failures that cost nothing. 0 disables the rule.
    pub free: u32,
    /// The wait after the first failure past `free`; it doubles with every further one.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A key is forgotten after this long without a failure.
    pub window: Duration,
}

impl DelayPolicy {
    /// The wait after `count` failures, counted from the last one.
    pub fn wait(&self, count: u32) -> Duration {
        if self.free == 0 || count < self.free {
            return Duration::ZERO;
        }
        crate::throttle::doubling(self.base, self.max, count - self.free)
    }
}

/// `base · 2^steps`, capped at `max`.
pub fn doubling(base: Duration, max: Duration, steps: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(steps.min(30))).min(max)
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Progressive delays after failures, per key, in this process.
pub struct FailureDelay {
    policy: DelayPolicy,
    map: Mutex<Bounded<Failures>>,
}

impl FailureDelay {
    pub fn new(policy: DelayPolicy, max_keys: usize) -> Self {
        FailureDelay { policy, map: Mutex::new(Bounded::new(max_keys)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bounded<Failures>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` while `key` must wait before its next attempt.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.lock();
        let Some(f) = map.get_mut(key) else { return Ok(()) };
        let since = now.duration_since(f.last);
        if since >= self.policy.window {
            map.remove(key);
            return Ok(());
        }
        let wait = self.policy.wait(f.count);
        if since < wait {
            Err(wait - since)
        } else {
            Ok(())
        }
    }

    pub fn record(&self, key: &str) {
        self.record_at(key, Instant::now())
    }

    fn record_at(&self, key: &str, now: Instant) {
        if self.policy.free == 0 {
            return;
        }
        let mut map = self.lock();
        let f = map.entry_or_insert_with(key, || Failures { count: 0, last: now });
        if now.duration_since(f.last) >= self.policy.window {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    pub fn keys(&self) -> usize {
        self.lock().len()
    }
}

/// Failure counters in Redis, shared by every replica: a hash `{c: count, l: last ms}` per key
/// with an expiry of the window, on the server's clock. Keys are hashed (no address or email
/// is stored in Redis).
pub struct RedisFailures {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    record: redis::Script,
    check: redis::Script,
}

/// `KEYS[1]`, `ARGV[1]` window ms. Resets a count older than the window.
const RECORD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('HGET', KEYS[1], 'l'))
if last and now - last >= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
local c = redis.call('HINCRBY', KEYS[1], 'c', 1)
redis.call('HSET', KEYS[1], 'l', now)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return c
"#;

/// `KEYS[1]`: answers `{count, ms since the last failure}` (`{0, 0}` without one).
const CHECK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'c', 'l')
if not v[1] or not v[2] then return {0, 0} end
return {tonumber(v[1]), now - tonumber(v[2])}
"#;

impl RedisFailures {
    pub fn new(conn: redis::aio::ConnectionManager, prefix: String) -> Self {
        RedisFailures { conn, prefix, record: redis::Script::new(RECORD), check: redis::Script::new(CHECK) }
    }

    fn key(&self, key: &str) -> String {
        let digest = sha2::Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{}fail:{hex}", self.prefix)
    }

    pub async fn check(&self, key: &str, policy: &DelayPolicy) -> redis::RedisResult<Result<(), Duration>> {
        let mut conn = self.conn.clone();
        let v: Vec<i64> = self.check.key(self.key(key)).invoke_async(&mut conn).await?;
        let (count, since_ms) = (v.first().copied().unwrap_or(0), v.get(1).copied().unwrap_or(0));
        let since = Duration::from_millis(u64::try_from(since_ms).unwrap_or(0));
        let wait = policy.wait(u32::try_from(count).unwrap_or(u32::MAX));
        Ok(if count > 0 && since < wait { Err(wait - since) } else { Ok(()) })
    }

    pub async fn record(&self, key: &str, policy: &DelayPolicy) -> redis::RedisResult<()> {
        if policy.free == 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let window = u64::try_from(policy.window.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: i64 = self.record.key(self.key(key)).arg(window).invoke_async(&mut conn).await?;
        Ok(())
    }

    pub async fn clear(&self, key: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL").arg(self.key(key)).query_async::<i64>(&mut conn).await.map(|_| ())
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
        let w = SlidingWindow::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(w.hit_at("ip", t0 + Duration::from_secs(i)).is_ok());
        }
        let wait = w.hit_at("ip", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(w.hit_at("other", t0 + Duration::from_secs(10)).is_ok(), "keys are independent");
        assert!(w.hit_at("ip", t0 + Duration::from_secs(60)).is_ok(), "the oldest event left the window");
        assert!(w.hit_at("ip", t0 + Duration::from_secs(60)).is_err());
    }

    #[test]
    fn memory_is_bounded_and_recent_keys_survive() {
        let mut b: Bounded<u32> = Bounded::new(1000);
        *b.entry_or_insert_with("hot", || 0) += 1;
        for i in 0..100_000 {
            b.entry_or_insert_with(&i.to_string(), || 1);
            if i % 100 == 0 {
                *b.get_mut("hot").expect("a key in use is kept") += 1;
            }
        }
        assert!(b.len() <= 1000, "{}", b.len());
        assert_eq!(*b.get_mut("hot").unwrap(), 1001);
        b.remove("hot");
        assert!(b.get_mut("hot").is_none());
    }

    #[test]
    fn delays_grow_after_the_free_failures_and_expire() {
        let policy = DelayPolicy {
            free: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            window: Duration::from_secs(600),
        };
        let d = FailureDelay::new(policy, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(d.check_at("k", t0).is_ok());
            d.record_at("k", t0);
        }
        assert_eq!(d.check_at("k", t0), Err(Duration::from_secs(1)), "3 failures: wait 1 s");
        assert!(d.check_at("k", t0 + Duration::from_secs(1)).is_ok());
        d.record_at("k", t0 + Duration::from_secs(1));
        assert_eq!(d.check_at("k", t0 + Duration::from_secs(1)), Err(Duration::from_secs(2)), "then 2 s");
        for i in 0..10 {
            d.record_at("k", t0 + Duration::from_secs(2 + i));
        }
        assert_eq!(d.check_at("k", t0 + Duration::from_secs(11)), Err(Duration::from_secs(8)), "capped");
        assert!(d.check_at("other", t0).is_ok(), "keys are independent");
        assert!(d.check_at("k", t0 + Duration::from_secs(11 + 600)).is_ok(), "forgotten after the window");
        d.record_at("k", t0 + Duration::from_secs(2000));
        assert!(d.check_at("k", t0 + Duration::from_secs(2000)).is_ok(), "counting starts over");
        d.clear("k");
        assert_eq!(d.keys(), 0);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
    }
}
