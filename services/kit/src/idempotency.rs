//! `Idempotency-Key` handling with Stripe's semantics for endpoints that create money
//! movements (checkout, payment intents, refunds):
//!
//! - the first request with a key runs and its successful response is stored;
//! - the same key with the same body replays the stored response (same status, same body);
//! - the same key with a different body is refused with 422;
//! - a duplicate that arrives while the first is still running waits for it, then replays;
//! - a request that fails (any error) releases the key, so the client may retry it.
//!
//! Keys are scoped (`"{user}:{operation}"`), so two users never share one. The table
//! ([`IDEMPOTENCY_POSTGRES_SQL`] / [`IDEMPOTENCY_SQLITE_SQL`]) lives in each service's own
//! database; copy it verbatim into the service's first migration.
//!
//! A crash between running the request and storing its response leaves the key "in progress";
//! after [`STALE_AFTER`] another request may take it over. Handlers whose effect must not run
//! twice even then (creating an order) also store the key with the effect itself.

use std::future::Future;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::Db;
use crate::problem::{ApiError, ErrorCode};
use crate::with_db;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Longest key accepted (Stripe's limit).
pub const MAX_KEY_LEN: usize = 255;
/// How long a duplicate waits for the first request before answering 409.
pub const WAIT: Duration = Duration::from_secs(15);
/// After this long, an unfinished request is presumed dead and its key may be taken over.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// The idempotency table (PostgreSQL).
pub const IDEMPOTENCY_POSTGRES_SQL: &str = "CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER,
    response TEXT,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
";

/// The idempotency table (SQLite).
pub const IDEMPOTENCY_SQLITE_SQL: &str = IDEMPOTENCY_POSTGRES_SQL;

/// The `Idempotency-Key` header as an OpenAPI parameter: `params(kit::idempotency::IdempotencyKey)`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// Unique per intended operation (a UUID is a good choice); reuse it when retrying: the same
    /// key with the same body replays the first answer, with another body it is refused (422
    /// `idempotency_key_reused`). 1–255 visible ASCII characters.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$", min_length = 1, max_length = 255)]
    idempotency_key: String,
}

/// The `Idempotency-Key` header of a request: required, 1–255 visible ASCII characters.
pub fn key_from_headers(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Err(ApiError::new(ErrorCode::IdempotencyKeyRequired).detail("this request creates a money movement: send an `Idempotency-Key` header (e.g. a UUID) and reuse it when you retry"));
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(ApiError::new(ErrorCode::InvalidIdempotencyKey)
            .detail(format!("`Idempotency-Key` must be 1–{MAX_KEY_LEN} visible ASCII characters")));
    }
    Ok(key.to_string())
}

/// A stable fingerprint (SHA-256, hex) of a request body, compared on replays.
pub fn fingerprint(body: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

type Stored = (String, Option<i32>, Option<String>, i64);

/// Runs `f` at most once per (`scope`, `key`) and answers duplicates with its stored response.
pub async fn run<F, Fut>(
    db: &Db,
    scope: &str,
    key: &str,
    fingerprint: &str,
    f: F,
) -> Result<(StatusCode, serde_json::Value), ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = now_ms();
        let inserted = with_db!(db, pool => sqlx::query(
            "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, created_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING")
            .bind(scope).bind(key).bind(fingerprint).bind(now)
            .execute(pool).await.map(|r| r.rows_affected()))?
            == 1;
        if inserted {
            return finish(db, scope, key, f().await).await;
        }
        let row: Option<Stored> = with_db!(db, pool => sqlx::query_as(
            "SELECT fingerprint, status_code, response, created_at_ms FROM idempotency_keys \
             WHERE scope = $1 AND idem_key = $2")
            .bind(scope).bind(key)
            .fetch_optional(pool).await)?;
        let Some((stored_fp, status, response, created)) = row else {
            continue; // released between our insert and select: try again
        };
        if stored_fp != fingerprint {
            return Err(ApiError::new(ErrorCode::IdempotencyKeyReused).detail("this Idempotency-Key was already used with a different request body; use a new key for a new request"));
        }
        if let (Some(status), Some(response)) = (status, response) {
            let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
            let body = serde_json::from_str(&response).map_err(ApiError::internal)?;
            return Ok((status, body));
        }
        // In progress elsewhere. Take it over when its owner is presumed dead.
        if now - created > STALE_AFTER.as_millis() as i64 {
            let taken = with_db!(db, pool => sqlx::query(
                "UPDATE idempotency_keys SET created_at_ms = $3 \
                 WHERE scope = $1 AND idem_key = $2 AND status_code IS NULL AND created_at_ms = $4")
                .bind(scope).bind(key).bind(now).bind(created)
                .execute(pool).await.map(|r| r.rows_affected()))?
                == 1;
            if taken {
                return finish(db, scope, key, f().await).await;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::conflict(
                ErrorCode::IdempotencyRequestInProgress,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn finish(
    db: &Db,
    scope: &str,
    key: &str,
    result: Result<(StatusCode, serde_json::Value), ApiError>,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    match &result {
        Ok((status, body)) => {
            let text = body.to_string();
            with_db!(db, pool => sqlx::query(
                "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE scope = $1 AND idem_key = $2")
                .bind(scope).bind(key).bind(i32::from(status.as_u16())).bind(text)
                .execute(pool).await.map(|_| ()))?;
        }
        Err(_) => {
            // Nothing was stored: let the client retry with the same key.
            if let Err(e) = with_db!(db, pool => sqlx::query(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND status_code IS NULL")
                .bind(scope).bind(key)
                .execute(pool).await.map(|_| ()))
            {
                tracing::warn!(error = %e, scope, "could not release an idempotency key");
            }
        }
    }
    result
}

/// Deletes keys older than `age` (housekeeping; Stripe keeps keys for 24 hours).
/// How long keys are kept: a retry within two days replays the first answer (Stripe keeps
/// theirs 24 h).
pub const RETENTION: Duration = Duration::from_secs(48 * 3600);

/// Deletes keys older than `age` ([`RETENTION`] in production; [`spawn_purge`] runs it hourly).
pub async fn purge(db: &Db, age: Duration) -> Result<u64, sqlx::Error> {
    let cutoff = now_ms() - age.as_millis() as i64;
    Ok(with_db!(db, pool => sqlx::query("DELETE FROM idempotency_keys WHERE created_at_ms < $1")
        .bind(cutoff).execute(pool).await.map(|r| r.rows_affected()))?)
}

/// Purges the keys of `db` older than [`RETENTION`] every hour until `shutdown`.
pub fn spawn_purge(db: Db, shutdown: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
    crate::component::every("idempotency keys purged", Duration::from_secs(3600), shutdown, move || {
        let db = db.clone();
        async move { purge(&db, RETENTION).await }
    })
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    async fn prepare(db: &Db) {
        with_db!(db, pool => sqlx::raw_sql(IDEMPOTENCY_POSTGRES_SQL).execute(pool).await.map(|_| ()))
            .unwrap();
    }

    static NO_MIGRATIONS: crate::db::Migrations = crate::db::Migrations {
        postgres: sqlx::migrate::Migrator::DEFAULT,
        sqlite: sqlx::migrate::Migrator::DEFAULT,
    };

    crate::db_tests! { NO_MIGRATIONS;
    async fn replays_and_refuses(db) {
        prepare(&db).await;
        let runs = AtomicUsize::new(0);
        let call = |n: i64| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok((StatusCode::CREATED, serde_json::json!({ "n": n })))
            }
        };
        let fp = fingerprint(&serde_json::json!({"a": 1}));
        let first = super::run(&db, "u:op", "k1", &fp, call(1)).await.unwrap();
        let again = super::run(&db, "u:op", "k1", &fp, call(2)).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(again.0, StatusCode::CREATED);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let other = fingerprint(&serde_json::json!({"a": 2}));
        let err = super::run(&db, "u:op", "k1", &other, call(3)).await.unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        // Another scope is another key.
        super::run(&db, "v:op", "k1", &other, call(4)).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    async fn errors_release_the_key(db) {
        prepare(&db).await;
        let fp = fingerprint(&1);
        let err = super::run(&db, "u:op", "k", &fp, || async { Err(ApiError::conflict(ErrorCode::InsufficientStock, "no stock")) }).await;
        assert!(err.is_err());
        let ok = super::run(&db, "u:op", "k", &fp, || async { Ok((StatusCode::OK, serde_json::json!(7))) }).await;
        assert_eq!(ok.unwrap().1, serde_json::json!(7));
    }

    async fn concurrent_duplicates_run_once(db) {
        prepare(&db).await;
        let runs = Arc::new(AtomicUsize::new(0));
        let fp = fingerprint(&"body");
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (db, runs, fp) = (db.clone(), runs.clone(), fp.clone());
            tasks.push(tokio::spawn(async move {
                super::run(&db, "u:checkout", "same", &fp, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok((StatusCode::CREATED, serde_json::json!({"order": 1})))
                })
                .await
            }));
        }
        for t in tasks {
            let (status, body) = t.await.unwrap().unwrap();
            assert_eq!((status, body), (StatusCode::CREATED, serde_json::json!({"order": 1})));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
    }

    #[test]
    fn header_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(key_from_headers(&h).unwrap_err().status, StatusCode::BAD_REQUEST);
        h.insert(HEADER, "  ".parse().unwrap());
        assert_eq!(key_from_headers(&h).unwrap_err().code, ErrorCode::InvalidIdempotencyKey);
        h.insert(HEADER, "abc-123".parse().unwrap());
        assert_eq!(key_from_headers(&h).unwrap(), "abc-123");
    }
}
