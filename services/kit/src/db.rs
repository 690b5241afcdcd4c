//! One store contract over two backends: PostgreSQL (production) and SQLite (embedded).
//!
//! Stores hold a [`Db`] and write each query once; [`with_db!`](crate::with_db) expands the
//! body for both pool types, so the same SQL text (with `$N` placeholders, which SQLite binds
//! by number) is type-checked against both drivers. Backend-specific SQL lives in few, named
//! places, chosen with [`Db::backend`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// A connection pool on one of the two supported backends.
#[derive(Clone, Debug)]
pub enum Db {
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

/// Expands `$body` once per backend with `$pool` bound to the `PgPool` or `SqlitePool`.
///
/// ```ignore
/// let row = with_db!(&self.db, pool => sqlx::query_as::<_, Row>("select … where id = $1")
///     .bind(id).fetch_optional(pool).await)?;
/// ```
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL `{0}`: expected postgres://… or sqlite:…")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Db {
    /// Connects to `postgres://…` or `sqlite:…` (the SQLite file is created if missing).
    pub async fn connect(url: &str, settings: &PoolSettings) -> Result<Db, DbError> {
        let redacted = crate::config::redact_url(url);
        let connect_err = |source| DbError::Connect { url: redacted.clone(), source };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(connect_err)?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(opts)
                .await
                .map_err(connect_err)?;
            Ok(Db::Postgres(pool))
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
            Ok(Db::Sqlite(pool))
        } else {
            Err(DbError::UnsupportedUrl(redacted))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Applies the service's migrations for this backend.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        match self {
            Db::Postgres(p) => migrations.postgres.run(p).await?,
            Db::Sqlite(p) => migrations.sqlite.run(p).await?,
        }
        Ok(())
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
    fn escapes_like() {
        assert_eq!(like_escape(r"50%_off\"), r"50\%\_off\\");
    }
}
