//! One store contract over two backends: PostgreSQL (production) and SQLite (embedded).
//!
//! Stores hold a [`Db`] and write each query once; [`with_db!`](crate::with_db) expands the
//! body for both pool types, so the same SQL text (with `$N` placeholders, which SQLite binds
//! by number) is type-checked against both drivers. Backend-specific SQL lives in few, named
//! places, chosen with [`Db::backend`].

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::sync::Arc;
use tokio::sync::Notify;

/// A service's database: a connection pool on one of the two supported backends, and what the
/// process shares about that database (the signal that wakes its outbox relay). Cheap to clone;
/// clones share the pool and the signal.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    outbox: Arc<Notify>,
}

/// The pool of a [`Db`], per backend (what [`with_db!`](crate::with_db) matches on).
#[derive(Clone, Debug)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A service's migrations for both backends, embedded at compile time from
/// `migrations/{postgres,sqlite}/<service>/`.
pub struct Migrations {
    pub postgres: Migrator,
    pub sqlite: Migrator,
}

/// Expands `$body` once per backend with `$pool` bound to the `PgPool` or `SqlitePool` of the
/// [`Db`] `$db` (a `&Db`).
///
/// ```ignore
/// let row = with_db!(&self.db, pool => sqlx::query_as::<_, Row>("select … where id = $1")
///     .bind(id).fetch_optional(pool).await)?;
/// ```
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $crate::db::Db::pool($db) {
            $crate::db::Pool::Postgres($pool) => $body,
            $crate::db::Pool::Sqlite($pool) => $body,
        }
    };
}

/// The configuration key of [`PoolSettings::ca_file`].
pub const CA_FILE_KEY: &str = "SHOP_DATABASE_CA_FILE";

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// CA certificates (PEM) that verify PostgreSQL servers ([`CA_FILE_KEY`]). Used by every
    /// PostgreSQL URL that names no `sslrootcert`; a URL that names no `sslmode` then gets
    /// `verify-full` instead of libpq's `prefer`.
    pub ca_file: Option<PathBuf>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_connections: 10, acquire_timeout: Duration::from_secs(5), ca_file: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL `{0}`: expected postgres://… or sqlite:…")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// PostgreSQL refused or failed the connection; `server` is `host:port`, `tls` says which
    /// `sslmode` was used and where the trusted CA came from (the configuration key). The
    /// message includes sqlx's (not also chained as a source, which would print it twice).
    #[error("cannot connect to PostgreSQL at {server} ({tls}): {error}")]
    PgConnect { server: String, tls: String, error: sqlx::Error },
    /// A CA file that cannot be used; `key` is the setting that named it.
    #[error("{key}: {message}")]
    CaFile { key: String, message: String },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Db {
    /// Connects to `postgres://…` or `sqlite:…` (the SQLite file is created if missing).
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Db, DbError> {
        let redacted = crate::config::redact_url(url);
        let connect_err = |source| DbError::Connect { url: redacted.clone(), source };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pg = PgTarget::new(url, settings).map_err(|e| match e {
                PgTargetError::Db(e) => e,
                PgTargetError::Sqlx(source) => connect_err(source),
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(pg.options.clone())
                .await
                .map_err(|error| DbError::PgConnect {
                    server: pg.server.clone(),
                    tls: pg.tls.clone(),
                    error,
                })?;
            let db = Db::from_pool(Pool::Postgres(pool));
            pg.report(&db).await;
            Ok(db)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(connect_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(opts)
                .await
                .map_err(connect_err)?;
            Ok(Db::from_pool(Pool::Sqlite(pool)))
        } else {
            Err(DbError::UnsupportedUrl(redacted))
        }
    }

    /// A `Db` over an open pool (with its own outbox signal).
    pub fn from_pool(pool: Pool) -> Db {
        Db { pool, outbox: Arc::new(Notify::new()) }
    }

    /// The pool, per backend.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Call after committing a transaction that wrote outbox rows
    /// ([`crate::events::outbox::enqueue`]): wakes this process's relay of this database at once
    /// (it also polls, slowly, for rows written elsewhere).
    pub fn outbox_committed(&self) {
        self.outbox.notify_one();
    }

    /// The signal [`Db::outbox_committed`] raises (the relay waits on it).
    pub(crate) fn outbox_signal(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    /// The statement that opens a transaction which will write: `BEGIN` on PostgreSQL,
    /// `BEGIN IMMEDIATE` on SQLite (take the write lock first, so two writers queue instead of
    /// failing with `SQLITE_BUSY` when one upgrades its read lock). Use with `begin_with`.
    pub fn begin_write_sql(&self) -> &'static str {
        match self.pool {
            Pool::Postgres(_) => "BEGIN",
            Pool::Sqlite(_) => "BEGIN IMMEDIATE",
        }
    }

    /// Applies the service's migrations for this backend.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        match &self.pool {
            Pool::Postgres(p) => migrations.postgres.run(p).await?,
            Pool::Sqlite(p) => migrations.sqlite.run(p).await?,
        }
        Ok(())
    }

    /// Whether this pool's connections are encrypted: `Some(true)` for PostgreSQL over TLS
    /// (as the server sees it, `pg_stat_ssl`), `Some(false)` in cleartext, `None` for SQLite.
    pub async fn encrypted(&self) -> Result<Option<bool>, sqlx::Error> {
        match &self.pool {
            Pool::Postgres(pool) => Ok(Some(pg_tls_version(pool).await?.is_some())),
            Pool::Sqlite(_) => Ok(None),
        }
    }

    /// A trivial round trip, used by `/readyz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    pub async fn close(&self) {
        with_db!(self, pool => pool.close().await)
    }
}

#[async_trait::async_trait]
impl crate::health::Check for Db {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.ping().await.map_err(|e| e.to_string())
    }
}

/// The TLS version of one pooled connection as the server reports it; `None` in cleartext.
async fn pg_tls_version(pool: &PgPool) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(bool, Option<String>)> =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((true, version)) => Some(version.unwrap_or_else(|| "TLS".to_string())),
        _ => None,
    })
}

/// A PostgreSQL URL turned into connect options, with the TLS settings applied and described.
struct PgTarget {
    options: PgConnectOptions,
    /// `host:port` (or the socket path): what errors and logs name. Never the password.
    server: String,
    /// `sslmode=…, CA from …`.
    tls: String,
    loopback: bool,
}

enum PgTargetError {
    Db(DbError),
    Sqlx(sqlx::Error),
}

impl PgTarget {
    fn new(url: &str, settings: &PoolSettings) -> Result<PgTarget, PgTargetError> {
        let mut options = PgConnectOptions::from_str(url).map_err(PgTargetError::Sqlx)?;
        // What the URL (or libpq's environment variables, which sqlx also reads) set explicitly.
        let params: Vec<(String, String)> = url::Url::parse(url)
            .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
            .unwrap_or_default();
        let param =
            |names: &[&str]| params.iter().find(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.clone());
        let url_mode = param(&["sslmode", "ssl-mode"]).or_else(|| std::env::var("PGSSLMODE").ok());
        let url_root = param(&["sslrootcert", "ssl-root-cert", "ssl-ca"])
            .map(|p| (p, "the URL's sslrootcert"))
            .or_else(|| std::env::var("PGSSLROOTCERT").ok().map(|p| (p, "PGSSLROOTCERT")));

        // A CA named anywhere, and no sslmode: verify the server (libpq would `prefer`).
        let ca = match (&url_root, &settings.ca_file) {
            (Some((path, key)), _) => {
                read_ca_file(Path::new(path), key).map_err(PgTargetError::Db)?;
                Some(format!("CA from {key} {path}"))
            }
            (None, Some(file)) => {
                let pem = read_ca_file(file, CA_FILE_KEY).map_err(PgTargetError::Db)?;
                options = options.ssl_root_cert_from_pem(pem);
                Some(format!("CA from {CA_FILE_KEY} {}", file.display()))
            }
            (None, None) => None,
        };
        if ca.is_some() && url_mode.is_none() {
            options = options.ssl_mode(PgSslMode::VerifyFull);
        }
        let ca = ca.unwrap_or_else(|| "CA from the built-in web PKI roots".to_string());
        let mode = options.get_ssl_mode();
        let tls = match mode {
            PgSslMode::Disable | PgSslMode::Allow => format!("sslmode={}, cleartext", ssl_mode_name(mode)),
            PgSslMode::Prefer | PgSslMode::Require => {
                format!("sslmode={}, server certificate not verified", ssl_mode_name(mode))
            }
            PgSslMode::VerifyCa | PgSslMode::VerifyFull => format!("sslmode={}, {ca}", ssl_mode_name(mode)),
        };
        let (server, loopback) = match options.get_socket() {
            Some(path) => (path.display().to_string(), true),
            None => {
                let host = options.get_host();
                let server = if host.contains(':') {
                    format!("[{host}]:{}", options.get_port())
                } else {
                    format!("{host}:{}", options.get_port())
                };
                (server, host.starts_with('/') || is_loopback_host(host))
            }
        };
        Ok(PgTarget { options, server, tls, loopback })
    }

    /// Logs whether the pool's connections are encrypted; loudly when a server off this host is
    /// reached in cleartext.
    async fn report(&self, db: &Db) {
        let Pool::Postgres(pool) = db.pool() else { return };
        let mode = ssl_mode_name(self.options.get_ssl_mode());
        match pg_tls_version(pool).await {
            Ok(Some(version)) => {
                tracing::info!(server = %self.server, sslmode = mode, tls = %version, "PostgreSQL connection encrypted")
            }
            Ok(None) if self.loopback => {
                tracing::info!(server = %self.server, sslmode = mode, "PostgreSQL connection in cleartext (loopback)")
            }
            Ok(None) => tracing::warn!(
                server = %self.server,
                sslmode = mode,
                "PostgreSQL connection is NOT ENCRYPTED: credentials and data cross the network in \
                 cleartext. Enable TLS on the server and set sslmode=verify-full in the database URL \
                 (and {CA_FILE_KEY} for a private CA)"
            ),
            Err(e) => tracing::warn!(server = %self.server, sslmode = mode, error = %e,
                "cannot tell whether the PostgreSQL connection is encrypted (pg_stat_ssl)"),
        }
    }
}

fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// `localhost` or a loopback address: traffic that never leaves the machine (or the pod).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Reads a PEM file of CA certificates, failing with an error that names `key` and the path
/// when it is missing, unreadable or holds no certificate.
pub fn read_ca_file(path: &Path, key: &str) -> Result<Vec<u8>, DbError> {
    let err = |message: String| DbError::CaFile { key: key.to_string(), message };
    let pem = std::fs::read(path).map_err(|e| err(format!("cannot read CA file {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(pem)
}

/// A UTC instant that orders correctly on both backends.
///
/// PostgreSQL stores it as `TIMESTAMPTZ`. On SQLite, sqlx writes `OffsetDateTime` as RFC 3339
/// text with a varying number of fractional digits, so `ORDER BY` and `<` on such columns are
/// silently wrong within a second; `Timestamp` always writes the fixed-width form
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, UTC), whose text order is time order. Use it for
/// every time column that is compared or sorted in SQL (expiries, sweeps, `ORDER BY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(#[serde(with = "time::serde::rfc3339")] pub time::OffsetDateTime);

const SQLITE_TIME_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

impl Timestamp {
    /// Now, truncated to microseconds (the precision both backends keep).
    pub fn now() -> Self {
        Self::from(time::OffsetDateTime::now_utc())
    }

    /// The fixed-width text form used on SQLite.
    pub fn to_sqlite_text(&self) -> String {
        self.0.format(SQLITE_TIME_FORMAT).expect("a UTC instant formats")
    }
}

impl From<time::OffsetDateTime> for Timestamp {
    fn from(t: time::OffsetDateTime) -> Self {
        let t = t.to_offset(time::UtcOffset::UTC);
        let micros = t.microsecond();
        Timestamp(t.replace_nanosecond(micros * 1000).expect("valid nanosecond"))
    }
}

impl From<Timestamp> for time::OffsetDateTime {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

impl std::ops::Add<std::time::Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: std::time::Duration) -> Timestamp {
        Timestamp::from(self.0 + d)
    }
}

impl std::ops::Sub<std::time::Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: std::time::Duration) -> Timestamp {
        Timestamp::from(self.0 - d)
    }
}

mod timestamp_sql {
    use super::Timestamp;
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
    use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
    use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
    use time::OffsetDateTime;

    impl Type<Postgres> for Timestamp {
        fn type_info() -> PgTypeInfo {
            <OffsetDateTime as Type<Postgres>>::type_info()
        }
    }
    impl Encode<'_, Postgres> for Timestamp {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&self.0, buf)
        }
    }
    impl<'r> Decode<'r, Postgres> for Timestamp {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            Ok(Timestamp::from(<OffsetDateTime as Decode<Postgres>>::decode(value)?))
        }
    }

    impl Type<Sqlite> for Timestamp {
        fn type_info() -> SqliteTypeInfo {
            <String as Type<Sqlite>>::type_info()
        }
        fn compatible(ty: &SqliteTypeInfo) -> bool {
            <OffsetDateTime as Type<Sqlite>>::compatible(ty)
        }
    }
    impl<'q> Encode<'q, Sqlite> for Timestamp {
        fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
            <String as Encode<'q, Sqlite>>::encode(self.to_sqlite_text(), buf)
        }
    }
    impl<'r> Decode<'r, Sqlite> for Timestamp {
        fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
            Ok(Timestamp::from(<OffsetDateTime as Decode<Sqlite>>::decode(value)?))
        }
    }
}

/// True when `err` is a unique-constraint violation (on either backend).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// True when `err` is a unique violation that concerns `column` (matched against the
/// PostgreSQL constraint name or the SQLite message `UNIQUE constraint failed: t.column`).
pub fn is_unique_violation_on(err: &sqlx::Error, column: &str) -> bool {
    match err.as_database_error() {
        Some(e) if e.is_unique_violation() => {
            e.constraint().is_some_and(|c| c.contains(column)) || e.message().contains(column)
        }
        _ => false,
    }
}

/// True when `err` is a foreign-key violation.
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some_and(|e| e.is_foreign_key_violation())
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_unknown_schemes() {
        let err = Db::connect("mysql://root:pw@localhost/x", &PoolSettings::default()).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unsupported"), "{msg}");
        assert!(!msg.contains("pw@"), "password redacted: {msg}");
    }

    #[test]
    fn sqlite_text_is_fixed_width_and_ordered() {
        let a = Timestamp::from(time::macros::datetime!(2026-11-22 10:00:00.1 UTC));
        let b = Timestamp::from(time::macros::datetime!(2026-11-22 10:00:00.12 UTC));
        assert_eq!(a.to_sqlite_text(), "2026-11-22T10:00:00.100000Z");
        assert!(a.to_sqlite_text() < b.to_sqlite_text());
        let shifted = Timestamp::from(time::macros::datetime!(2026-11-22 12:00:00 +02:00));
        assert_eq!(shifted.to_sqlite_text(), "2026-11-22T10:00:00.000000Z");
    }

    async fn timestamps_round_trip_and_compare(db: Db) {
        let ddl = match db.backend() {
            Backend::Postgres => "CREATE TABLE t (n BIGINT, at TIMESTAMPTZ NOT NULL)",
            Backend::Sqlite => "CREATE TABLE t (n BIGINT, at TEXT NOT NULL)",
        };
        with_db!(&db, pool => sqlx::query(ddl).execute(pool).await.map(|_| ())).unwrap();
        let base = Timestamp::now();
        // Sub-second instants whose plain RFC 3339 text would sort wrongly.
        for (n, ms) in [(1i64, 100u64), (2, 120), (3, 5), (4, 999)] {
            let at = base + std::time::Duration::from_millis(ms);
            with_db!(&db, pool => sqlx::query("INSERT INTO t (n, at) VALUES ($1, $2)").bind(n).bind(at)
                .execute(pool).await.map(|_| ()))
            .unwrap();
        }
        let order: Vec<i64> = with_db!(&db, pool => sqlx::query_scalar("SELECT n FROM t ORDER BY at")
            .fetch_all(pool).await)
        .unwrap();
        assert_eq!(order, vec![3, 1, 2, 4]);
        let cutoff = base + std::time::Duration::from_millis(110);
        let before: Vec<i64> =
            with_db!(&db, pool => sqlx::query_scalar("SELECT n FROM t WHERE at < $1 ORDER BY n")
            .bind(cutoff).fetch_all(pool).await)
            .unwrap();
        assert_eq!(before, vec![1, 3]);
        let back: Timestamp = with_db!(&db, pool => sqlx::query_scalar("SELECT at FROM t WHERE n = 4")
            .fetch_one(pool).await)
        .unwrap();
        assert_eq!(back, base + std::time::Duration::from_millis(999));
    }

    static NO_MIGRATIONS: Migrations = Migrations { postgres: Migrator::DEFAULT, sqlite: Migrator::DEFAULT };

    // Multi-threaded: dropping a `TestDb` closes its pool from another thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timestamps_on_sqlite() {
        let t = crate::testing::sqlite(&NO_MIGRATIONS).await;
        timestamps_round_trip_and_compare(t.db.clone()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timestamps_on_postgres() {
        let t = crate::testing::postgres(&NO_MIGRATIONS).await;
        timestamps_round_trip_and_compare(t.db.clone()).await;
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["db", "shop-postgres.shop.svc", "10.0.0.5", "192.168.1.2", "localhost.example", "::2"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn escapes_like() {
        assert_eq!(like_escape(r"50%_off\"), r"50\%\_off\\");
    }
}
