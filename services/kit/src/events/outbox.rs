//! The transactional outbox: events are written in the same transaction as the state change
//! that caused them, and a [`Relay`] publishes them, in order per key, deleting each row only
//! after the broker acknowledged it (ADR 0018).
//!
//! Each service's first migration must contain [`OUTBOX_POSTGRES_SQL`] (PostgreSQL) and
//! [`OUTBOX_SQLITE_SQL`] (SQLite) verbatim, and a later PostgreSQL migration
//! [`OUTBOX_POSTGRES_V2_SQL`] (the same texts are in `migrations/*/_events/`).
//!
//! ```ignore
//! kit::with_db!(&db, pool => {
//!     let mut tx = pool.begin().await?;
//!     /* … insert the order … */
//!     outbox::enqueue(&mut *tx, &Envelope::new(sources::ORDER, &placed)?).await?;
//!     tx.commit().await?;
//! });
//! db.outbox_committed(); // wakes this process's relay of `db` at once (else: its slow poll)
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Envelope, EventBus, EventError, RetryPolicy};
use crate::db::{Db, Pool};

/// The `outbox` and `inbox` tables for PostgreSQL. Include verbatim in the service's `0001`
/// migration. Times are epoch milliseconds (one representation on both backends).
pub const OUTBOX_POSTGRES_SQL: &str = include_str!("sql/postgres.sql");
/// The `outbox` and `inbox` tables for SQLite. Include verbatim in the service's `0001`
/// migration.
pub const OUTBOX_SQLITE_SQL: &str = include_str!("sql/sqlite.sql");
/// PostgreSQL, after [`OUTBOX_POSTGRES_SQL`]: drops the `NOTIFY` trigger of the first version (a
/// transaction that notifies takes a cluster-wide lock from before its commit until after its WAL
/// flush, so notifying commits never share a flush; the relay is woken in process instead).
/// Include verbatim in a later migration of the service.
pub const OUTBOX_POSTGRES_V2_SQL: &str = include_str!("sql/postgres_v2.sql");

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
/// transaction rolls back. After the commit, call [`Db::outbox_committed`] so the process's relay
/// publishes at once (otherwise the row waits for its next poll).
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
    /// Slow poll when nothing wakes the relay (rows written by another process).
    pub poll_interval: Duration,
    /// Rounds start after the last row claimed; one in this interval reads the whole table
    /// instead (a sweep: rows whose transaction committed after a later one's, rows retried).
    pub sweep_interval: Duration,
    /// Backoff of a row whose publish failed (`max_attempts` is ignored: rows are retried
    /// for ever, nothing is dropped).
    pub retry: RetryPolicy,
    /// Rows marked sent by an earlier version of the relay (which kept them) are deleted after
    /// this long; rows are deleted as they are published now.
    pub retention: Duration,
    pub cleanup_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(5),
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

/// Pokes the relay after a commit that enqueued events (in-process wake-up): the signal of the
/// relay's [`Db`], the same as [`Db::outbox_committed`].
#[derive(Clone)]
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
    /// Where quick rounds start: the highest outbox id claimed by a round that started at least
    /// [`QUICK_LAG`] ago, and the rounds since (start, highest id claimed).
    cursor: Mutex<(i64, std::collections::VecDeque<(Instant, i64)>)>,
}

/// How long a quick round keeps reading the ids claimed by an earlier round: a transaction that
/// took its id before that round and committed after it (ids are taken at insert, rows become
/// visible at commit) is found by the quick rounds of this window, and by a sweep after it.
const QUICK_LAG: Duration = Duration::from_millis(250);

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    message_key: String,
    envelope: String,
    attempts: i32,
    /// Pending rows of the same key before this one.
    earlier: i64,
}

/// Due rows after `$3` in id order, each with the number of pending rows of its key before it
/// (wherever they are). A row is published only when every earlier pending row of its key is in
/// the same round, before it ([`publishable`]): a key whose head backs off, or whose head another
/// relay holds, waits. PostgreSQL appends `FOR UPDATE SKIP LOCKED` (several replicas may relay
/// one database).
///
/// `$3` is the relay's cursor (the highest id it has claimed) in a quick round, 0 in a sweep.
/// Deleted rows keep their index entries until PostgreSQL vacuums the table, and they all lie
/// before the cursor: a quick round starts after them instead of walking them (ADR 0018).
const SELECT_DUE: &str = "SELECT seq, message_key, envelope, attempts, \
     (SELECT COUNT(*) FROM outbox p WHERE p.message_key = o.message_key AND p.sent_at_ms IS NULL \
      AND p.seq < o.seq) AS earlier \
     FROM outbox o WHERE sent_at_ms IS NULL AND next_attempt_ms <= $1 AND seq > $3 \
     ORDER BY seq LIMIT $2";
/// Published rows go at once (one statement per round).
const DELETE_SENT_PG: &str = "DELETE FROM outbox WHERE seq = ANY($1)";
const DELETE_SENT_SQLITE: &str = "DELETE FROM outbox WHERE seq IN (SELECT value FROM json_each($1))";
const MARK_FAILED_SQL: &str =
    "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_ms = $2 WHERE seq = $3";
const OLDEST_PENDING_SQL: &str =
    "SELECT created_at_ms FROM outbox WHERE sent_at_ms IS NULL ORDER BY seq LIMIT 1";
const PENDING_COUNT_SQL: &str = "SELECT COUNT(*) FROM outbox WHERE sent_at_ms IS NULL";
const CLEANUP_SQL: &str = "DELETE FROM outbox WHERE sent_at_ms IS NOT NULL AND sent_at_ms < $1";

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    pub published: usize,
    pub failed: usize,
    /// Rows claimed but held back behind an earlier row of their key that was not in the round.
    pub held: usize,
    /// When the first row that failed in this round is due again.
    pub retry_in: Option<Duration>,
    /// The round took a full batch: there may be more.
    pub full: bool,
}

/// The rows of a round that may be published: per key, the run of rows that starts at the
/// key's oldest pending row and has no gap (`earlier` counts the pending rows before a row).
fn publishable(rows: Vec<Row>) -> Vec<Row> {
    let mut seen: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let n = seen.entry(r.message_key.clone()).or_insert(0);
        if r.earlier == *n {
            *n += 1;
            out.push(r);
        } else {
            *n = i64::MIN; // a gap: this key waits for a later round
        }
    }
    out
}

impl Relay {
    pub fn new(db: Db, bus: Arc<dyn EventBus>, config: RelayConfig) -> Relay {
        let waker = OutboxWaker(db.outbox_signal());
        Relay { service: "events", db, bus, config, waker, status: Arc::default(), cursor: Mutex::default() }
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

    /// Publishes one batch of due rows, from the start of the table (a sweep).
    pub async fn run_once(&self) -> Result<RoundReport, EventError> {
        self.round(0).await
    }

    /// Publishes one batch of due rows after the relay's cursor: the rows committed since its
    /// last round, without reading what was deleted before. Rows before the cursor that are
    /// still pending (a publish that failed, a transaction that committed after a later one, a
    /// row held back behind its key's head) wait for the next sweep ([`Relay::run_once`]).
    pub async fn run_quick(&self) -> Result<RoundReport, EventError> {
        let after = {
            let mut c = self.cursor.lock().expect("cursor");
            while c.1.front().is_some_and(|(at, _)| at.elapsed() >= QUICK_LAG) {
                let (_, seq) = c.1.pop_front().expect("front");
                c.0 = c.0.max(seq);
            }
            c.0
        };
        self.round(after).await
    }

    async fn round(&self, after: i64) -> Result<RoundReport, EventError> {
        let started = Instant::now();
        let now = now_ms();
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let sql = format!("{SELECT_DUE} FOR UPDATE SKIP LOCKED");
                let rows: Vec<Row> = sqlx::query_as(&sql)
                    .bind(now)
                    .bind(self.config.batch_size)
                    .bind(after)
                    .fetch_all(&mut *tx)
                    .await?;
                if rows.is_empty() {
                    tx.commit().await?;
                    return Ok(RoundReport::default());
                }
                let (full, rows, held) = self.claimed(started, rows);
                let results = self.publish_rows(&rows).await;
                let report = self.record(&mut *tx, results, full).await?;
                tx.commit().await?;
                Ok(RoundReport { held, ..report })
            }
            Pool::Sqlite(pool) => {
                let rows: Vec<Row> = sqlx::query_as(SELECT_DUE)
                    .bind(now)
                    .bind(self.config.batch_size)
                    .bind(after)
                    .fetch_all(pool)
                    .await?;
                if rows.is_empty() {
                    return Ok(RoundReport::default());
                }
                let (full, rows, held) = self.claimed(started, rows);
                let results = self.publish_rows(&rows).await;
                let mut tx = pool.begin_with(self.db.begin_write_sql()).await?;
                let report = self.record(&mut *tx, results, full).await?;
                tx.commit().await?;
                Ok(RoundReport { held, ..report })
            }
        }
    }

    /// A round's claimed rows: whether the batch was full, the publishable ones, how many were
    /// held back. The cursor passes them [`QUICK_LAG`] after `started`.
    fn claimed(&self, started: Instant, rows: Vec<Row>) -> (bool, Vec<Row>, usize) {
        let full = rows.len() as i64 == self.config.batch_size;
        if let Some(last) = rows.last() {
            self.cursor.lock().expect("cursor").1.push_back((started, last.seq));
        }
        let claimed = rows.len();
        let rows = publishable(rows);
        let held = claimed - rows.len();
        (full, rows, held)
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
        let mut sent = Vec::with_capacity(results.len());
        for (seq, attempts, res) in results {
            match res {
                Ok(()) => sent.push(seq),
                Err(error) => {
                    let wait = self.config.retry.backoff(attempts as u32 + 1);
                    tracing::warn!(seq, attempts = attempts + 1, %error, "outbox publish failed; row stays pending");
                    metrics::counter!(crate::contract::metrics::OUTBOX_PUBLISH_FAILURES.name, "service" => self.service).increment(1);
                    conn.mark_failed(seq, &error, now + wait.as_millis() as i64).await?;
                    report.failed += 1;
                    report.retry_in = Some(report.retry_in.map_or(wait, |d| d.min(wait)));
                }
            }
        }
        if !sent.is_empty() {
            conn.delete_sent(&sent).await?;
            report.published = sent.len();
        }
        Ok(report)
    }

    /// Rows not yet sent.
    pub async fn pending(&self) -> Result<i64, EventError> {
        Ok(
            crate::with_db!(&self.db, pool => sqlx::query_scalar::<_, i64>(PENDING_COUNT_SQL).fetch_one(pool).await)?,
        )
    }

    /// Deletes rows an earlier version of the relay marked sent and kept, once they are older
    /// than the retention period; returns how many.
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
        let oldest: Option<i64> = crate::with_db!(&self.db, pool => sqlx::query_scalar(OLDEST_PENDING_SQL).fetch_optional(pool).await)?;
        let lag = oldest.map(|t| (now_ms() - t).max(0) as f64 / 1000.0).unwrap_or(0.0);
        metrics::gauge!(crate::contract::metrics::OUTBOX_LAG.name, "service" => self.service).set(lag);
        Ok(())
    }

    /// Runs the relay until `shutdown`: wakes on [`Db::outbox_committed`] (or
    /// [`OutboxWaker::wake`]) and every `poll_interval`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move { self.run(shutdown).await })
    }

    async fn run(self, shutdown: CancellationToken) {
        self.status.lock().expect("status").running = true;
        let mut last_cleanup = Instant::now();
        let mut last_lag = Instant::now() - Duration::from_secs(60);
        let mut failures = 0u32;
        let mut next_sweep = Instant::now();
        let mut sweep_due = true;
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            let sweep = sweep_due || started >= next_sweep;
            let round = if sweep {
                next_sweep = started + self.config.sweep_interval;
                self.run_once().await
            } else {
                self.run_quick().await
            };
            // Rows left behind the cursor are taken by a sweep: held rows in the next round,
            // failed ones when their backoff ends.
            match &round {
                Ok(r) => {
                    sweep_due = r.held > 0;
                    if let Some(d) = r.retry_in {
                        next_sweep = next_sweep.min(started + d);
                    }
                }
                Err(_) => sweep_due = true,
            }
            let again = match &round {
                Ok(r) => {
                    failures = 0;
                    self.status.lock().expect("status").last_error = None;
                    r.full && r.failed == 0 && r.published > 0
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "outbox relay round failed");
                    self.status.lock().expect("status").last_error = Some(e.to_string());
                    false
                }
            };
            if sweep && last_lag.elapsed() >= Duration::from_secs(1) {
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
            let until_sweep = next_sweep.saturating_duration_since(Instant::now());
            let wait = match (&round, failures) {
                (Ok(r), _) if r.failed > 0 => {
                    self.config.poll_interval.min(self.config.retry.initial_backoff).min(until_sweep)
                }
                (Err(_), n) => {
                    self.config.retry.backoff(n).min(self.config.poll_interval.max(Duration::from_secs(5)))
                }
                _ => self.config.poll_interval.min(until_sweep),
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.waker.0.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.status.lock().expect("status").running = false;
    }
}

/// The writes the relay makes after publishing, on either backend.
#[async_trait::async_trait]
pub trait MarkConn: Send {
    /// Deletes the published rows `seqs`.
    async fn delete_sent(&mut self, seqs: &[i64]) -> Result<(), sqlx::Error>;
    async fn mark_failed(&mut self, seq: i64, error: &str, next_attempt_ms: i64) -> Result<(), sqlx::Error>;
}

#[async_trait::async_trait]
impl MarkConn for PgConnection {
    async fn delete_sent(&mut self, seqs: &[i64]) -> Result<(), sqlx::Error> {
        sqlx::query(DELETE_SENT_PG).bind(seqs).execute(&mut *self).await.map(|_| ())
    }
    async fn mark_failed(&mut self, seq: i64, error: &str, next: i64) -> Result<(), sqlx::Error> {
        sqlx::query(MARK_FAILED_SQL).bind(error).bind(next).bind(seq).execute(&mut *self).await.map(|_| ())
    }
}

#[async_trait::async_trait]
impl MarkConn for SqliteConnection {
    async fn delete_sent(&mut self, seqs: &[i64]) -> Result<(), sqlx::Error> {
        let list = serde_json::to_string(seqs).expect("integers serialise");
        sqlx::query(DELETE_SENT_SQLITE).bind(list).execute(&mut *self).await.map(|_| ())
    }
    async fn mark_failed(&mut self, seq: i64, error: &str, next: i64) -> Result<(), sqlx::Error> {
        sqlx::query(MARK_FAILED_SQL).bind(error).bind(next).bind(seq).execute(&mut *self).await.map(|_| ())
    }
}

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

    fn row(seq: i64, key: &str, earlier: i64) -> Row {
        Row { seq, message_key: key.into(), envelope: String::new(), attempts: 0, earlier }
    }

    #[test]
    fn a_key_is_published_from_its_head_without_gaps() {
        let rows = vec![
            row(1, "a", 0),
            row(2, "b", 1), // b's head is held elsewhere (or backs off): b waits
            row(3, "a", 1),
            row(4, "c", 0),
            row(5, "b", 2),
            row(6, "c", 2), // c's second row is missing from the round: c stops at its head
            row(7, "a", 2),
        ];
        let seqs: Vec<i64> = publishable(rows).iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 3, 4, 7]);
    }

    #[test]
    fn shared_migration_snippets_match_the_constants() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        for (backend, file, sql) in [
            ("postgres", "outbox_inbox.sql", OUTBOX_POSTGRES_SQL),
            ("sqlite", "outbox_inbox.sql", OUTBOX_SQLITE_SQL),
            ("postgres", "outbox_v2.sql", OUTBOX_POSTGRES_V2_SQL),
        ] {
            let path = root.join(backend).join("_events").join(file);
            let file = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(file, sql, "{} drifted from kit::events::outbox", path.display());
        }
    }
}
