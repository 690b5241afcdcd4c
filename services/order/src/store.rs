//! Orders in PostgreSQL or SQLite. Every query is written once (`$N` placeholders) and run
//! through [`kit::with_db!`]. Every status change goes through [`Store::transition`]: one
//! transaction that reads the status, asks the pure status machine ([`crate::decide`]), updates
//! the row conditionally on the status it read, writes the history row and the events (outbox) —
//! so racing callers make exactly one transition and one set of events.

use kit::db::{Db, Timestamp};
use kit::events::contract::sources;
use kit::events::payloads::OrderCancelled;
use kit::events::{inbox, outbox, Envelope, EventError, EventPayload};
use kit::money::Money;
use kit::pagination::PageRequest;
use kit::problem::{ApiError, ErrorCode};
use kit::with_db;
use uuid::Uuid;

pub use crate::decide::IllegalTransition;
use crate::decide::{decide, events, line_items, Decision, OrderEvent};
use crate::model::*;

/// The consumer group of the order service's event handlers (inbox key).
pub const CONSUMER_GROUP: &str = kit::contract::ServiceName::Order.as_str();

/// What can go wrong in the store: the kit's store error, whose one mapping to problem
/// documents is `kit::store`, with the order's own refusal (a status change the lifecycle
/// forbids).
pub type StoreError = kit::store::StoreError<IllegalTransition>;

impl kit::store::Refusal for IllegalTransition {
    fn problem(&self) -> ApiError {
        ApiError::conflict(
            kit::problem::ErrorCode::IllegalTransition,
            format!("the order is {} and cannot become {}", self.from, self.to),
        )
    }
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound(format!("order {id}"))
}

fn corrupt(id: Uuid, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored order {id} is unreadable: {what}"))
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Who changed an order, and the event that caused it (if any).
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub cause: Option<Envelope>,
}

impl Actor {
    pub fn user(id: Uuid, admin: bool) -> Actor {
        Actor { name: format!("{}:{id}", if admin { "admin" } else { "user" }), cause: None }
    }
    pub fn system(what: &str) -> Actor {
        Actor { name: format!("system:{what}"), cause: None }
    }
    pub fn event(ev: &Envelope) -> Actor {
        Actor { name: format!("event:{}", ev.ty), cause: Some(ev.clone()) }
    }
}

/// A priced order ready to be stored (status `PENDING`).
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: Uuid,
    pub user_id: Uuid,
    pub items: Vec<OrderItem>,
    pub subtotal: Money,
    pub shipping_cost: Money,
    pub tax: Money,
    pub total: Money,
    pub shipping_method: String,
    pub shipping_address: Address,
    pub customer_email: Option<String>,
    pub notes: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Filters of [`Store::list_filtered`]; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Only this customer's orders.
    pub user: Option<Uuid>,
    pub status: Option<OrderStatus>,
    /// Only orders whose customer email contains this (case-insensitive).
    pub email: Option<String>,
}

/// Fields a transition may set besides the status.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub reservation_expires_at: Option<Timestamp>,
    pub payment_id: Option<Uuid>,
    pub payment_status: Option<String>,
    pub charge_id: Option<String>,
    pub failure_reason: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// Forget the Idempotency-Key (a refused checkout may be retried with the same key).
    pub clear_idempotency_key: bool,
}

/// Result of [`Store::transition`].
#[derive(Debug, Clone)]
pub enum Transitioned {
    /// The order moved; its new state.
    Done(Order),
    /// The order was already in the target status; nothing written.
    Already(Order),
}

impl Transitioned {
    pub fn order(self) -> Order {
        match self {
            Transitioned::Done(o) | Transitioned::Already(o) => o,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    user_id: Uuid,
    status: String,
    currency: String,
    subtotal: i64,
    shipping_cost: i64,
    tax: i64,
    total: i64,
    shipping_method: String,
    shipping_address: String,
    customer_email: Option<String>,
    notes: Option<String>,
    payment_id: Option<Uuid>,
    payment_status: Option<String>,
    charge_id: Option<String>,
    refunded_amount: i64,
    reservation_expires_at: Option<Timestamp>,
    failure_reason: Option<String>,
    carrier: Option<String>,
    tracking_number: Option<String>,
    paid_at: Option<Timestamp>,
    shipped_at: Option<Timestamp>,
    delivered_at: Option<Timestamp>,
    cancelled_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

const ORDER_COLUMNS: &str = "id, user_id, status, currency, subtotal, shipping_cost, tax, total, shipping_method, \
     shipping_address, customer_email, notes, payment_id, payment_status, charge_id, refunded_amount, reservation_expires_at, \
     failure_reason, carrier, tracking_number, paid_at, shipped_at, delivered_at, cancelled_at, created_at, updated_at";

type ItemRow = (Uuid, String, String, i64, i64, i64);
const ITEMS_SQL: &str = "SELECT product_id, sku, name, unit_price, quantity, line_total FROM order_items \
     WHERE order_id = $1 ORDER BY line_no";
type HistoryRow = (Option<String>, String, String, Option<String>, Timestamp);
type ShipmentRow =
    (Uuid, String, String, Option<String>, Option<String>, Option<Timestamp>, Option<Timestamp>);
const SHIPMENT_SQL: &str = "SELECT id, status, method, carrier, tracking_number, shipped_at, delivered_at \
     FROM shipments WHERE order_id = $1";

fn to_shipment(row: ShipmentRow) -> Shipment {
    let (id, status, method, carrier, tracking_number, shipped_at, delivered_at) = row;
    Shipment {
        id,
        status: ShipmentStatus::parse(&status).unwrap_or(ShipmentStatus::PendingPayment),
        method,
        carrier,
        tracking_number,
        shipped_at: shipped_at.map(Into::into),
        delivered_at: delivered_at.map(Into::into),
    }
}

/// Creates or moves the order's shipment (an upsert, so orders from before shipments existed
/// get theirs on their next transition).
const UPSERT_SHIPMENT_SQL: &str = "INSERT INTO shipments (id, order_id, status, method, carrier, tracking_number, \
     shipped_at, delivered_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
     ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, \
     carrier = COALESCE(excluded.carrier, shipments.carrier), \
     tracking_number = COALESCE(excluded.tracking_number, shipments.tracking_number), \
     shipped_at = COALESCE(excluded.shipped_at, shipments.shipped_at), \
     delivered_at = COALESCE(excluded.delivered_at, shipments.delivered_at), updated_at = excluded.updated_at";
const HISTORY_SQL: &str =
    "SELECT from_status, to_status, actor, reason, at FROM order_status_history WHERE order_id = $1 ORDER BY at, id";

fn status_of(id: Uuid, s: &str) -> StoreResult<OrderStatus> {
    OrderStatus::parse(s).ok_or_else(|| corrupt(id, format!("status {s}")))
}

fn to_order(
    row: OrderRow,
    items: Vec<ItemRow>,
    history: Option<Vec<HistoryRow>>,
    shipment: Option<ShipmentRow>,
) -> StoreResult<Order> {
    let cur = row.currency.clone();
    let money = |amount: i64| Money::new(amount, &cur);
    let address: Address =
        serde_json::from_str(&row.shipping_address).map_err(|e| corrupt(row.id, format!("address: {e}")))?;
    let history = match history {
        None => None,
        Some(rows) => Some(
            rows.into_iter()
                .map(|(from, to, actor, reason, at)| {
                    Ok(HistoryEntry {
                        from: from.as_deref().map(|f| status_of(row.id, f)).transpose()?,
                        to: status_of(row.id, &to)?,
                        actor,
                        reason,
                        at: at.into(),
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?,
        ),
    };
    Ok(Order {
        id: row.id,
        user_id: row.user_id,
        status: status_of(row.id, &row.status)?,
        items: items
            .into_iter()
            .map(|(product_id, sku, name, unit, quantity, line)| OrderItem {
                product_id,
                sku,
                name,
                quantity,
                unit_price: money(unit),
                line_total: money(line),
            })
            .collect(),
        subtotal: money(row.subtotal),
        shipping_cost: money(row.shipping_cost),
        tax: money(row.tax),
        total: money(row.total),
        shipping_method: row.shipping_method,
        shipping_address: address,
        customer_email: row.customer_email,
        notes: row.notes,
        payment_id: row.payment_id,
        payment_status: row.payment_status,
        charge_id: row.charge_id,
        refunded_amount: money(row.refunded_amount),
        reservation_expires_at: row.reservation_expires_at.map(Into::into),
        failure_reason: row.failure_reason,
        carrier: row.carrier,
        tracking_number: row.tracking_number,
        paid_at: row.paid_at.map(Into::into),
        shipped_at: row.shipped_at.map(Into::into),
        delivered_at: row.delivered_at.map(Into::into),
        cancelled_at: row.cancelled_at.map(Into::into),
        created_at: row.created_at.into(),
        updated_at: row.updated_at.into(),
        shipment: shipment.map(to_shipment),
        history,
    })
}

fn event<P: EventPayload>(payload: &P, actor: &Actor) -> Result<Envelope, EventError> {
    let ev = Envelope::new(sources::ORDER, payload)?;
    Ok(match &actor.cause {
        Some(c) => ev.caused_by(c),
        None => ev,
    })
}

/// The envelope of a transition's event, caused by the actor's cause.
fn envelope(ev: &OrderEvent, actor: &Actor) -> Result<Envelope, EventError> {
    match ev {
        OrderEvent::StatusChanged(p) => event(p, actor),
        OrderEvent::Placed(p) => event(p, actor),
        OrderEvent::Confirmed(p) => event(p, actor),
        OrderEvent::Cancelled(p) => event(p, actor),
        OrderEvent::ShipmentShipped(p) => event(p, actor),
        OrderEvent::Shipped(p) => event(p, actor),
        OrderEvent::ShipmentDelivered(p) => event(p, actor),
        OrderEvent::Delivered(p) => event(p, actor),
    }
}

/// The order service's tables.
#[derive(Clone)]
pub struct Store {
    db: Db,
    limits: UnpaidLimits,
}

/// What one customer may hold unpaid at once (#19: a free account must not hoard stock): orders
/// `PENDING` or `AWAITING_PAYMENT`, and the units those orders reserve. `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpaidLimits {
    pub orders: Option<u32>,
    pub units: Option<i64>,
}

/// The advisory-lock key of a customer's placements: the id's last eight bytes (random in a
/// version 7 UUID; a collision only makes two customers' placements wait for each other).
fn user_lock_key(user: Uuid) -> i64 {
    let b = user.as_bytes();
    i64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
}

/// The refusal of a new order of `new_units` units past a customer's [`UnpaidLimits`], given
/// what they hold unpaid (pure: the counts come from the store's transaction).
pub fn unpaid_limit_refusal(
    limits: UnpaidLimits,
    open_orders: i64,
    open_units: i64,
    new_units: i64,
) -> Option<StoreError> {
    if let Some(max) = limits.orders {
        if open_orders >= i64::from(max) {
            return Some(StoreError::Conflict {
                code: ErrorCode::UnpaidOrderLimit,
                detail: format!(
                    "you have {open_orders} unpaid orders, the most allowed at once is {max}: pay or cancel one first"
                ),
            });
        }
    }
    if let Some(max) = limits.units {
        if open_units.saturating_add(new_units) > max {
            return Some(StoreError::Conflict {
                code: ErrorCode::UnpaidUnitLimit,
                detail: format!(
                    "your unpaid orders would hold {} units, the most allowed at once is {max}: pay or cancel an order first, or order fewer",
                    open_units.saturating_add(new_units)
                ),
            });
        }
    }
    None
}

macro_rules! load_order {
    ($conn:expr, $id:expr, $history:expr) => {{
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let row: Option<OrderRow> = sqlx::query_as(&sql).bind($id).fetch_optional(&mut *$conn).await?;
        match row {
            None => None,
            Some(row) => {
                let email = row.customer_email.clone();
                let items: Vec<ItemRow> = sqlx::query_as(ITEMS_SQL).bind($id).fetch_all(&mut *$conn).await?;
                let history: Option<Vec<HistoryRow>> = if $history {
                    Some(sqlx::query_as(HISTORY_SQL).bind($id).fetch_all(&mut *$conn).await?)
                } else {
                    None
                };
                let shipment: Option<ShipmentRow> =
                    sqlx::query_as(SHIPMENT_SQL).bind($id).fetch_optional(&mut *$conn).await?;
                Some((to_order(row, items, history, shipment)?, email))
            }
        }
    }};
}

impl Store {
    pub fn new(db: Db) -> Store {
        Store { db, limits: UnpaidLimits::default() }
    }

    /// The same store, refusing orders past `limits` ([`Store::insert`]).
    pub fn with_unpaid_limits(self, limits: UnpaidLimits) -> Store {
        Store { limits, ..self }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores a new `PENDING` order with its first history row. Returns the id of the order
    /// already made with the same (user, Idempotency-Key) instead, when there is one.
    pub async fn insert(&self, new: &NewOrder) -> StoreResult<Result<Order, Uuid>> {
        if let Some(key) = &new.idempotency_key {
            if let Some(id) = self.by_idempotency_key(new.user_id, key).await? {
                return Ok(Err(id));
            }
        }
        let now = Timestamp::now();
        let address =
            serde_json::to_string(&new.shipping_address).map_err(|e| corrupt(new.id, e.to_string()))?;
        let cur = &new.total.currency;
        let actor = Actor::user(new.user_id, false);
        let new_units: i64 = new.items.iter().map(|i| i.quantity).fold(0i64, i64::saturating_add);
        let limits = self.limits;
        let checked = limits != UnpaidLimits::default();
        let postgres = matches!(self.db.pool(), kit::db::Pool::Postgres(_));
        // An async block, so that `?` ends the block and the race of two equal keys below is seen.
        let result: Result<Option<StoreError>, sqlx::Error> = with_db!(&self.db, pool => async {
            let mut tx = pool.begin_with(self.db.begin_write_sql()).await?;
            if checked {
                // One placement per customer at a time counts and inserts (SQLite's write
                // transaction already serializes), so racing requests cannot both pass a limit.
                if postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(user_lock_key(new.user_id)).execute(&mut *tx).await?;
                }
                let (open_orders, open_units): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(DISTINCT o.id), CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM orders o \
                     LEFT JOIN order_items i ON i.order_id = o.id \
                     WHERE o.user_id = $1 AND o.status IN ('PENDING', 'AWAITING_PAYMENT')")
                    .bind(new.user_id).fetch_one(&mut *tx).await?;
                if let Some(refusal) = unpaid_limit_refusal(limits, open_orders, open_units, new_units) {
                    tx.rollback().await?;
                    return Ok(Some(refusal));
                }
            }
            sqlx::query(
                "INSERT INTO orders (id, user_id, status, currency, subtotal, shipping_cost, tax, total, \
                 shipping_method, shipping_address, customer_email, notes, idempotency_key, created_at, updated_at) \
                 VALUES ($1, $2, 'PENDING', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)")
                .bind(new.id).bind(new.user_id).bind(cur).bind(new.subtotal.amount)
                .bind(new.shipping_cost.amount).bind(new.tax.amount).bind(new.total.amount)
                .bind(&new.shipping_method).bind(&address).bind(&new.customer_email).bind(&new.notes)
                .bind(&new.idempotency_key).bind(now)
                .execute(&mut *tx).await?;
            for (i, item) in new.items.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO order_items (order_id, line_no, product_id, sku, name, unit_price, quantity, line_total) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(new.id).bind(i as i32).bind(item.product_id).bind(&item.sku).bind(&item.name)
                    .bind(item.unit_price.amount).bind(item.quantity).bind(item.line_total.amount)
                    .execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO order_status_history (id, order_id, from_status, to_status, actor, reason, at) \
                 VALUES ($1, $2, NULL, 'PENDING', $3, 'order placed', $4)")
                .bind(Uuid::now_v7()).bind(new.id).bind(&actor.name).bind(now)
                .execute(&mut *tx).await?;
            sqlx::query(UPSERT_SHIPMENT_SQL)
                .bind(Uuid::now_v7()).bind(new.id).bind(ShipmentStatus::PendingPayment.as_str())
                .bind(&new.shipping_method).bind(None::<String>).bind(None::<String>)
                .bind(None::<Timestamp>).bind(None::<Timestamp>).bind(now)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(None)
        }.await);
        match result {
            Ok(None) => {}
            Ok(Some(refusal)) => return Err(refusal),
            Err(e) if kit::db::is_unique_violation(&e) && new.idempotency_key.is_some() => {
                // A concurrent request with the same key won the race.
                let key = new.idempotency_key.as_deref().unwrap_or_default();
                if let Some(id) = self.by_idempotency_key(new.user_id, key).await? {
                    return Ok(Err(id));
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        }
        crate::metrics::placed();
        self.get(new.id).await?.map(Ok).ok_or_else(|| not_found(new.id))
    }

    async fn by_idempotency_key(&self, user: Uuid, key: &str) -> StoreResult<Option<Uuid>> {
        Ok(with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM orders WHERE user_id = $1 AND idempotency_key = $2")
            .bind(user).bind(key).fetch_optional(pool).await)?)
    }

    /// One order with its items and history.
    pub async fn get(&self, id: Uuid) -> StoreResult<Option<Order>> {
        with_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            Ok(load_order!(conn, id, true).map(|(o, _)| o))
        })
    }

    /// A page of orders (newest first), of one user or of everyone, optionally by status.
    pub async fn list(
        &self,
        user: Option<Uuid>,
        status: Option<OrderStatus>,
        page: PageRequest,
    ) -> StoreResult<(Vec<Order>, i64)> {
        self.list_filtered(&OrderFilter { user, status, email: None }, page).await
    }

    /// Orders matching `filter`, newest first, without history; and how many match.
    pub async fn list_filtered(
        &self,
        filter: &OrderFilter,
        page: PageRequest,
    ) -> StoreResult<(Vec<Order>, i64)> {
        let cond = "($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR status = $2) \
                    AND ($3 IS NULL OR LOWER(customer_email) LIKE $3 ESCAPE '\\')";
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE {cond} ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        );
        let count = format!("SELECT COUNT(*) FROM orders WHERE {cond}");
        let status = filter.status.map(OrderStatus::as_str);
        let email =
            filter.email.as_deref().map(|e| format!("%{}%", kit::db::like_escape(&e.trim().to_lowercase())));
        let user = filter.user;
        with_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            let rows: Vec<OrderRow> = sqlx::query_as(&sql).bind(user).bind(status).bind(&email)
                .bind(page.limit()).bind(page.offset()).fetch_all(&mut *conn).await?;
            let total: i64 = sqlx::query_scalar(&count).bind(user).bind(status).bind(&email)
                .fetch_one(&mut *conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let items: Vec<ItemRow> = sqlx::query_as(ITEMS_SQL).bind(row.id).fetch_all(&mut *conn).await?;
                let shipment: Option<ShipmentRow> =
                    sqlx::query_as(SHIPMENT_SQL).bind(row.id).fetch_optional(&mut *conn).await?;
                out.push(to_order(row, items, None, shipment)?);
            }
            Ok((out, total))
        })
    }

    /// Counts by status and revenue per currency of the orders created in `[from, to)`
    /// (either bound optional). Revenue: total minus refunds of the orders that were paid.
    pub async fn summary(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> StoreResult<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        let window = "($1 IS NULL OR created_at >= $1) AND ($2 IS NULL OR created_at < $2)";
        let by_status =
            format!("SELECT status, COUNT(*) FROM orders WHERE {window} GROUP BY status ORDER BY status");
        let revenue = format!(
            "SELECT currency, CAST(SUM(total - refunded_amount) AS BIGINT) FROM orders \
             WHERE paid_at IS NOT NULL AND {window} GROUP BY currency ORDER BY currency"
        );
        with_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            let statuses: Vec<(String, i64)> =
                sqlx::query_as(&by_status).bind(from).bind(to).fetch_all(&mut *conn).await?;
            let money: Vec<(String, i64)> =
                sqlx::query_as(&revenue).bind(from).bind(to).fetch_all(&mut *conn).await?;
            Ok((statuses, money))
        })
    }

    /// Moves an order to `to` if the status machine allows it from where it is now (read in
    /// the same transaction), with the history row and the events. Already `to`: nothing
    /// written ([`Transitioned::Already`]). `allowed_from` narrows the legal predecessors
    /// further (e.g. a customer's cancel).
    pub async fn transition(
        &self,
        id: Uuid,
        to: OrderStatus,
        allowed_from: Option<&[OrderStatus]>,
        actor: &Actor,
        reason: Option<&str>,
        patch: Patch,
    ) -> StoreResult<Transitioned> {
        let now = Timestamp::now();
        with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write_sql()).await?;
            let lock = if matches!(self.db.pool(), kit::db::Pool::Postgres(_)) { " FOR UPDATE" } else { "" };
            let current: Option<String> = sqlx::query_scalar(&format!("SELECT status FROM orders WHERE id = $1{lock}"))
                .bind(id).fetch_optional(&mut *tx).await?;
            let Some(current) = current else { return Err(not_found(id)) };
            let from = status_of(id, &current)?;
            let m = match decide(from, to, allowed_from, now) {
                Decision::Already => {
                    let (order, _) = load_order!(tx, id, true).ok_or_else(|| not_found(id))?;
                    tx.commit().await?;
                    return Ok(Transitioned::Already(order));
                }
                Decision::Refused(refused) => return Err(StoreError::Refused(refused)),
                Decision::Move(m) => m,
            };
            let (before, _) = load_order!(tx, id, false).ok_or_else(|| not_found(id))?;
            sqlx::query(
                "UPDATE orders SET status = $2, updated_at = $3, \
                 reservation_expires_at = COALESCE($4, reservation_expires_at), \
                 payment_id = COALESCE($5, payment_id), payment_status = COALESCE($6, payment_status), \
                 failure_reason = COALESCE($7, failure_reason), carrier = COALESCE($8, carrier), \
                 tracking_number = COALESCE($9, tracking_number), paid_at = COALESCE($10, paid_at), \
                 shipped_at = COALESCE($11, shipped_at), delivered_at = COALESCE($12, delivered_at), \
                 cancelled_at = COALESCE($13, cancelled_at), \
                 idempotency_key = CASE WHEN $14 THEN NULL ELSE idempotency_key END, \
                 charge_id = COALESCE($16, charge_id) \
                 WHERE id = $1 AND status = $15")
                .bind(id).bind(m.to.as_str()).bind(now).bind(patch.reservation_expires_at)
                .bind(patch.payment_id).bind(&patch.payment_status).bind(&patch.failure_reason)
                .bind(&patch.carrier).bind(&patch.tracking_number).bind(m.paid_at)
                .bind(m.shipped_at).bind(m.delivered_at)
                .bind(m.cancelled_at).bind(patch.clear_idempotency_key).bind(m.from.as_str())
                .bind(&patch.charge_id)
                .execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO order_status_history (id, order_id, from_status, to_status, actor, reason, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(Uuid::now_v7()).bind(id).bind(m.from.as_str()).bind(m.to.as_str())
                .bind(&actor.name).bind(reason).bind(now)
                .execute(&mut *tx).await?;
            sqlx::query(UPSERT_SHIPMENT_SQL)
                .bind(Uuid::now_v7()).bind(id).bind(m.shipment.as_str()).bind(&before.shipping_method)
                .bind(&patch.carrier).bind(&patch.tracking_number)
                .bind(m.shipped_at).bind(m.delivered_at).bind(now)
                .execute(&mut *tx).await?;
            let (after, email) = load_order!(tx, id, true).ok_or_else(|| not_found(id))?;
            for ev in events(&before, &after, &actor.name, reason, email.as_deref(), now, Uuid::now_v7()) {
                outbox::enqueue(&mut *tx, &envelope(&ev, actor)?).await?;
            }
            tx.commit().await?;
            self.db.outbox_committed();
            crate::metrics::transitioned(from, to, &actor.name, after.created_at);
            Ok(Transitioned::Done(after))
        })
    }

    /// Records what the payment service reported, without a status change.
    pub async fn set_payment(
        &self,
        id: Uuid,
        payment_id: Uuid,
        payment_status: &str,
        charge_id: Option<&str>,
    ) -> StoreResult<()> {
        with_db!(&self.db, pool => sqlx::query(
            "UPDATE orders SET payment_id = $2, payment_status = $3, updated_at = $4, \
             charge_id = COALESCE($5, charge_id) WHERE id = $1")
            .bind(id).bind(payment_id).bind(payment_status).bind(Timestamp::now()).bind(charge_id)
            .execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Adds a refund (once per event, through the inbox) and derives the payment status.
    pub async fn record_refund(
        &self,
        ev: &Envelope,
        id: Uuid,
        payment_id: Uuid,
        amount: i64,
    ) -> StoreResult<()> {
        with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write_sql()).await?;
            if !inbox::claim(&mut *tx, CONSUMER_GROUP, ev.id).await? {
                return Ok(());
            }
            sqlx::query(
                "UPDATE orders SET refunded_amount = refunded_amount + $2, payment_id = $3, \
                 payment_status = CASE WHEN refunded_amount + $2 >= total THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END, \
                 updated_at = $4 WHERE id = $1")
                .bind(id).bind(amount).bind(payment_id).bind(Timestamp::now())
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Publishes `order.cancelled` again for an order that is already cancelled (a payment
    /// was authorised after the cancellation: the payment service must void it).
    pub async fn republish_cancel(&self, order: &Order, actor: &Actor) -> StoreResult<()> {
        let ev = event(
            &OrderCancelled {
                order_id: order.id,
                user_id: order.user_id,
                reason: order.failure_reason.clone().unwrap_or_else(|| "order no longer payable".into()),
                items: line_items(order),
                refund: true,
            },
            actor,
        )?;
        with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            outbox::enqueue(&mut *tx, &ev).await?;
            tx.commit().await?;
            self.db.outbox_committed();
            Ok(())
        })
    }

    /// `PENDING` orders last touched before `before` (the saga stalled: resume them).
    pub async fn stalled_pending(&self, before: Timestamp, limit: i64) -> StoreResult<Vec<Uuid>> {
        Ok(with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'PENDING' AND updated_at < $1 ORDER BY updated_at LIMIT $2")
            .bind(before).bind(limit).fetch_all(pool).await)?)
    }

    /// `AWAITING_PAYMENT` orders whose reservation expired before `now`.
    pub async fn unpaid_expired(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<Uuid>> {
        Ok(with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM orders WHERE status = 'AWAITING_PAYMENT' AND reservation_expires_at < $1 \
             ORDER BY reservation_expires_at LIMIT $2")
            .bind(now).bind(limit).fetch_all(pool).await)?)
    }
}
