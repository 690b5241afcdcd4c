//! The SQL cart store (PostgreSQL or SQLite through [`kit::db::Db`]).
//!
//! Tables (`migrations/{postgres,sqlite}/cart`): `carts` (one row per cart: its expiry and the
//! per-cart write lock) and `cart_lines` (one row per line, with the product snapshot and the
//! cart's `expires_at`). Every write is one transaction that first upserts the `carts` row —
//! on PostgreSQL that row lock serialises the writers of one cart (so refreshing every line's
//! `expires_at` cannot deadlock), on SQLite the first write takes the database write lock. The
//! line upsert itself is one atomic `INSERT … ON CONFLICT (cart_id, product_id) DO UPDATE`
//! with a capped sum. Reads ignore expired rows; [`CartStore::purge_expired`] deletes them.

use std::time::Duration;

use kit::db::{Backend, Db, Timestamp};
use kit::money::Money;
use kit::with_db;
use sqlx::FromRow;
use uuid::Uuid;

use crate::store::*;

/// The SQL implementation of [`CartStore`].
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    pub fn new(db: Db) -> Self {
        SqlStore { db }
    }
}

/// The backend-specific part of the line upsert: the two-argument minimum is `LEAST` on
/// PostgreSQL and the scalar `MIN` on SQLite.
fn least(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "LEAST",
        Backend::Sqlite => "MIN",
    }
}

#[derive(FromRow)]
struct LineRow {
    product_id: Uuid,
    quantity: i64,
    name: String,
    sku: String,
    unit_amount: i64,
    currency: String,
    image: Option<String>,
    added_at: Timestamp,
}

impl From<LineRow> for StoredLine {
    fn from(r: LineRow) -> Self {
        StoredLine {
            product_id: r.product_id,
            quantity: r.quantity,
            snapshot: LineSnapshot {
                name: r.name,
                sku: r.sku,
                unit_price: Money { amount: r.unit_amount, currency: r.currency },
                image: r.image,
                added_at: r.added_at.0,
            },
        }
    }
}

const LINE_COLUMNS: &str = "product_id, quantity, name, sku, unit_amount, currency, image, added_at";

const LOCK_CART: &str = "INSERT INTO carts (cart_id, expires_at) VALUES ($1, $2) \
     ON CONFLICT (cart_id) DO UPDATE SET expires_at = excluded.expires_at";
const DELETE_EXPIRED_LINES: &str = "DELETE FROM cart_lines WHERE cart_id = $1 AND expires_at <= $2";
const REFRESH_LINES: &str = "UPDATE cart_lines SET expires_at = $2 WHERE cart_id = $1";

fn upsert_sql(backend: Backend) -> String {
    // The new row is inserted only when the line exists already (then ON CONFLICT updates it)
    // or the cart has room for another line; `$10` caps the summed quantity.
    format!(
        "INSERT INTO cart_lines (cart_id, product_id, quantity, name, sku, unit_amount, currency, image, \
         added_at, expires_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $11 \
         WHERE EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = $1 AND product_id = $2) \
            OR (SELECT COUNT(*) FROM cart_lines WHERE cart_id = $1) < $12 \
         ON CONFLICT (cart_id, product_id) DO UPDATE \
         SET quantity = {least}(cart_lines.quantity + excluded.quantity, $10), expires_at = excluded.expires_at \
         RETURNING quantity, added_at",
        least = least(backend)
    )
}

#[async_trait::async_trait]
impl CartStore for SqlStore {
    async fn lines(&self, cart: &str) -> StoreResult<Vec<StoredLine>> {
        let sql = format!(
            "SELECT {LINE_COLUMNS} FROM cart_lines WHERE cart_id = $1 AND expires_at > $2 \
             ORDER BY added_at, product_id"
        );
        let rows = with_db!(&self.db, pool => sqlx::query_as::<_, LineRow>(&sql)
            .bind(cart).bind(Timestamp::now()).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(StoredLine::from).collect())
    }

    async fn add(
        &self,
        cart: &str,
        product_id: Uuid,
        quantity: i64,
        snapshot: &LineSnapshot,
        limits: Limits,
        ttl: Duration,
    ) -> StoreResult<AddOutcome> {
        let now = Timestamp::now();
        let expires = now + ttl;
        let backend = self.db.backend();
        let sql = upsert_sql(backend);
        let snap = snapshot;
        let row: Option<(i64, Timestamp)> = with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(LOCK_CART).bind(cart).bind(expires).execute(&mut *tx).await?;
            sqlx::query(DELETE_EXPIRED_LINES).bind(cart).bind(now).execute(&mut *tx).await?;
            let row = sqlx::query_as::<_, (i64, Timestamp)>(&sql)
                .bind(cart)
                .bind(product_id)
                .bind(quantity.min(limits.max_quantity))
                .bind(&snap.name)
                .bind(&snap.sku)
                .bind(snap.unit_price.amount)
                .bind(&snap.unit_price.currency)
                .bind(&snap.image)
                .bind(Timestamp::from(snap.added_at))
                .bind(limits.max_quantity)
                .bind(expires)
                .bind(limits.max_lines as i64)
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query(REFRESH_LINES).bind(cart).bind(expires).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        })?;
        Ok(match row {
            None => AddOutcome::TooManyLines,
            Some((quantity, added_at)) => {
                AddOutcome::Added { quantity, created: added_at == Timestamp::from(snapshot.added_at) }
            }
        })
    }

    async fn set_quantity(
        &self,
        cart: &str,
        product_id: Uuid,
        quantity: i64,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let now = Timestamp::now();
        let expires = now + ttl;
        let n = with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(LOCK_CART).bind(cart).bind(expires).execute(&mut *tx).await?;
            let n = sqlx::query(
                "UPDATE cart_lines SET quantity = $3 WHERE cart_id = $1 AND product_id = $2 AND expires_at > $4")
                .bind(cart).bind(product_id).bind(quantity).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query(REFRESH_LINES).bind(cart).bind(expires).execute(&mut *tx).await?;
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok::<_, sqlx::Error>(n)
        })?;
        Ok(n > 0)
    }

    async fn remove(&self, cart: &str, product_id: Uuid, ttl: Duration) -> StoreResult<bool> {
        let now = Timestamp::now();
        let expires = now + ttl;
        let n = with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(LOCK_CART).bind(cart).bind(expires).execute(&mut *tx).await?;
            let n = sqlx::query(
                "DELETE FROM cart_lines WHERE cart_id = $1 AND product_id = $2 AND expires_at > $3")
                .bind(cart).bind(product_id).bind(now)
                .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query(REFRESH_LINES).bind(cart).bind(expires).execute(&mut *tx).await?;
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok::<_, sqlx::Error>(n)
        })?;
        Ok(n > 0)
    }

    async fn clear(&self, cart: &str) -> StoreResult<()> {
        with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM carts WHERE cart_id = $1").bind(cart).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1").bind(cart).execute(&mut *tx).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    async fn merge(
        &self,
        from: &str,
        into: &str,
        limits: Limits,
        ttl: Duration,
    ) -> StoreResult<MergeOutcome> {
        if from == into {
            return Ok(MergeOutcome::default());
        }
        let now = Timestamp::now();
        let expires = now + ttl;
        let backend = self.db.backend();
        let sql = upsert_sql(backend);
        let select = format!(
            "SELECT {LINE_COLUMNS} FROM cart_lines WHERE cart_id = $1 AND expires_at > $2 \
             ORDER BY added_at, product_id"
        );
        // Lock both carts in a fixed order so that two merges cannot deadlock.
        let (first, second) = if from < into { (from, into) } else { (into, from) };
        let outcome = with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(LOCK_CART).bind(first).bind(expires).execute(&mut *tx).await?;
            sqlx::query(LOCK_CART).bind(second).bind(expires).execute(&mut *tx).await?;
            sqlx::query(DELETE_EXPIRED_LINES).bind(into).bind(now).execute(&mut *tx).await?;
            let lines = sqlx::query_as::<_, LineRow>(&select).bind(from).bind(now).fetch_all(&mut *tx).await?;
            let mut outcome = MergeOutcome::default();
            for l in lines {
                let row = sqlx::query_as::<_, (i64, Timestamp)>(&sql)
                    .bind(into)
                    .bind(l.product_id)
                    .bind(l.quantity.min(limits.max_quantity))
                    .bind(&l.name)
                    .bind(&l.sku)
                    .bind(l.unit_amount)
                    .bind(&l.currency)
                    .bind(&l.image)
                    .bind(l.added_at)
                    .bind(limits.max_quantity)
                    .bind(expires)
                    .bind(limits.max_lines as i64)
                    .fetch_optional(&mut *tx)
                    .await?;
                if row.is_some() {
                    outcome.merged += 1;
                } else {
                    outcome.dropped += 1;
                }
            }
            sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1").bind(from).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM carts WHERE cart_id = $1").bind(from).execute(&mut *tx).await?;
            sqlx::query(REFRESH_LINES).bind(into).bind(expires).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(outcome)
        })?;
        Ok(outcome)
    }

    async fn ttl(&self, cart: &str) -> StoreResult<Option<Duration>> {
        let now = Timestamp::now();
        let at: Option<Timestamp> = with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT expires_at FROM cart_lines WHERE cart_id = $1 AND expires_at > $2 \
             ORDER BY expires_at LIMIT 1")
            .bind(cart).bind(now).fetch_optional(pool).await)?;
        Ok(at.map(|at| {
            let left = at.0 - now.0;
            Duration::from_micros(left.whole_microseconds().max(0) as u64)
        }))
    }

    async fn purge_expired(&self) -> StoreResult<u64> {
        let now = Timestamp::now();
        let (n, abandoned) = with_db!(&self.db, pool => {
            // The carts whose lines this sweep deleted (only the replica that deleted them sees
            // them): the carts abandoned with items.
            let with_items: Vec<String> = sqlx::query_scalar("DELETE FROM cart_lines WHERE expires_at <= $1 RETURNING cart_id")
                .bind(now).fetch_all(pool).await?;
            let carts = sqlx::query("DELETE FROM carts WHERE expires_at <= $1")
                .bind(now).execute(pool).await?.rows_affected();
            let abandoned = with_items.iter().collect::<std::collections::BTreeSet<_>>().len() as u64;
            Ok::<_, sqlx::Error>((with_items.len() as u64 + carts, abandoned))
        })?;
        if abandoned > 0 {
            metrics::counter!(kit::contract::metrics::CARTS_ABANDONED.name).increment(abandoned);
        }
        Ok(n)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.ping().await?;
        Ok(())
    }
}
