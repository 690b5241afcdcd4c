//! The inventory store: stock rows, reservations and the audit trail over PostgreSQL or SQLite.
//!
//! Every query is written once with `$N` placeholders and run through [`kit::with_db!`]. The one
//! backend-specific piece is how a write transaction starts: [`begin_write_sql`] (`BEGIN
//! IMMEDIATE` on SQLite, so concurrent writers queue on the busy timeout instead of failing
//! with "database is locked" when they upgrade a read lock; plain `BEGIN` on PostgreSQL, where
//! the conditional `UPDATE … WHERE available_quantity >= $1` is the whole guard).
//!
//! Each stock movement moves units between columns in ONE statement whose `WHERE` refuses to
//! go below zero, writes its audit row, and enqueues its events in the same transaction. Where a
//! reservation's commit, release, expiry or return takes it is decided by the pure
//! [`crate::decide::decide`]; the store loads, asks and applies.

use std::collections::BTreeMap;
use std::time::Duration;

use kit::db::{is_unique_violation, Backend, Db, Timestamp};
use kit::events::contract::sources;
use kit::events::payloads::{InventoryLowStock, InventoryReservationFailed, InventoryReserved, LineItem};
use kit::events::{inbox, outbox, Envelope, EventError, EventPayload};
use kit::pagination::PageRequest;
use kit::problem::ErrorCode;
use kit::with_db;
use kit::ApiError;
use uuid::Uuid;

use crate::decide::{decide, Decision, Movement, Request, ReservationEvent};
use crate::model::*;

/// The consumer group of the inventory's event handlers (inbox key).
pub const CONSUMER_GROUP: &str = kit::contract::ServiceName::Inventory.as_str();

/// What can go wrong in the store: the kit's store error, whose one mapping to problem
/// documents is `kit::store`, with the inventory's own refusal (stock that is short).
pub type StoreError = kit::store::StoreError<Shortfall>;

/// An adjustment refused for want of stock: the products short.
#[derive(Debug, thiserror::Error)]
#[error("insufficient stock")]
pub struct Shortfall(pub Vec<Shortage>);

impl kit::store::Refusal for Shortfall {
    fn problem(&self) -> ApiError {
        insufficient_stock(&self.0)
    }
}

/// Stock rows that disagree with a reservation (a bug or a manual edit).
fn inconsistent(reservation: Uuid) -> StoreError {
    StoreError::Corrupt(format!("stock rows disagree with reservation {reservation}"))
}

/// The 409 of a refused reservation or adjustment, listing the products short.
pub fn insufficient_stock(shortages: &[Shortage]) -> ApiError {
    let ids: Vec<String> = shortages.iter().map(|s| s.product_id.to_string()).collect();
    let mut e =
        ApiError::conflict(ErrorCode::InsufficientStock, format!("not enough stock for {}", ids.join(", ")));
    for s in shortages {
        e = e
            .field(s.product_id.to_string(), format!("requested {}, available {}", s.requested, s.available));
    }
    e
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who or what causes an operation: recorded as the audit `actor`; when it is an event, the
/// event is claimed in the inbox in the operation's transaction and caused events point at it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub actor: String,
    pub cause: Option<Envelope>,
}

impl Origin {
    pub fn user(id: Uuid) -> Origin {
        Origin { actor: format!("user:{id}"), cause: None }
    }
    pub fn service() -> Origin {
        Origin { actor: "service".into(), cause: None }
    }
    pub fn system(what: &str) -> Origin {
        Origin { actor: format!("system:{what}"), cause: None }
    }
    pub fn event(ev: &Envelope) -> Origin {
        Origin { actor: format!("event:{}", ev.ty), cause: Some(ev.clone()) }
    }
}

/// Result of [`Store::reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Stock was reserved now.
    Created(Reservation),
    /// The order already had an active or committed reservation: returned unchanged.
    Existing(Reservation),
    /// Not every line could be reserved; nothing was (an `inventory.reservation_failed`
    /// event was written).
    Insufficient(Vec<Shortage>),
    /// The causing event was processed before (inbox): nothing done.
    AlreadyProcessed,
}

/// Result of [`Store::commit`] / [`Store::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The reservation changed state now.
    Done(Reservation),
    /// It was already in the requested state: returned unchanged.
    Unchanged(Reservation),
    /// The causing event was processed before (inbox): nothing done.
    AlreadyProcessed,
}

impl Transition {
    pub fn reservation(&self) -> Option<&Reservation> {
        match self {
            Transition::Done(r) | Transition::Unchanged(r) => Some(r),
            Transition::AlreadyProcessed => None,
        }
    }
}

/// How a write transaction starts on each backend (the one backend-specific statement).
///
/// SQLite: `BEGIN IMMEDIATE` takes the write lock up front, so writers wait on the pool's
/// `busy_timeout` instead of failing with `SQLITE_BUSY` ("database is locked") when a deferred
/// transaction tries to upgrade its read lock. PostgreSQL: a plain `BEGIN`; row locks taken by
/// the conditional updates (in product-id order) are enough.
pub fn begin_write_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "BEGIN",
        Backend::Sqlite => "BEGIN IMMEDIATE",
    }
}

const STOCK_COLUMNS: &str = "product_id, sku, available_quantity, reserved_quantity, total_quantity, \
     reorder_level, reorder_quantity, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
struct StockRow {
    product_id: Uuid,
    sku: String,
    available_quantity: i64,
    reserved_quantity: i64,
    total_quantity: i64,
    reorder_level: i64,
    reorder_quantity: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<StockRow> for Stock {
    fn from(r: StockRow) -> Stock {
        Stock {
            product_id: r.product_id,
            sku: r.sku,
            available_quantity: r.available_quantity,
            reserved_quantity: r.reserved_quantity,
            total_quantity: r.total_quantity,
            reorder_level: r.reorder_level,
            reorder_quantity: r.reorder_quantity,
            low_stock: r.available_quantity <= r.reorder_level,
            in_stock: r.available_quantity > 0,
            created_at: r.created_at.into(),
            updated_at: r.updated_at.into(),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct ReservationRow {
    id: Uuid,
    order_id: Uuid,
    status: String,
    reason: Option<String>,
    expires_at: Timestamp,
    created_at: Timestamp,
    updated_at: Timestamp,
    returned_at: Option<Timestamp>,
}

#[derive(Debug, sqlx::FromRow)]
struct TxRow {
    id: Uuid,
    product_id: Uuid,
    #[sqlx(rename = "type")]
    ty: String,
    quantity: i64,
    available_after: i64,
    reserved_after: i64,
    total_after: i64,
    reference: Option<String>,
    reason: Option<String>,
    actor: String,
    created_at: Timestamp,
}

/// Balances after a movement: (available, reserved, total, reorder level).
type After = (i64, i64, i64, i64);

const RESERVE_SQL: &str = "UPDATE stock SET available_quantity = available_quantity - $1, \
     reserved_quantity = reserved_quantity + $1, updated_at = $3 \
     WHERE product_id = $2 AND available_quantity >= $1 \
     RETURNING available_quantity, reserved_quantity, total_quantity, reorder_level";
const COMMIT_SQL: &str = "UPDATE stock SET reserved_quantity = reserved_quantity - $1, \
     total_quantity = total_quantity - $1, updated_at = $3 \
     WHERE product_id = $2 AND reserved_quantity >= $1 \
     RETURNING available_quantity, reserved_quantity, total_quantity, reorder_level";
const RELEASE_SQL: &str = "UPDATE stock SET available_quantity = available_quantity + $1, \
     reserved_quantity = reserved_quantity - $1, updated_at = $3 \
     WHERE product_id = $2 AND reserved_quantity >= $1 \
     RETURNING available_quantity, reserved_quantity, total_quantity, reorder_level";
const RETURN_SQL: &str = "UPDATE stock SET available_quantity = available_quantity + $1, \
     total_quantity = total_quantity + $1, updated_at = $3 \
     WHERE product_id = $2 \
     RETURNING available_quantity, reserved_quantity, total_quantity, reorder_level";
const ADJUST_SQL: &str = "UPDATE stock SET available_quantity = available_quantity + $1, \
     total_quantity = total_quantity + $1, updated_at = $3 \
     WHERE product_id = $2 AND available_quantity + $1 >= 0 \
     RETURNING available_quantity, reserved_quantity, total_quantity, reorder_level";
const AUDIT_SQL: &str = "INSERT INTO stock_transactions (id, product_id, type, quantity, available_after, \
     reserved_after, total_after, reference, reason, actor, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const RESERVATION_BY_ORDER: &str =
    "SELECT id, order_id, status, reason, expires_at, created_at, updated_at, returned_at \
     FROM reservations WHERE order_id = $1";
const ITEMS_SQL: &str =
    "SELECT product_id, quantity FROM reservation_items WHERE reservation_id = $1 ORDER BY product_id";

/// Writes one audit row on `$conn` (a `&mut *tx`).
macro_rules! audit {
    ($conn:expr, $product:expr, $ty:expr, $qty:expr, $after:expr, $reference:expr, $reason:expr, $actor:expr, $now:expr) => {{
        let (a, r, t, _): After = $after;
        sqlx::query(AUDIT_SQL)
            .bind(Uuid::now_v7())
            .bind($product)
            .bind(TransactionType::as_str($ty))
            .bind($qty)
            .bind(a)
            .bind(r)
            .bind(t)
            .bind($reference)
            .bind($reason)
            .bind($actor)
            .bind($now)
            .execute($conn)
            .await
    }};
}

/// Loads a reservation with its lines on `$conn` (a `&mut *tx` or a pool).
macro_rules! load_reservation {
    ($conn:expr, $order:expr) => {{
        let row: Option<ReservationRow> =
            sqlx::query_as(RESERVATION_BY_ORDER).bind($order).fetch_optional(&mut *$conn).await?;
        match row {
            None => None,
            Some(row) => {
                let items: Vec<(Uuid, i64)> =
                    sqlx::query_as(ITEMS_SQL).bind(row.id).fetch_all(&mut *$conn).await?;
                Some(reservation_from(row, items))
            }
        }
    }};
}

/// Claims the causing event in the inbox; `return`s `$done` when it was processed before.
macro_rules! claim_or_return {
    ($tx:expr, $origin:expr, $done:expr) => {
        if let Some(cause) = &$origin.cause {
            if !inbox::claim(&mut *$tx, CONSUMER_GROUP, cause.id).await? {
                return Ok($done);
            }
        }
    };
}

fn reservation_from(row: ReservationRow, items: Vec<(Uuid, i64)>) -> Reservation {
    Reservation {
        id: row.id,
        order_id: row.order_id,
        status: ReservationStatus::parse(&row.status).unwrap_or(ReservationStatus::Active),
        items: items
            .into_iter()
            .map(|(product_id, quantity)| ReservationLine { product_id, quantity })
            .collect(),
        reason: row.reason,
        expires_at: row.expires_at.into(),
        created_at: row.created_at.into(),
        updated_at: row.updated_at.into(),
        returned_at: row.returned_at.map(Into::into),
    }
}

fn event<P: EventPayload>(payload: &P, origin: &Origin) -> Result<Envelope, EventError> {
    let ev = Envelope::new(sources::INVENTORY, payload)?;
    Ok(match &origin.cause {
        Some(c) => ev.caused_by(c),
        None => ev,
    })
}

/// Emits `inventory.low_stock` when a movement took available from above the reorder level
/// to at or below it.
fn low_stock_crossing(product_id: Uuid, before: i64, after: After) -> Option<InventoryLowStock> {
    let (available, _, _, level) = after;
    (before > level && available <= level).then_some(InventoryLowStock {
        product_id,
        available,
        threshold: level,
    })
}

fn line_items(items: &[ReservationLine]) -> Vec<LineItem> {
    items
        .iter()
        .map(|l| LineItem {
            product_id: l.product_id,
            quantity: u32::try_from(l.quantity).unwrap_or(u32::MAX),
            unit_price: None,
        })
        .collect()
}

/// Sums quantities per product, in product-id order (the lock order of every movement).
pub fn sum_lines(items: &[ReservationLine]) -> BTreeMap<Uuid, i64> {
    let mut m = BTreeMap::new();
    for l in items {
        *m.entry(l.product_id).or_insert(0) += l.quantity;
    }
    m
}

/// The stock store.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    ttl: Duration,
}

impl Store {
    pub fn new(db: Db, reservation_ttl: Duration) -> Self {
        Store { db, ttl: reservation_ttl }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn begin_sql(&self) -> &'static str {
        begin_write_sql(self.db.backend())
    }

    // ----- stock rows -------------------------------------------------------------------

    pub async fn get(&self, product_id: Uuid) -> StoreResult<Option<Stock>> {
        let sql = format!("SELECT {STOCK_COLUMNS} FROM stock WHERE product_id = $1");
        let row: Option<StockRow> =
            with_db!(&self.db, pool => sqlx::query_as(&sql).bind(product_id).fetch_optional(pool).await)?;
        Ok(row.map(Stock::from))
    }

    /// A page of stock rows by SKU; `low_stock_only` keeps rows at or below their reorder level.
    pub async fn list(&self, low_stock_only: bool, page: PageRequest) -> StoreResult<(Vec<Stock>, i64)> {
        let cond = if low_stock_only { "WHERE available_quantity <= reorder_level" } else { "" };
        let sql =
            format!("SELECT {STOCK_COLUMNS} FROM stock {cond} ORDER BY sku, product_id LIMIT $1 OFFSET $2");
        let count = format!("SELECT COUNT(*) FROM stock {cond}");
        let (rows, total): (Vec<StockRow>, i64) = with_db!(&self.db, pool => {
            let rows = sqlx::query_as(&sql).bind(page.limit()).bind(page.offset()).fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar(&count).fetch_one(pool).await?;
            (rows, total)
        });
        Ok((rows.into_iter().map(Stock::from).collect(), total))
    }

    /// Creates the stock row of a product (409 `stock_exists` when there is one).
    pub async fn create(&self, input: &NewStock, origin: &Origin) -> StoreResult<Stock> {
        input.validate().map_err(StoreError::Invalid)?;
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO stock ({STOCK_COLUMNS}) VALUES ($1, $2, $3, 0, $3, $4, $5, $6, $6) \
             ON CONFLICT DO NOTHING RETURNING {STOCK_COLUMNS}"
        );
        let begin = self.begin_sql();
        let row: Option<StockRow> = with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let row: Option<StockRow> = sqlx::query_as(&sql)
                .bind(input.product_id)
                .bind(input.sku.trim())
                .bind(input.quantity)
                .bind(input.reorder_level)
                .bind(input.reorder_quantity)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(r) = &row {
                if input.quantity > 0 {
                    let after = (r.available_quantity, r.reserved_quantity, r.total_quantity, r.reorder_level);
                    audit!(&mut *tx, r.product_id, TransactionType::Adjustment, input.quantity, after,
                        None::<String>, Some("initial stock"), &origin.actor, now)?;
                }
            }
            tx.commit().await?;
            row
        });
        row.map(Stock::from).ok_or_else(|| StoreError::Conflict {
            code: ErrorCode::StockExists,
            detail: format!("product {} already has a stock row", input.product_id),
        })
    }

    /// Changes SKU and re-order settings.
    pub async fn update_settings(&self, product_id: Uuid, s: &StockSettings) -> StoreResult<Stock> {
        s.validate().map_err(StoreError::Invalid)?;
        let sql = format!(
            "UPDATE stock SET sku = COALESCE($2, sku), reorder_level = COALESCE($3, reorder_level), \
             reorder_quantity = COALESCE($4, reorder_quantity), updated_at = $5 \
             WHERE product_id = $1 RETURNING {STOCK_COLUMNS}"
        );
        let sku = s.sku.as_deref().map(str::trim);
        let row: Option<StockRow> = with_db!(&self.db, pool => sqlx::query_as(&sql)
            .bind(product_id).bind(sku).bind(s.reorder_level).bind(s.reorder_quantity).bind(Timestamp::now())
            .fetch_optional(pool).await)?;
        row.map(Stock::from).ok_or_else(|| StoreError::NotFound(format!("stock of product {product_id}")))
    }

    /// Adds (PURCHASE, RETURN, positive ADJUSTMENT) or removes (DAMAGE, SALE, negative
    /// ADJUSTMENT) available units; never below zero (`Insufficient`).
    pub async fn adjust(&self, product_id: Uuid, req: &AdjustRequest, origin: &Origin) -> StoreResult<Stock> {
        let delta = req.delta().map_err(StoreError::Invalid)?;
        let now = Timestamp::now();
        let begin = self.begin_sql();
        let result: Result<(), Option<i64>> = with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let after: Option<After> = sqlx::query_as(ADJUST_SQL)
                .bind(delta).bind(product_id).bind(now).fetch_optional(&mut *tx).await?;
            match after {
                None => {
                    let available: Option<i64> =
                        sqlx::query_scalar("SELECT available_quantity FROM stock WHERE product_id = $1")
                            .bind(product_id).fetch_optional(&mut *tx).await?;
                    Err(available)
                }
                Some(after) => {
                    audit!(&mut *tx, product_id, req.ty, delta, after, req.reference.as_deref(),
                        req.reason.as_deref(), &origin.actor, now)?;
                    if let Some(low) = low_stock_crossing(product_id, after.0 - delta, after) {
                        outbox::enqueue(&mut *tx, &event(&low, origin)?).await?;
                    }
                    tx.commit().await?;
                    self.db.outbox_committed();
                    Ok(())
                }
            }
        });
        match result {
            Ok(()) => {}
            Err(None) => return Err(StoreError::NotFound(format!("stock of product {product_id}"))),
            Err(Some(available)) => {
                return Err(StoreError::Refused(Shortfall(vec![Shortage {
                    product_id,
                    requested: -delta,
                    available,
                }])))
            }
        }
        self.get(product_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("stock of product {product_id}")))
    }

    /// The audit trail of a product, newest first.
    pub async fn transactions(
        &self,
        product_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<(Vec<StockTransaction>, i64)> {
        let sql = "SELECT id, product_id, type, quantity, available_after, reserved_after, total_after, \
                   reference, reason, actor, created_at FROM stock_transactions WHERE product_id = $1 \
                   ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3";
        let (rows, total): (Vec<TxRow>, i64) = with_db!(&self.db, pool => {
            let rows = sqlx::query_as(sql).bind(product_id).bind(page.limit()).bind(page.offset())
                .fetch_all(pool).await?;
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stock_transactions WHERE product_id = $1")
                .bind(product_id).fetch_one(pool).await?;
            (rows, total)
        });
        let items = rows
            .into_iter()
            .map(|r| StockTransaction {
                id: r.id,
                product_id: r.product_id,
                ty: TransactionType::parse(&r.ty).unwrap_or(TransactionType::Adjustment),
                quantity: r.quantity,
                available_after: r.available_after,
                reserved_after: r.reserved_after,
                total_after: r.total_after,
                reference: r.reference,
                reason: r.reason,
                actor: r.actor,
                created_at: r.created_at.into(),
            })
            .collect();
        Ok((items, total))
    }

    // ----- reservations -----------------------------------------------------------------

    pub async fn reservation(&self, order_id: Uuid) -> StoreResult<Option<Reservation>> {
        Ok(with_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            load_reservation!(conn, order_id)
        }))
    }

    /// Reserves every line of `order_id` or none: quantities summed per product, each
    /// product decremented with one conditional update, in product-id order, in one
    /// transaction. Idempotent per order id.
    pub async fn reserve(
        &self,
        order_id: Uuid,
        items: &[ReservationLine],
        origin: &Origin,
    ) -> StoreResult<ReserveOutcome> {
        ReserveRequest { order_id, items: items.to_vec() }.validate().map_err(StoreError::Invalid)?;
        let lines = sum_lines(items);
        // A concurrent first reserve of the same order (PostgreSQL) makes ours fail on the
        // unique order id; the retry then finds and returns its reservation.
        for _ in 0..3 {
            match self.reserve_once(order_id, &lines, origin).await {
                Err(StoreError::Db(e)) if is_unique_violation(&e) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict {
            code: ErrorCode::ReservationBusy,
            detail: format!("order {order_id} is being reserved"),
        })
    }

    async fn reserve_once(
        &self,
        order_id: Uuid,
        lines: &BTreeMap<Uuid, i64>,
        origin: &Origin,
    ) -> StoreResult<ReserveOutcome> {
        let begin = self.begin_sql();
        let now = Timestamp::now();
        let expires_at = now + self.ttl;
        let requested: Vec<ReservationLine> =
            lines.iter().map(|(p, q)| ReservationLine { product_id: *p, quantity: *q }).collect();
        with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            claim_or_return!(tx, origin, ReserveOutcome::AlreadyProcessed);
            if let Some(existing) = load_reservation!(tx, order_id) {
                return match existing.status {
                    ReservationStatus::Active | ReservationStatus::Committed if existing.items == requested => {
                        tx.commit().await?;
                        Ok(ReserveOutcome::Existing(existing))
                    }
                    ReservationStatus::Active | ReservationStatus::Committed => Err(StoreError::Conflict {
                        code: ErrorCode::ReservationMismatch,
                        detail: format!("order {order_id} already holds a reservation with other lines"),
                    }),
                    ReservationStatus::Released | ReservationStatus::Expired => Err(StoreError::Conflict {
                        code: ErrorCode::ReservationClosed,
                        detail: format!("the reservation of order {order_id} was {}", existing.status.as_str()),
                    }),
                };
            }
            let id = Uuid::now_v7();
            // Everything below is undone as one if any product is short.
            let mut sp = sqlx::Connection::begin(&mut *tx).await?;
            sqlx::query("INSERT INTO reservations (id, order_id, status, reason, expires_at, created_at, updated_at) \
                         VALUES ($1, $2, 'ACTIVE', NULL, $3, $4, $4)")
                .bind(id).bind(order_id).bind(expires_at).bind(now).execute(&mut *sp).await?;
            let mut shortages = Vec::new();
            let mut lows = Vec::new();
            let reference = order_id.to_string();
            for (&product_id, &quantity) in lines {
                let after: Option<After> = sqlx::query_as(RESERVE_SQL)
                    .bind(quantity).bind(product_id).bind(now).fetch_optional(&mut *sp).await?;
                match after {
                    None => {
                        let available: Option<i64> =
                            sqlx::query_scalar("SELECT available_quantity FROM stock WHERE product_id = $1")
                                .bind(product_id).fetch_optional(&mut *sp).await?;
                        shortages.push(Shortage { product_id, requested: quantity, available: available.unwrap_or(0) });
                    }
                    Some(after) if shortages.is_empty() => {
                        sqlx::query("INSERT INTO reservation_items (reservation_id, product_id, quantity) VALUES ($1, $2, $3)")
                            .bind(id).bind(product_id).bind(quantity).execute(&mut *sp).await?;
                        audit!(&mut *sp, product_id, TransactionType::Reservation, -quantity, after,
                            Some(&reference), None::<String>, &origin.actor, now)?;
                        lows.extend(low_stock_crossing(product_id, after.0 + quantity, after));
                    }
                    Some(_) => {}
                }
            }
            if !shortages.is_empty() {
                sp.rollback().await?;
                let failed = InventoryReservationFailed {
                    order_id,
                    reason: "insufficient_stock".into(),
                    unavailable: shortages.iter().map(|s| s.product_id).collect(),
                };
                outbox::enqueue(&mut *tx, &event(&failed, origin)?).await?;
                tx.commit().await?;
                self.db.outbox_committed();
                return Ok(ReserveOutcome::Insufficient(shortages));
            }
            sp.commit().await?;
            let reserved = InventoryReserved {
                order_id,
                reservation_id: id,
                items: line_items(&requested),
                expires_at: expires_at.into(),
            };
            outbox::enqueue(&mut *tx, &event(&reserved, origin)?).await?;
            for low in &lows {
                outbox::enqueue(&mut *tx, &event(low, origin)?).await?;
            }
            tx.commit().await?;
            self.db.outbox_committed();
            reservation_outcome("created");
            Ok(ReserveOutcome::Created(Reservation {
                id,
                order_id,
                status: ReservationStatus::Active,
                items: requested,
                reason: None,
                expires_at: expires_at.into(),
                created_at: now.into(),
                updated_at: now.into(),
                returned_at: None,
            }))
        })
    }

    /// Payment succeeded: the reserved units leave the stock (reserved ↓, total ↓).
    /// Idempotent; 409 `reservation_released` after a release or expiry.
    pub async fn commit(&self, order_id: Uuid, origin: &Origin) -> StoreResult<Transition> {
        self.change(order_id, Request::Commit, "", origin).await
    }

    /// Cancel or payment failure: reserved units go back to available. Idempotent (also after
    /// an expiry); 409 `reservation_committed` after a commit.
    pub async fn release(&self, order_id: Uuid, reason: &str, origin: &Origin) -> StoreResult<Transition> {
        self.change(order_id, Request::Release, reason, origin).await
    }

    /// An order cancelled after its stock was committed: the committed units go back to
    /// available (`RETURN` audit rows, `inventory.released` with reason `returned: …`).
    /// Idempotent (`Unchanged` once returned); 409 `reservation_not_committed` for a
    /// reservation that was never committed (release it instead).
    pub async fn restock(&self, order_id: Uuid, reason: &str, origin: &Origin) -> StoreResult<Transition> {
        self.change(order_id, Request::Return, reason, origin).await
    }

    /// Releases the reservation of a cancelled order, or returns its units when they were
    /// already committed: what a cancellation needs, whatever the reservation's state.
    pub async fn release_or_restock(
        &self,
        order_id: Uuid,
        reason: &str,
        origin: &Origin,
    ) -> StoreResult<Transition> {
        match self.release(order_id, reason, origin).await {
            Err(StoreError::Conflict { code: ErrorCode::ReservationCommitted, .. }) => {
                // The release's transaction rolled back, so the inbox claim did too.
                self.restock(order_id, reason, origin).await
            }
            other => other,
        }
    }

    /// Expires one reservation whose `expires_at <= now` (the sweeper's step).
    pub async fn expire(&self, order_id: Uuid, now: Timestamp) -> StoreResult<Transition> {
        self.change(order_id, Request::Expire { cutoff: now }, "expired", &Origin::system("sweeper")).await
    }

    /// The one way a reservation changes: in one transaction, claims the causing event, loads
    /// the reservation, asks [`decide`] and applies its change — the reservation update
    /// (conditional on the state decided on), one stock update and audit row per line, the
    /// outbox event. A refusal rolls back (the inbox claim with it).
    async fn change(
        &self,
        order_id: Uuid,
        request: Request,
        reason: &str,
        origin: &Origin,
    ) -> StoreResult<Transition> {
        let begin = self.begin_sql();
        let now = Timestamp::now();
        with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            claim_or_return!(tx, origin, Transition::AlreadyProcessed);
            let mut current = load_reservation!(tx, order_id);
            let mut decision = decide(current.as_ref(), request, reason);
            if let Decision::Apply(c) = &decision {
                let id: Option<Uuid> = match request {
                    Request::Commit => sqlx::query_scalar(
                        "UPDATE reservations SET status = 'COMMITTED', updated_at = $2 \
                         WHERE order_id = $1 AND status = 'ACTIVE' RETURNING id")
                        .bind(order_id).bind(now).fetch_optional(&mut *tx).await?,
                    Request::Release | Request::Expire { .. } => {
                        let (sql, cutoff) = match request {
                            Request::Expire { cutoff } => (
                                "UPDATE reservations SET status = $3, reason = $4, updated_at = $2 \
                                 WHERE order_id = $1 AND status = 'ACTIVE' AND expires_at <= $5 RETURNING id",
                                cutoff,
                            ),
                            _ => (
                                "UPDATE reservations SET status = $3, reason = $4, updated_at = $2 \
                                 WHERE order_id = $1 AND status = 'ACTIVE' RETURNING id",
                                now,
                            ),
                        };
                        sqlx::query_scalar(sql)
                            .bind(order_id).bind(now).bind(c.to.as_str()).bind(reason).bind(cutoff)
                            .fetch_optional(&mut *tx).await?
                    }
                    Request::Return => sqlx::query_scalar(
                        "UPDATE reservations SET returned_at = $2, updated_at = $2, reason = $3 \
                         WHERE order_id = $1 AND status = 'COMMITTED' AND returned_at IS NULL RETURNING id")
                        .bind(order_id).bind(now).bind(reason).fetch_optional(&mut *tx).await?,
                };
                if id.is_none() {
                    // Someone moved it first: answer from where it is now.
                    current = load_reservation!(tx, order_id);
                    decision = match decide(current.as_ref(), request, reason) {
                        Decision::Apply(_) => Decision::Unchanged,
                        other => other,
                    };
                }
            }
            let c = match decision {
                Decision::NotFound => return Err(StoreError::NotFound(format!("reservation of order {order_id}"))),
                Decision::Refused { code, detail } => return Err(StoreError::Conflict { code, detail }),
                Decision::Unchanged => {
                    let r = current.ok_or_else(|| StoreError::NotFound(format!("reservation of order {order_id}")))?;
                    tx.commit().await?;
                    return Ok(Transition::Unchanged(r));
                }
                Decision::Apply(c) => c,
            };
            let id = c.reservation_id;
            let movement = match c.movement {
                Movement::Commit => COMMIT_SQL,
                Movement::Release => RELEASE_SQL,
                Movement::Return => RETURN_SQL,
            };
            let reference = order_id.to_string();
            for line in &c.lines {
                let after: Option<After> = sqlx::query_as(movement)
                    .bind(line.quantity).bind(line.product_id).bind(now).fetch_optional(&mut *tx).await?;
                let after = after.ok_or_else(|| inconsistent(id))?;
                audit!(&mut *tx, line.product_id, c.audit, line.audit_quantity, after,
                    Some(&reference), c.reason.as_deref(), &origin.actor, now)?;
            }
            let ev = match &c.event {
                ReservationEvent::Committed(p) => event(p, origin)?,
                ReservationEvent::Released(p) => event(p, origin)?,
            };
            outbox::enqueue(&mut *tx, &ev).await?;
            let r = load_reservation!(tx, order_id).ok_or_else(|| inconsistent(id))?;
            tx.commit().await?;
            self.db.outbox_committed();
            reservation_outcome(c.outcome);
            Ok(Transition::Done(r))
        })
    }

    /// Expires every active reservation with `expires_at <= now`; returns how many.
    pub async fn sweep_expired(&self, now: Timestamp) -> StoreResult<usize> {
        let mut done = 0;
        loop {
            let due: Vec<Uuid> = with_db!(&self.db, pool => sqlx::query_scalar(
                "SELECT order_id FROM reservations WHERE status = 'ACTIVE' AND expires_at <= $1 \
                 ORDER BY expires_at LIMIT 100")
                .bind(now).fetch_all(pool).await)?;
            if due.is_empty() {
                return Ok(done);
            }
            let mut progressed = false;
            for order_id in due {
                if let Transition::Done(_) = self.expire(order_id, now).await? {
                    done += 1;
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(done);
            }
        }
    }
}

/// Counts a reservation that was created, committed, released, expired or returned.
fn reservation_outcome(outcome: &'static str) {
    metrics::counter!(kit::contract::metrics::RESERVATIONS.name, "outcome" => outcome).increment(1);
}
