//! The transactional outbox: events are written in the same transaction as the state change
//! that caused them, and a [`Relay`] publishes them, in order per key, marking each row sent
//! only after the broker acknowledged it.
//!
//! Each service's first migration must contain [`OUTBOX_POSTGRES_SQL`] (PostgreSQL) and
//! [`OUTBOX_SQLITE_SQL`] (SQLite) verbatim (the same text is in `migrations/*/_events/`).
//!
//! ```ignore
//! kit::with_db!(&db, pool => {
//!     let mut tx = pool.begin().await?;
//!     /* … insert the order … */
//!     outbox::enqueue(&mut *tx, &Envelope::new(sources::ORDER, &placed)?).await?;
//!     tx.commit().await?;
//! });
//! waker.wake(); // optional: the relay wakes at once instead of at LISTEN/poll time
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Envelope, EventBus, EventError, RetryPolicy};
use crate::db::Db;

/// The `outbox` and `inbox` tables for PostgreSQL. Include verbatim in the service's `0001`
/// migration. Times are epoch milliseconds (one representation on both backends).
pub const OUTBOX_POSTGRES_SQL: &str = include_str!("sql/postgres.sql");
/// The `outbox` and `inbox` tables for SQLite. Include verbatim in the service's `0001`
/// migration.
pub const OUTBOX_SQLITE_SQL: &str = include_str!("sql/sqlite.sql");

/// The PostgreSQL `LISTEN/NOTIFY` channel the outbox trigger notifies on commit.
pub const NOTIFY_CHANNEL: &str = "shop_outbox";

const ENQUEUE_SQL: &str =
    "INSERT INTO outbox (event_id, event_type, topic, message_key, envelope, created_at_ms) \
     VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A connection (inside a transaction: pass `&mut *tx`) on which events can be written.
/// Implemented for both backends, so `outbox::enqueue(&mut *tx, …)` compiles in
/// [`with_db!`](crate::with_db) bodies.
#[async_trait::async_trait]
pub trait EventsConn: Send {
    async fn enqueue_event(
        &mut self,
        event: &Envelope,
        topic: &str,
        envelope: &str,
    ) -> Result<(), sqlx::Error>;
    async fn claim_inbox(
        &mut self,
        group: &str,
        event_id: uuid::Uuid,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error>;
}

macro_rules! events_conn {
    ($conn:ty) => {
        #[async_trait::async_trait]
        impl EventsConn for $conn {
            async fn enqueue_event(
                &mut self,
                event: &Envelope,
                topic: &str,
                envelope: &str,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(ENQUEUE_SQL)
                    .bind(event.id)
                    .bind(&event.ty)
                    .bind(topic)
                    .bind(&event.subject)
                    .bind(envelope)
                    .bind(now_ms())
                    .execute(&mut *self)
                    .await
                    .map(|_| ())
            }
            async fn claim_inbox(
                &mut self,
                group: &str,
                event_id: uuid::Uuid,
                now_ms: i64,
            ) -> Result<bool, sqlx::Error> {
                let r = sqlx::query(super::inbox::CLAIM_SQL)
                    .bind(group)
                    .bind(event_id)
                    .bind(now_ms)
                    .execute(&mut *self)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    };
}
events_conn!(PgConnection);
events_conn!(SqliteConnection);

/// Writes `event` to the outbox inside the caller's transaction. Nothing is published if the
/// transaction rolls back. On PostgreSQL the commit notifies the relay (`pg_notify` trigger).
pub async fn enqueue<C: EventsConn + ?Sized>(conn: &mut C, event: &Envelope) -> Result<(), EventError> {
    let topic = event.topic()?;
    let json = serde_json::to_string(event).map_err(|e| EventError::Malformed(e.to_string()))?;
    conn.enqueue_event(event, topic, &json).await?;
    Ok(())
}

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows per round.
    pub batch_size: i64,
    /// Slow poll when nothing wakes the relay (safety net for missed notifications).
    pub poll_interval: Duration,
    /// Backoff of a row whose publish failed (`max_attempts` is ignored: rows are retried
    /// for ever, nothing is dropped).
    pub retry: RetryPolicy,
    /// Sent rows are deleted after this long.
    pub retention: Duration,
    pub cleanup_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: u32::MAX,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(30),
            },
            retention: Duration::from_secs(24 * 3600),
            cleanup_interval: Duration::from_secs(60),
        }
    }
}

/// Pokes the relay after a commit that enqueued events (in-process wake-up).
#[derive(Clone, Default)]
pub struct OutboxWaker(Arc<Notify>);

impl OutboxWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

#[derive(Debug, Default)]
struct RelayStatus {
    running: bool,
    last_error: Option<String>,
}

/// Publishes pending outbox rows. Several replicas may relay one PostgreSQL database
/// (`FOR UPDATE SKIP LOCKED`, heads of keys only); run a single relay per SQLite database.
pub struct Relay {
    /// The service owning the outbox: the `service` label of the relay's metrics.
    service: &'static str,
    db: Db,
    bus: Arc<dyn EventBus>,
    config: RelayConfig,
    waker: OutboxWaker,
    status: Arc<Mutex<RelayStatus>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    message_key: String,
    envelope: String,
    attempts: i32,
    next_attempt_ms: i64,
}

/// Pending rows on PostgreSQL: only the oldest pending row of each key, locked and skipped
/// by other relays, so several replicas never publish one key out of order.
const SELECT_PG: &str = "SELECT seq, message_key, envelope, attempts, next_attempt_ms FROM outbox o \
     WHERE sent_at_ms IS NULL AND next_attempt_ms <= $1 \
       AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.message_key = o.message_key \
                       AND p.sent_at_ms IS NULL AND p.seq < o.seq) \
     ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED";
/// Pending rows on SQLite (single relay): every due row in id order; a key whose earlier row
/// is backing off is held back in code.
const SELECT_SQLITE: &str = "SELECT seq, message_key, envelope, attempts, next_attempt_ms FROM outbox \
     WHERE sent_at_ms IS NULL ORDER BY seq LIMIT $1";
const MARK_SENT_SQL: &str = "UPDATE outbox SET sent_at_ms = $1, last_error = NULL WHERE seq = $2";
const MARK_FAILED_SQL: &str =
    "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_ms = $2 WHERE seq = $3";
const OLDEST_PENDING_SQL: &str = "SELECT MIN(created_at_ms) FROM outbox WHERE sent_at_ms IS NULL";
const PENDING_COUNT_SQL: &str = "SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL";
const CLEANUP_SQL: &str = "DELETE FROM outbox WHERE sent_at_ms IS NOT NULL AND sent_at_ms < $1";

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    pub published: usize,
    pub failed: usize,
    /// The round took a full batch: there may be more.
    pub full: bool,
}

impl Relay {
    pub fn new(db: Db, bus: Arc<dyn EventBus>, config: RelayConfig) -> Relay {
        Relay { service: "events", db, bus, config, waker: OutboxWaker::default(), status: Arc::default() }
    }

    /// Names the service owning the outbox (the `service` label of `events_outbox_*` metrics).
    pub fn for_service(mut self, service: &'static str) -> Relay {
        self.service = service;
        self
    }

    pub fn waker(&self) -> OutboxWaker {
        self.waker.clone()
    }

    /// A readiness check: down when the relay is not running or its last database round failed.
    pub fn health(&self) -> RelayHealth {
        RelayHealth { status: self.status.clone() }
    }

    /// Publishes one batch of due rows.
    pub async fn run_once(&self) -> Result<RoundReport, EventError> {
        let now = now_ms();
        match &self.db {
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let rows: Vec<Row> = sqlx::query_as(SELECT_PG)
                    .bind(now)
                    .bind(self.config.batch_size)
                    .fetch_all(&mut *tx)
                    .await?;
                let full = rows.len() as i64 == self.config.batch_size;
                let results = self.publish_rows(&rows).await;
                let report = self.record(&mut *tx, results, full).await?;
                tx.commit().await?;
                Ok(report)
            }
            Db::Sqlite(pool) => {
                let rows: Vec<Row> =
                    sqlx::query_as(SELECT_SQLITE).bind(self.config.batch_size).fetch_all(pool).await?;
                let full = rows.len() as i64 == self.config.batch_size;
                // Hold back every row of a key whose oldest pending row is still backing off.
                let mut due = Vec::new();
                let mut blocked = std::collections::HashSet::new();
                for r in rows {
                    if blocked.contains(&r.message_key) {
                        continue;
                    }
                    if r.next_attempt_ms > now {
                        blocked.insert(r.message_key.clone());
                        continue;
                    }
                    due.push(r);
                }
                let results = self.publish_rows(&due).await;
                let mut tx = pool.begin().await?;
                let report = self.record(&mut *tx, results, full).await?;
                tx.commit().await?;
                Ok(report)
            }
        }
    }

    /// Publishes rows: keys concurrently, each key's rows in order, stopping a key at its
    /// first failure (its later rows wait for the next round).
    async fn publish_rows(&self, rows: &[Row]) -> Vec<(i64, i32, Result<(), String>)> {
        let mut by_key: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
        for r in rows {
            by_key.entry(r.message_key.as_str()).or_default().push(r);
        }
        let runs = by_key.into_values().map(|rows| async move {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let res = match serde_json::from_str::<Envelope>(&r.envelope) {
                    Ok(ev) => self.bus.publish(&ev).await.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("outbox row {} does not parse: {e}", r.seq)),
                };
                let failed = res.is_err();
                out.push((r.seq, r.attempts, res));
                if failed {
                    break;
                }
            }
            out
        });
        futures::future::join_all(runs).await.into_iter().flatten().collect()
    }

    async fn record<E>(
        &self,
        conn: &mut E,
        results: Vec<(i64, i32, Result<(), String>)>,
        full: bool,
    ) -> Result<RoundReport, EventError>
    where
        E: MarkConn + ?Sized,
    {
        let mut report = RoundReport { full, ..Default::default() };
        let now = now_ms();
        for (seq, attempts, res) in results {
            match res {
                Ok(()) => {
                    conn.mark_sent(seq, now).await?;
                    report.published += 1;
                }
                Err(error) => {
                    let wait = self.config.retry.backoff(attempts as u32 + 1);
                    tracing::warn!(seq, attempts = attempts + 1, %error, "outbox publish failed; row stays pending");
                    metrics::counter!(crate::contract::metrics::OUTBOX_PUBLISH_FAILURES.name, "service" => self.service).increment(1);
                    conn.mark_failed(seq, &error, now + wait.as_millis() as i64).await?;
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Rows not yet sent.
    pub async fn pending(&self) -> Result<i64, EventError> {
        Ok(
            crate::with_db!(&self.db, pool => sqlx::query_scalar::<_, i64>(PENDING_COUNT_SQL).fetch_one(pool).await)?,
        )
    }

    /// Deletes sent rows older than the retention period; returns how many.
    pub async fn cleanup(&self) -> Result<u64, EventError> {
        let before = now_ms() - self.config.retention.as_millis() as i64;
        let n = crate::with_db!(&self.db, pool => sqlx::query(CLEANUP_SQL)
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n)
    }

    async fn update_lag(&self) -> Result<(), EventError> {
        let oldest: Option<i64> =
            crate::with_db!(&self.db, pool => sqlx::query_scalar(OLDEST_PENDING_SQL).fetch_one(pool).await)?;
        let lag = oldest.map(|t| (now_ms() - t).max(0) as f64 / 1000.0).unwrap_or(0.0);
        metrics::gauge!(crate::contract::metrics::OUTBOX_LAG.name, "service" => self.service).set(lag);
        Ok(())
    }

    /// Runs the relay until `shutdown`: wakes on [`OutboxWaker::wake`], on PostgreSQL
    /// `NOTIFY shop_outbox`, and every `poll_interval`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    async fn run(self, shutdown: CancellationToken) {
        self.status.lock().expect("status").running = true;
        let mut listener = match &self.db {
            Db::Postgres(pool) => match sqlx::postgres::PgListener::connect_with(pool).await {
                Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                    Ok(()) => Some(l),
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox relay: LISTEN failed; polling only");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "outbox relay: no listener connection; polling only");
                    None
                }
            },
            Db::Sqlite(_) => None,
        };
        let mut last_cleanup = Instant::now();
        let mut last_lag = Instant::now() - Duration::from_secs(60);
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let round = self.run_once().await;
            let again = match &round {
                Ok(r) => {
                    failures = 0;
                    self.status.lock().expect("status").last_error = None;
                    r.full && r.failed == 0
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "outbox relay round failed");
                    self.status.lock().expect("status").last_error = Some(e.to_string());
                    false
                }
            };
            if last_lag.elapsed() >= Duration::from_secs(1) {
                let _ = self.update_lag().await;
                last_lag = Instant::now();
            }
            if last_cleanup.elapsed() >= self.config.cleanup_interval {
                match self.cleanup().await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(deleted = n, "outbox: sent rows past retention deleted")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox cleanup failed"),
                }
                last_cleanup = Instant::now();
            }
            if again {
                continue;
            }
            let wait = match (&round, failures) {
                (Ok(r), _) if r.failed > 0 => {
                    self.config.poll_interval.min(self.config.retry.initial_backoff)
                }
                (Err(_), n) => {
                    self.config.retry.backoff(n).min(self.config.poll_interval.max(Duration::from_secs(5)))
                }
                _ => self.config.poll_interval,
            };
            let notified = async {
                match listener.as_mut() {
                    Some(l) => {
                        if let Err(e) = l.recv().await {
                            // sqlx reconnects on the next recv; avoid a hot loop meanwhile.
                            tracing::debug!(error = %e, "outbox listener interrupted");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.waker.0.notified() => {}
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.status.lock().expect("status").running = false;
    }
}

/// The updates the relay makes after publishing, on either backend.
#[async_trait::async_trait]
pub trait MarkConn: Send {
    async fn mark_sent(&mut self, seq: i64, now_ms: i64) -> Result<(), sqlx::Error>;
    async fn mark_failed(&mut self, seq: i64, error: &str, next_attempt_ms: i64) -> Result<(), sqlx::Error>;
}

macro_rules! mark_conn {
    ($conn:ty) => {
        #[async_trait::async_trait]
        impl MarkConn for $conn {
            async fn mark_sent(&mut self, seq: i64, now_ms: i64) -> Result<(), sqlx::Error> {
                sqlx::query(MARK_SENT_SQL).bind(now_ms).bind(seq).execute(&mut *self).await.map(|_| ())
            }
            async fn mark_failed(&mut self, seq: i64, error: &str, next: i64) -> Result<(), sqlx::Error> {
                sqlx::query(MARK_FAILED_SQL)
                    .bind(error)
                    .bind(next)
                    .bind(seq)
                    .execute(&mut *self)
                    .await
                    .map(|_| ())
            }
        }
    };
}
mark_conn!(PgConnection);
mark_conn!(SqliteConnection);

/// Readiness of the relay (see [`Relay::health`]).
#[derive(Clone)]
pub struct RelayHealth {
    status: Arc<Mutex<RelayStatus>>,
}

#[async_trait::async_trait]
impl crate::health::Check for RelayHealth {
    fn name(&self) -> &str {
        "outbox-relay"
    }
    async fn check(&self) -> Result<(), String> {
        let s = self.status.lock().expect("status");
        if !s.running {
            return Err("relay not running".into());
        }
        match &s.last_error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_migration_snippets_match_the_constants() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        for (backend, sql) in [("postgres", OUTBOX_POSTGRES_SQL), ("sqlite", OUTBOX_SQLITE_SQL)] {
            let path = root.join(backend).join("_events/outbox_inbox.sql");
            let file = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(file, sql, "{} drifted from kit::events::outbox", path.display());
        }
    }
}
