//! Revocation of access tokens that are still within their lifetime (ADR 0016).
//!
//! The auth service keeps, per user, a "tokens valid after" instant (milliseconds since the
//! epoch), moved forward when the user signs out everywhere, changes or resets their password,
//! has their roles changed or is disabled. Every process that verifies tokens keeps a
//! [`Revocations`] cache of the instants that still matter (those younger than the longest
//! access-token lifetime) and pulls what changed from the auth service every few seconds
//! (`GET /internal/v1/revocations?since=…`, with the internal credential). In one process the
//! auth service writes into the same cache as it revokes, so the effect is immediate there.
//!
//! A token is refused when it was issued at or before its user's instant. The issue instant is
//! the millisecond timestamp of the token's `jti` (a UUIDv7, which the auth service always
//! issues), or `iat` (seconds) for other ids: second-granular `iat` alone could not tell a token
//! issued a few milliseconds before a password change from the one issued right after it. A
//! token issued in the very millisecond of a revocation is refused too; the auth service never
//! issues one then (it waits for the next millisecond).
//!
//! When the feed cannot be read, the cache keeps what it knew (tokens stay accepted as they
//! were before the outage) and `/readyz` reports it as an informational check: an auth outage
//! must not take every service's reads down with it. The exposure is then the situation before
//! this mechanism existed: at most the access-token lifetime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Claims;

/// Path of the auth service's revocation feed (internal: `x-internal-token`).
pub const REVOCATIONS_PATH: &str = "/internal/v1/revocations";

/// How far back each pull reaches before the previous answer's `asOf`: revocations written by a
/// transaction that committed late, or on another replica with a slightly different clock, are
/// still seen. Entries are idempotent (the latest instant wins), so the overlap costs nothing.
const OVERLAP_MS: i64 = 60_000;

/// One user's "tokens valid after" instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedUser {
    pub user_id: Uuid,
    /// Tokens issued at or before this instant (ms since the epoch) are refused.
    pub valid_after: i64,
}

/// An answer of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationFeed {
    /// The auth service's clock when it answered (ms since the epoch): the next pull asks for
    /// what changed since then (minus an overlap).
    pub as_of: i64,
    /// Instants older than `asOf - windowMs` no longer matter (every token issued before them
    /// has expired) and may be forgotten.
    pub window_ms: i64,
    /// Instants set after the `since` of the request (all those within the window without one).
    pub entries: Vec<RevokedUser>,
}

/// Where a cache pulls revocations from: the auth service's database in its own process, its
/// feed over HTTP elsewhere.
#[async_trait::async_trait]
pub trait RevocationSource: Send + Sync {
    /// Instants set after `since_ms` (ms since the epoch), or every instant still within the
    /// window when `None`.
    async fn fetch(&self, since_ms: Option<i64>) -> Result<RevocationFeed, String>;
}

/// The feed over HTTP (`<auth>/internal/v1/revocations`), presenting the internal credential.
pub struct HttpRevocations {
    pub url: String,
    pub client: reqwest::Client,
    pub internal_token: Option<SecretString>,
}

#[async_trait::async_trait]
impl RevocationSource for HttpRevocations {
    async fn fetch(&self, since_ms: Option<i64>) -> Result<RevocationFeed, String> {
        use secrecy::ExposeSecret;
        let mut req = self.client.get(&self.url).timeout(Duration::from_secs(3));
        if let Some(since) = since_ms {
            req = req.query(&[("since", since)]);
        }
        if let Some(t) = &self.internal_token {
            req = req.header(crate::client::INTERNAL_TOKEN_HEADER, t.expose_secret());
        }
        let res = req.send().await.map_err(|e| format!("GET {}: {e}", self.url))?;
        if !res.status().is_success() {
            return Err(format!("GET {}: status {}", self.url, res.status()));
        }
        res.json::<RevocationFeed>().await.map_err(|e| format!("GET {}: {e}", self.url))
    }
}

/// When a token was issued, in ms since the epoch: its UUIDv7 `jti`'s timestamp, else `iat`.
pub fn issued_at_ms(claims: &Claims) -> i64 {
    if claims.jti.get_version_num() == 7 {
        if let Some(ts) = claims.jti.get_timestamp() {
            let (secs, nanos) = ts.to_unix();
            return (secs as i64).saturating_mul(1000) + i64::from(nanos / 1_000_000);
        }
    }
    claims.iat.saturating_mul(1000)
}

#[derive(Default)]
struct PullState {
    /// `asOf` of the last answer.
    as_of: Option<i64>,
    last_success: Option<Instant>,
    last_error: Option<String>,
    failures: u32,
}

/// The per-user "tokens valid after" instants a process knows. Cheap to share (`Arc`).
pub struct Revocations {
    source: Arc<dyn RevocationSource>,
    users: RwLock<HashMap<Uuid, i64>>,
    pull: Mutex<PullState>,
    /// One pull at a time.
    pulling: tokio::sync::Mutex<()>,
}

impl Revocations {
    pub fn new(source: Arc<dyn RevocationSource>) -> Arc<Revocations> {
        Arc::new(Revocations {
            source,
            users: RwLock::new(HashMap::new()),
            pull: Mutex::new(PullState::default()),
            pulling: tokio::sync::Mutex::new(()),
        })
    }

    /// Records an instant at once (the auth service, as it revokes, in its own process).
    pub fn record(&self, user: Uuid, valid_after_ms: i64) {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        let e = users.entry(user).or_insert(valid_after_ms);
        *e = (*e).max(valid_after_ms);
    }

    /// The user's instant, when one is known.
    pub fn valid_after(&self, user: Uuid) -> Option<i64> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).get(&user).copied()
    }

    /// Whether `claims` were issued at or before their user's instant.
    pub fn is_revoked(&self, claims: &Claims) -> bool {
        self.valid_after(claims.sub).is_some_and(|after| issued_at_ms(claims) <= after)
    }

    /// How many users have an instant in the cache.
    pub fn len(&self) -> usize {
        self.users.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One pull from the source: merges what changed and forgets instants older than the
    /// window. Returns how many entries the answer had.
    pub async fn pull(&self) -> Result<usize, String> {
        let _one = self.pulling.lock().await;
        let since = self.pull.lock().unwrap_or_else(|p| p.into_inner()).as_of.map(|t| t - OVERLAP_MS);
        match self.source.fetch(since).await {
            Ok(feed) => {
                let n = feed.entries.len();
                {
                    let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
                    for e in &feed.entries {
                        let v = users.entry(e.user_id).or_insert(e.valid_after);
                        *v = (*v).max(e.valid_after);
                    }
                    let horizon = feed.as_of.saturating_sub(feed.window_ms.max(0));
                    users.retain(|_, after| *after >= horizon);
                }
                let mut state = self.pull.lock().unwrap_or_else(|p| p.into_inner());
                if state.failures > 0 {
                    tracing::info!(failures = state.failures, "token revocations readable again");
                }
                state.as_of = Some(feed.as_of);
                state.last_success = Some(Instant::now());
                state.last_error = None;
                state.failures = 0;
                Ok(n)
            }
            Err(e) => {
                let mut state = self.pull.lock().unwrap_or_else(|p| p.into_inner());
                state.failures = state.failures.saturating_add(1);
                // Once per failure streak at warn, then at debug: a down auth service must not
                // flood the logs of every service.
                if state.failures == 1 || state.failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures = state.failures,
                        "token revocations cannot be read; the last known ones stay in force");
                } else {
                    tracing::debug!(error = %e, failures = state.failures, "token revocations cannot be read");
                }
                state.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Pulls at once and then every `interval` (backing off to 30 s while the source fails),
    /// until `shutdown`.
    pub fn spawn(self: &Arc<Self>, interval: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
        let this = self.clone();
        let interval = interval.max(Duration::from_millis(50));
        tokio::spawn(async move {
            loop {
                let wait = match this.pull().await {
                    Ok(_) => interval,
                    Err(_) => {
                        let failures = this.pull.lock().unwrap_or_else(|p| p.into_inner()).failures;
                        crate::backoff::exponential(interval, Duration::from_secs(30).max(interval), failures)
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    /// A readiness check (informational): fails while the feed has not been read for
    /// `max_age`, naming the last error.
    pub fn health(self: &Arc<Self>, max_age: Duration) -> Arc<dyn crate::health::Check> {
        Arc::new(FeedHealth { revocations: self.clone(), max_age })
    }
}

struct FeedHealth {
    revocations: Arc<Revocations>,
    max_age: Duration,
}

#[async_trait::async_trait]
impl crate::health::Check for FeedHealth {
    fn name(&self) -> &str {
        "token-revocations"
    }
    async fn check(&self) -> Result<(), String> {
        let state = self.revocations.pull.lock().unwrap_or_else(|p| p.into_inner());
        match state.last_success {
            Some(t) if t.elapsed() <= self.max_age => Ok(()),
            Some(t) => Err(format!(
                "not read for {} s: {}",
                t.elapsed().as_secs(),
                state.last_error.as_deref().unwrap_or("no answer")
            )),
            None => Err(format!("never read: {}", state.last_error.as_deref().unwrap_or("no answer yet"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Feed {
        entries: Mutex<Vec<RevokedUser>>,
        now: Mutex<i64>,
        down: AtomicBool,
        asked: Mutex<Vec<Option<i64>>>,
    }

    #[async_trait::async_trait]
    impl RevocationSource for Feed {
        async fn fetch(&self, since: Option<i64>) -> Result<RevocationFeed, String> {
            self.asked.lock().unwrap().push(since);
            if self.down.load(Ordering::SeqCst) {
                return Err("down".into());
            }
            let entries = self
                .entries
                .lock()
                .unwrap()
                .iter()
                .filter(|e| since.is_none_or(|s| e.valid_after > s))
                .copied()
                .collect();
            Ok(RevocationFeed { as_of: *self.now.lock().unwrap(), window_ms: 1_000_000, entries })
        }
    }

    fn claims_at(user: Uuid, ms: u64) -> Claims {
        let mut c = crate::auth::claims_for(user, &[], None, Duration::from_secs(60));
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, ((ms % 1000) * 1_000_000) as u32);
        c.jti = Uuid::new_v7(ts);
        c.iat = (ms / 1000) as i64;
        c
    }

    #[test]
    fn the_issue_instant_is_the_jti_millisecond() {
        let c = claims_at(Uuid::now_v7(), 1_700_000_000_123);
        assert_eq!(issued_at_ms(&c), 1_700_000_000_123);
        let mut v4 = c.clone();
        v4.jti = Uuid::new_v4();
        assert_eq!(issued_at_ms(&v4), 1_700_000_000_000, "other ids: iat");
    }

    #[tokio::test]
    async fn refuses_tokens_issued_before_the_instant_and_pulls_deltas() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let feed = Arc::new(Feed {
            entries: Mutex::new(vec![RevokedUser { user_id: a, valid_after: 2_000_000_000_500 }]),
            now: Mutex::new(2_000_000_001_000),
            down: AtomicBool::new(false),
            asked: Mutex::new(vec![]),
        });
        let r = Revocations::new(feed.clone());
        assert_eq!(r.pull().await.unwrap(), 1);
        assert!(r.is_revoked(&claims_at(a, 2_000_000_000_499)), "a millisecond before");
        assert!(r.is_revoked(&claims_at(a, 2_000_000_000_500)), "issued in the instant's millisecond");
        assert!(!r.is_revoked(&claims_at(a, 2_000_000_000_501)), "a millisecond after");
        assert!(!r.is_revoked(&claims_at(b, 1)), "other users untouched");

        feed.entries.lock().unwrap().push(RevokedUser { user_id: b, valid_after: 2_000_000_000_900 });
        r.pull().await.unwrap();
        assert!(r.is_revoked(&claims_at(b, 2_000_000_000_800)));
        assert_eq!(
            feed.asked.lock().unwrap().as_slice(),
            &[None, Some(2_000_000_001_000 - OVERLAP_MS)],
            "the second pull asks from the last answer, with the overlap"
        );

        // An older instant never moves one back; a failing source keeps what was known.
        r.record(a, 1);
        assert_eq!(r.valid_after(a), Some(2_000_000_000_500));
        feed.down.store(true, Ordering::SeqCst);
        r.pull().await.unwrap_err();
        assert!(r.is_revoked(&claims_at(a, 2_000_000_000_499)));

        // Instants older than the window are forgotten.
        feed.down.store(false, Ordering::SeqCst);
        *feed.now.lock().unwrap() = 2_000_000_000_500 + 1_000_001;
        r.pull().await.unwrap();
        assert_eq!(r.valid_after(a), None);
        assert_eq!(r.valid_after(b), Some(2_000_000_000_900));
    }
}
