//! The payment store over PostgreSQL or SQLite: payments, their status history, refunds,
//! processed webhook events.
//!
//! Every status change goes through [`Store::transition`]: in one transaction it claims the
//! cause (inbox row or webhook event id) when there is one, locks the payment, asks the pure
//! [`crate::decide::decide`] where the change takes it (the transition table
//! [`PaymentStatus::allowed_from`], refund arithmetic, the event), makes the conditional
//! `UPDATE … WHERE id = $1 AND status IN (<allowed predecessors>)`, writes the history row (and
//! the refund row) and enqueues the outbox event. Racing paths (the API's confirm, a webhook, an event handler)
//! therefore make exactly one transition and one event; a stale or repeated update is a no-op.

use kit::db::{is_unique_violation, is_unique_violation_on, Backend, Db, Timestamp};
use kit::events::contract::sources;
use kit::events::{inbox, outbox, Envelope, EventError, EventPayload};
use kit::money::Money;
use kit::problem::ErrorCode;
use kit::with_db;
use kit::ApiError;
use uuid::Uuid;

pub use crate::decide::Effect;
use crate::decide::{decide, Decision, Input, PaymentEvent, PaymentState, RefundWrite};
use crate::model::*;

/// How a write transaction starts: `BEGIN IMMEDIATE` on SQLite (writers queue on the busy
/// timeout instead of failing when a read lock would have to be upgraded), `BEGIN` on PostgreSQL.
pub fn begin_write_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "BEGIN",
        Backend::Sqlite => "BEGIN IMMEDIATE",
    }
}

/// Row lock of a `SELECT` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the write lock.
pub fn for_update(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

/// What can go wrong in the store: the kit's store error, whose one mapping to problem
/// documents is `kit::store`, with the payment's own refusal (a refund over what is left).
pub type StoreError = kit::store::StoreError<RefundTooLarge>;

/// A refund over what is left to refund (captured minus refunded and pending refunds).
#[derive(Debug, thiserror::Error)]
#[error("refund of {requested} exceeds the refundable {available}")]
pub struct RefundTooLarge {
    pub requested: i64,
    pub available: i64,
}

impl kit::store::Refusal for RefundTooLarge {
    fn problem(&self) -> ApiError {
        let RefundTooLarge { requested, available } = self;
        ApiError::new(ErrorCode::RefundExceedsCaptured)
            .detail(format!(
                "a refund of {requested} exceeds what is left to refund ({available} = captured minus refunded and pending refunds)"
            ))
            .field("amount", format!("must be between 1 and {available}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new payment (the provider intent, or the hosted checkout session, exists already).
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount: Money,
    pub provider: ProviderKind,
    /// The intent (`pi_…`), or for hosted checkout the session id until the intent is known.
    pub provider_payment_id: String,
    pub client_secret: Option<String>,
    pub status: PaymentStatus,
    /// The hosted checkout session the payment is made through.
    pub checkout: Option<CheckoutLink>,
}

/// A payment's hosted checkout session: its id, page and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLink {
    pub session_id: String,
    pub url: String,
    pub expires_at: Timestamp,
}

/// Result of [`Store::insert`].
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    Created(Payment),
    /// The order already had a live payment (a concurrent or earlier request made it).
    Existing(Payment),
}

/// The cause of a change that must be processed once: claimed in the change's transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// An event of another service (`inbox` row of `group`).
    Inbox { group: String, event_id: Uuid },
    /// A provider webhook event (`webhook_events` row).
    Webhook { event_id: String, event_type: String },
}

/// One requested status change.
#[derive(Debug, Clone)]
pub struct Change {
    pub payment_id: Uuid,
    pub effect: Effect,
    pub source: ChangeSource,
    pub reason: Option<String>,
    pub claim: Option<Claim>,
    /// The event that caused it (causation/correlation of the event written).
    pub cause: Option<Envelope>,
    /// The provider intent learnt with this change (a hosted checkout session's intent):
    /// recorded as `provider_payment_id` when the payment did not know its intent yet.
    pub intent_id: Option<String>,
}

impl Change {
    pub fn new(payment_id: Uuid, effect: Effect, source: ChangeSource) -> Change {
        Change { payment_id, effect, source, reason: None, claim: None, cause: None, intent_id: None }
    }
    pub fn intent(mut self, intent_id: Option<String>) -> Change {
        self.intent_id = intent_id;
        self
    }
    pub fn reason(mut self, reason: impl Into<String>) -> Change {
        self.reason = Some(reason.into());
        self
    }
    pub fn claim(mut self, claim: Option<Claim>) -> Change {
        self.claim = claim;
        self
    }
    pub fn caused_by(mut self, cause: Option<&Envelope>) -> Change {
        self.cause = cause.cloned();
        self
    }
}

/// Result of [`Store::transition`].
#[derive(Debug, Clone, PartialEq)]
pub enum Transitioned {
    /// The payment changed now (it is returned after the change).
    Done(Payment),
    /// Not allowed from the current status, or already done: nothing changed.
    Unchanged(Payment),
    /// The cause was claimed before (inbox or webhook event): nothing done.
    AlreadyProcessed,
    NotFound,
}

/// Result of [`Store::reserve_refund`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReservedRefund {
    pub refund: Refund,
    pub payment: Payment,
}

const PAYMENT_COLS: &str = "id, order_id, user_id, amount, currency, status, provider, provider_payment_id, \
     client_secret, captured_amount, refunded_amount, failure_code, failure_reason, next_action, created_at, updated_at, \
     checkout_session_id, charge_id, authorized_at";

#[derive(Debug, Clone, sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    order_id: Uuid,
    user_id: Uuid,
    amount: i64,
    currency: String,
    status: String,
    provider: String,
    provider_payment_id: String,
    client_secret: Option<String>,
    captured_amount: i64,
    refunded_amount: i64,
    failure_code: Option<String>,
    failure_reason: Option<String>,
    next_action: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    checkout_session_id: Option<String>,
    charge_id: Option<String>,
    authorized_at: Option<Timestamp>,
}

impl PaymentRow {
    fn status(&self) -> PaymentStatus {
        PaymentStatus::parse(&self.status).unwrap_or(PaymentStatus::Failed)
    }

    /// What a transition decides on ([`decide`]).
    fn state(&self) -> PaymentState {
        PaymentState {
            id: self.id,
            order_id: self.order_id,
            status: self.status(),
            amount: self.amount,
            currency: self.currency.clone(),
            captured_amount: self.captured_amount,
            refunded_amount: self.refunded_amount,
            provider_payment_id: self.provider_payment_id.clone(),
            checkout_session_id: self.checkout_session_id.clone(),
            charge_id: self.charge_id.clone(),
            next_action: self.next_action.clone(),
            failure_code: self.failure_code.clone(),
            failure_reason: self.failure_reason.clone(),
            authorized_at: self.authorized_at,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct HistoryRow {
    from_status: Option<String>,
    to_status: String,
    source: String,
    reason: Option<String>,
    at: Timestamp,
}

#[derive(Debug, sqlx::FromRow)]
struct RefundRow {
    id: Uuid,
    amount: i64,
    reason: Option<String>,
    status: String,
    created_at: Timestamp,
}

fn assemble(row: PaymentRow, history: Vec<HistoryRow>, refunds: Vec<RefundRow>) -> Payment {
    let currency = row.currency.clone();
    Payment {
        id: row.id,
        order_id: row.order_id,
        user_id: row.user_id,
        amount: Money { amount: row.amount, currency: row.currency.clone() },
        status: row.status(),
        provider: ProviderKind::parse(&row.provider).unwrap_or_default(),
        provider_payment_id: row.provider_payment_id,
        client_secret: row.client_secret,
        captured_amount: row.captured_amount,
        refunded_amount: row.refunded_amount,
        failure_code: row.failure_code,
        failure_reason: row.failure_reason,
        next_action: row.next_action.as_deref().and_then(|s| serde_json::from_str(s).ok()),
        checkout_session_id: row.checkout_session_id,
        charge_id: row.charge_id,
        authorized_at: row.authorized_at.map(Into::into),
        created_at: row.created_at.into(),
        updated_at: row.updated_at.into(),
        history: history
            .into_iter()
            .map(|h| HistoryEntry {
                from: h.from_status.as_deref().and_then(PaymentStatus::parse),
                to: PaymentStatus::parse(&h.to_status).unwrap_or(PaymentStatus::Failed),
                source: ChangeSource::parse(&h.source).unwrap_or(ChangeSource::Api),
                reason: h.reason,
                at: h.at.into(),
            })
            .collect(),
        refunds: refunds
            .into_iter()
            .map(|r| Refund {
                id: r.id,
                amount: Money { amount: r.amount, currency: currency.clone() },
                reason: r.reason,
                status: RefundStatus::parse(&r.status).unwrap_or(RefundStatus::Failed),
                created_at: r.created_at.into(),
            })
            .collect(),
    }
}

const HISTORY_SQL: &str =
    "INSERT INTO payment_status_history (id, payment_id, from_status, to_status, source, reason, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Loads a full payment on `$conn` (a `&mut *tx` or a pool connection).
macro_rules! load_payment {
    ($conn:expr, $sql:expr, $bind:expr) => {{
        let row: Option<PaymentRow> = sqlx::query_as($sql).bind($bind).fetch_optional(&mut *$conn).await?;
        match row {
            None => None,
            Some(row) => {
                let history: Vec<HistoryRow> = sqlx::query_as(
                    "SELECT from_status, to_status, source, reason, at FROM payment_status_history \
                     WHERE payment_id = $1 ORDER BY at, id",
                )
                .bind(row.id)
                .fetch_all(&mut *$conn)
                .await?;
                let refunds: Vec<RefundRow> = sqlx::query_as(
                    "SELECT id, amount, reason, status, created_at FROM refunds WHERE payment_id = $1 \
                     ORDER BY created_at, id",
                )
                .bind(row.id)
                .fetch_all(&mut *$conn)
                .await?;
                Some(assemble(row, history, refunds))
            }
        }
    }};
}

fn event<P: EventPayload>(payload: &P, cause: Option<&Envelope>) -> Result<Envelope, EventError> {
    let ev = Envelope::new(sources::PAYMENT, payload)?;
    Ok(match cause {
        Some(c) => ev.caused_by(c),
        None => ev,
    })
}

/// The SQL list of the statuses `to` may be reached from, e.g. `'AUTHORIZED', 'CAPTURED'`.
fn status_list(statuses: &[PaymentStatus]) -> String {
    statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

/// Filters of [`Store::list`]; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub status: Option<PaymentStatus>,
    pub provider: Option<ProviderKind>,
    pub order_id: Option<Uuid>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created before.
    pub to: Option<Timestamp>,
}

/// The store.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Store {
        Store { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn begin_sql(&self) -> &'static str {
        begin_write_sql(self.db.backend())
    }

    // ----- reads ------------------------------------------------------------------------

    pub async fn get(&self, id: Uuid) -> StoreResult<Option<Payment>> {
        let sql = format!("SELECT {PAYMENT_COLS} FROM payments WHERE id = $1");
        Ok(with_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            load_payment!(conn, &sql, id)
        }))
    }

    /// The payment of a provider intent (`pi_…`).
    pub async fn by_provider_id(&self, provider_payment_id: &str) -> StoreResult<Option<Payment>> {
        let sql = format!("SELECT {PAYMENT_COLS} FROM payments WHERE provider_payment_id = $1");
        Ok(with_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            load_payment!(conn, &sql, provider_payment_id)
        }))
    }

    /// The payment made through a hosted checkout session (`cs_…`).
    pub async fn by_checkout_session(&self, session_id: &str) -> StoreResult<Option<Payment>> {
        let sql = format!("SELECT {PAYMENT_COLS} FROM payments WHERE checkout_session_id = $1");
        Ok(with_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            load_payment!(conn, &sql, session_id)
        }))
    }

    /// The hosted checkout session of a payment, if it is made through one.
    pub async fn checkout_link(&self, payment_id: Uuid) -> StoreResult<Option<CheckoutLink>> {
        type Link = (Option<String>, Option<String>, Option<Timestamp>);
        let row: Option<Link> = with_db!(&self.db, pool => sqlx::query_as(
            "SELECT checkout_session_id, checkout_url, checkout_expires_at FROM payments WHERE id = $1")
            .bind(payment_id).fetch_optional(pool).await)?;
        Ok(match row {
            Some((Some(session_id), Some(url), Some(expires_at))) => {
                Some(CheckoutLink { session_id, url, expires_at })
            }
            _ => None,
        })
    }

    /// Every payment of an order, newest first.
    pub async fn for_order(&self, order_id: Uuid) -> StoreResult<Vec<Payment>> {
        let ids: Vec<Uuid> = with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM payments WHERE order_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(order_id).fetch_all(pool).await)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(p) = self.get(id).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Every payment matching `filter`, newest first, with the total count (admin list).
    pub async fn list(
        &self,
        filter: &PaymentFilter,
        page: kit::pagination::PageRequest,
    ) -> StoreResult<(Vec<Payment>, i64)> {
        let cond = "($1 IS NULL OR status = $1) AND ($2 IS NULL OR provider = $2) AND ($3 IS NULL OR order_id = $3) \
                    AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5)";
        let ids_sql = format!(
            "SELECT id FROM payments WHERE {cond} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
        );
        let count_sql = format!("SELECT COUNT(*) FROM payments WHERE {cond}");
        let status = filter.status.map(PaymentStatus::as_str);
        let provider = filter.provider.map(ProviderKind::as_str);
        let (ids, total): (Vec<Uuid>, i64) = with_db!(&self.db, pool => {
            let ids = sqlx::query_scalar(&ids_sql)
                .bind(status).bind(provider).bind(filter.order_id).bind(filter.from).bind(filter.to)
                .bind(page.limit()).bind(page.offset())
                .fetch_all(pool).await?;
            let total = sqlx::query_scalar(&count_sql)
                .bind(status).bind(provider).bind(filter.order_id).bind(filter.from).bind(filter.to)
                .fetch_one(pool).await?;
            Ok::<_, sqlx::Error>((ids, total))
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(p) = self.get(id).await? {
                out.push(p);
            }
        }
        Ok((out, total))
    }

    /// The order's live payment (not FAILED or CANCELLED), if any: at most one exists.
    pub async fn live_for_order(&self, order_id: Uuid) -> StoreResult<Option<Payment>> {
        let sql = format!(
            "SELECT {PAYMENT_COLS} FROM payments WHERE order_id = $1 AND status NOT IN ('FAILED', 'CANCELLED')"
        );
        Ok(with_db!(&self.db, pool => {
            let mut conn = pool.acquire().await?;
            load_payment!(conn, &sql, order_id)
        }))
    }

    /// How many payments of the order died (FAILED/CANCELLED): the next attempt's number.
    pub async fn dead_payments(&self, order_id: Uuid) -> StoreResult<i64> {
        Ok(with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM payments WHERE order_id = $1 AND status IN ('FAILED', 'CANCELLED')")
            .bind(order_id).fetch_one(pool).await)?)
    }

    // ----- creation ---------------------------------------------------------------------

    /// Inserts a payment with its first history row. The partial unique index
    /// `payments_one_live_per_order` lets only one live payment per order exist: a concurrent
    /// second insert gets the first one back.
    pub async fn insert(&self, new: &NewPayment, source: ChangeSource) -> StoreResult<Inserted> {
        let id = Uuid::now_v7();
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO payments ({PAYMENT_COLS}, checkout_url, checkout_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, NULL, NULL, NULL, $10, $10, $11, NULL, NULL, $12, $13)"
        );
        let begin = self.begin_sql();
        let checkout = new.checkout.as_ref();
        let created = if checkout.is_some() { "checkout session created" } else { "payment intent created" };
        let res: Result<(), sqlx::Error> = with_db!(&self.db, pool => async {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query(&sql)
                .bind(id).bind(new.order_id).bind(new.user_id).bind(new.amount.amount).bind(&new.amount.currency)
                .bind(new.status.as_str()).bind(new.provider.as_str()).bind(&new.provider_payment_id)
                .bind(&new.client_secret).bind(now)
                .bind(checkout.map(|c| c.session_id.as_str())).bind(checkout.map(|c| c.url.as_str())).bind(checkout.map(|c| c.expires_at))
                .execute(&mut *tx).await?;
            sqlx::query(HISTORY_SQL)
                .bind(Uuid::now_v7()).bind(id).bind(None::<String>).bind(new.status.as_str())
                .bind(source.as_str()).bind(Some(created)).bind(now)
                .execute(&mut *tx).await?;
            tx.commit().await
        }.await);
        match res {
            Ok(()) => {
                let p = self.get(id).await?.ok_or_else(|| StoreError::NotFound(format!("payment {id}")))?;
                Ok(Inserted::Created(p))
            }
            Err(e) if is_unique_violation(&e) => match self.live_for_order(new.order_id).await? {
                Some(p) => Ok(Inserted::Existing(p)),
                None if is_unique_violation_on(&e, "provider_payment_id") => Err(StoreError::Conflict {
                    code: ErrorCode::IntentAlreadyUsed,
                    detail: format!("provider intent {} belongs to another payment", new.provider_payment_id),
                }),
                None => Err(StoreError::Db(e)),
            },
            Err(e) => Err(e.into()),
        }
    }

    // ----- transitions ------------------------------------------------------------------

    /// The one way a payment's status changes (see the module documentation): loads the
    /// payment, asks [`decide`] and applies its decision, all in one transaction.
    pub async fn transition(&self, change: Change) -> StoreResult<Transitioned> {
        let begin = self.begin_sql();
        let lock = for_update(self.db.backend());
        let select = format!("SELECT {PAYMENT_COLS} FROM payments WHERE id = $1{lock}");
        let reload = format!("SELECT {PAYMENT_COLS} FROM payments WHERE id = $1");
        let now = Timestamp::now();
        let Change { payment_id, effect, source, reason, claim, cause, intent_id } = change;
        with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let fresh = match &claim {
                Some(Claim::Inbox { group, event_id }) => inbox::claim(&mut *tx, group, *event_id).await?,
                Some(Claim::Webhook { event_id, event_type }) => sqlx::query(
                    "INSERT INTO webhook_events (event_id, event_type, received_at) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING")
                    .bind(event_id).bind(event_type).bind(now)
                    .execute(&mut *tx).await?.rows_affected() == 1,
                None => true,
            };
            if !fresh {
                return Ok(Transitioned::AlreadyProcessed);
            }
            let row: Option<PaymentRow> = sqlx::query_as(&select).bind(payment_id).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                tx.commit().await?;
                return Ok(Transitioned::NotFound);
            };
            // The event that asked for a capture when it was requested ([`Store::note_capture_cause`]):
            // the capture's event carries it even when the provider's webhook records the capture first.
            let capture_cause: Option<(Option<String>, Option<String>)> = match (&effect, &cause) {
                (Effect::Captured { .. }, None) => sqlx::query_as(
                    "SELECT capture_causation_id, capture_correlation_id FROM payments WHERE id = $1")
                    .bind(payment_id).fetch_optional(&mut *tx).await?,
                _ => None,
            };
            // A refund's row if it is stored already (reserved, or recorded by another path), and
            // the event that asked for the refund when it was reserved: whichever path records the
            // refund (the handler that asked, or the provider's webhook first), the event says so.
            let mut known_refund: Option<RefundStatus> = None;
            let mut refund_cause: Option<(Option<String>, Option<String>)> = None;
            if let Effect::Refunded { refund_id, provider_refund_id, .. } = &effect {
                let known: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT status, causation_id, correlation_id FROM refunds \
                     WHERE id = $1 OR (provider_refund_id IS NOT NULL AND provider_refund_id = $2)")
                    .bind(refund_id).bind(provider_refund_id).fetch_optional(&mut *tx).await?;
                known_refund = known.as_ref().and_then(|(s, _, _)| RefundStatus::parse(s));
                refund_cause = known.map(|(_, causation, correlation)| (causation, correlation));
            }
            let state = row.state();
            let input = Input { effect: &effect, reason: reason.as_deref(), intent_id: intent_id.as_deref(), known_refund };
            let Decision::Apply(t) = decide(&state, &input, now) else {
                let current = load_payment!(tx, &reload, payment_id);
                tx.commit().await?;
                return Ok(current.map(Transitioned::Unchanged).unwrap_or(Transitioned::NotFound));
            };
            let next = &t.next;
            let update = format!(
                "UPDATE payments SET status = $2, next_action = $3, failure_code = $4, failure_reason = $5, \
                 captured_amount = $6, refunded_amount = $7, updated_at = $8, provider_payment_id = $10, \
                 charge_id = $11, authorized_at = $12 \
                 WHERE id = $1 AND status IN ({}) AND refunded_amount = $9",
                status_list(t.to.allowed_from())
            );
            let changed = sqlx::query(&update)
                .bind(payment_id).bind(t.to.as_str()).bind(&next.next_action).bind(&next.failure_code)
                .bind(&next.failure_reason).bind(next.captured_amount).bind(next.refunded_amount).bind(now)
                .bind(state.refunded_amount).bind(&next.provider_payment_id).bind(&next.charge_id)
                .bind(next.authorized_at)
                .execute(&mut *tx).await?.rows_affected();
            if changed != 1 {
                // Only without a row lock could this happen: someone else moved it first.
                let current = load_payment!(tx, &reload, payment_id);
                tx.commit().await?;
                return Ok(current.map(Transitioned::Unchanged).unwrap_or(Transitioned::NotFound));
            }
            sqlx::query(HISTORY_SQL)
                .bind(Uuid::now_v7()).bind(payment_id).bind(Some(t.from.as_str())).bind(t.to.as_str())
                .bind(source.as_str()).bind(&t.history_reason).bind(now)
                .execute(&mut *tx).await?;
            match &t.refund {
                Some(RefundWrite::Settle { refund_id, provider_refund_id }) => {
                    sqlx::query("UPDATE refunds SET status = 'SUCCEEDED', provider_refund_id = COALESCE($2, provider_refund_id), \
                                 updated_at = $3 WHERE id = $1")
                        .bind(refund_id).bind(provider_refund_id).bind(now).execute(&mut *tx).await?;
                }
                Some(RefundWrite::Insert { refund_id, amount, reason, provider_refund_id }) => {
                    sqlx::query("INSERT INTO refunds (id, payment_id, amount, reason, status, provider_refund_id, created_at, updated_at) \
                                 VALUES ($1, $2, $3, $4, 'SUCCEEDED', $5, $6, $6)")
                        .bind(refund_id).bind(payment_id).bind(amount).bind(reason).bind(provider_refund_id)
                        .bind(now).execute(&mut *tx).await?;
                }
                None => {}
            }
            let cause = cause.as_ref();
            // The event, caused by the change's cause, else by the event noted when the capture
            // or the refund was asked for.
            let noted = |ev: &mut Envelope, noted: Option<(Option<String>, Option<String>)>| {
                if let Some((Some(causation), correlation)) = noted {
                    ev.causationid = Some(causation);
                    if let Some(correlation) = correlation {
                        ev.correlationid = correlation;
                    }
                }
            };
            let ev = match &t.event {
                Some(PaymentEvent::Authorized(p)) => Some(event(p, cause)?),
                Some(PaymentEvent::Captured(p)) => {
                    let mut ev = event(p, cause)?;
                    noted(&mut ev, capture_cause);
                    Some(ev)
                }
                Some(PaymentEvent::Failed(p)) => Some(event(p, cause)?),
                Some(PaymentEvent::Refunded(p)) => {
                    let mut ev = event(p, cause)?;
                    if cause.is_none() {
                        noted(&mut ev, refund_cause);
                    }
                    Some(ev)
                }
                None => None,
            };
            if let Some(ev) = ev {
                outbox::enqueue(&mut *tx, &ev).await?;
            }
            let after = load_payment!(tx, &reload, payment_id);
            tx.commit().await?;
            self.db.outbox_committed();
            if let Some(outcome) = payment_outcome(t.to) {
                metrics::counter!(kit::contract::metrics::PAYMENTS.name, "outcome" => outcome, "provider" => row.provider.clone())
                    .increment(1);
            }
            Ok(after.map(Transitioned::Done).unwrap_or(Transitioned::NotFound))
        })
    }

    // ----- refunds ----------------------------------------------------------------------

    /// Reserves a refund before the provider is called: a PENDING row whose amount counts
    /// against what is left, so concurrent refunds can never exceed the captured amount.
    /// Idempotent per refund id (a retry finds its row). `amount` `None` = all that is left.
    pub async fn reserve_refund(
        &self,
        payment_id: Uuid,
        refund_id: Uuid,
        amount: Option<i64>,
        reason: Option<&str>,
        cause: Option<&Envelope>,
    ) -> StoreResult<ReservedRefund> {
        let begin = self.begin_sql();
        let lock = for_update(self.db.backend());
        let select = format!("SELECT {PAYMENT_COLS} FROM payments WHERE id = $1{lock}");
        let reload = format!("SELECT {PAYMENT_COLS} FROM payments WHERE id = $1");
        let now = Timestamp::now();
        with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let row: Option<PaymentRow> = sqlx::query_as(&select).bind(payment_id).fetch_optional(&mut *tx).await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(format!("payment {payment_id}")));
            };
            let existing: Option<RefundRow> = sqlx::query_as(
                "SELECT id, amount, reason, status, created_at FROM refunds WHERE id = $1 AND payment_id = $2")
                .bind(refund_id).bind(payment_id).fetch_optional(&mut *tx).await?;
            if existing.is_none() {
                let status = row.status();
                if !matches!(status, PaymentStatus::Captured | PaymentStatus::PartiallyRefunded) {
                    return Err(StoreError::Conflict {
                        code: ErrorCode::PaymentNotRefundable,
                        detail: format!("payment {payment_id} is {status}; only CAPTURED or PARTIALLY_REFUNDED payments can be refunded"),
                    });
                }
                let pending: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds WHERE payment_id = $1 AND status = 'PENDING'")
                    .bind(payment_id).fetch_one(&mut *tx).await?;
                let available = row.captured_amount - row.refunded_amount - pending;
                let amount = amount.unwrap_or(available);
                if amount <= 0 || amount > available {
                    return Err(StoreError::Refused(RefundTooLarge { requested: amount, available: available.max(0) }));
                }
                sqlx::query("INSERT INTO refunds (id, payment_id, amount, reason, status, provider_refund_id, created_at, updated_at, \
                             causation_id, correlation_id) VALUES ($1, $2, $3, $4, 'PENDING', NULL, $5, $5, $6, $7)")
                    .bind(refund_id).bind(payment_id).bind(amount).bind(reason).bind(now)
                    .bind(cause.map(|c| c.id.to_string())).bind(cause.map(|c| c.correlationid.clone()))
                    .execute(&mut *tx).await?;
            }
            let payment = load_payment!(tx, &reload, payment_id)
                .ok_or_else(|| StoreError::NotFound(format!("payment {payment_id}")))?;
            tx.commit().await?;
            let refund = payment.refunds.iter().find(|r| r.id == refund_id).cloned()
                .ok_or_else(|| StoreError::NotFound(format!("refund {refund_id}")))?;
            Ok(ReservedRefund { refund, payment })
        })
    }

    /// The provider refused a reserved refund: it no longer counts against the payment.
    pub async fn fail_refund(&self, refund_id: Uuid) -> StoreResult<()> {
        let now = Timestamp::now();
        with_db!(&self.db, pool => sqlx::query(
            "UPDATE refunds SET status = 'FAILED', updated_at = $2 WHERE id = $1 AND status = 'PENDING'")
            .bind(refund_id).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Refunds not yet settled: (refund id, amount) of the payment's PENDING refunds.
    pub async fn pending_refund_total(&self, payment_id: Uuid) -> StoreResult<i64> {
        Ok(with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds WHERE payment_id = $1 AND status = 'PENDING'")
            .bind(payment_id).fetch_one(pool).await)?)
    }

    /// PENDING refunds created before `before`: (refund id, payment id), oldest first.
    pub async fn stale_pending_refunds(&self, before: Timestamp) -> StoreResult<Vec<(Uuid, Uuid)>> {
        Ok(with_db!(&self.db, pool => sqlx::query_as(
            "SELECT id, payment_id FROM refunds WHERE status = 'PENDING' AND created_at < $1 \
             ORDER BY created_at, id LIMIT 100")
            .bind(before).fetch_all(pool).await)?)
    }

    /// The refund with this provider id, if one is recorded.
    pub async fn refund_by_provider_id(&self, provider_refund_id: &str) -> StoreResult<Option<Uuid>> {
        Ok(with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT id FROM refunds WHERE provider_refund_id = $1")
            .bind(provider_refund_id).fetch_optional(pool).await)?)
    }

    // ----- processed causes -------------------------------------------------------------

    /// True when the webhook event was processed before.
    pub async fn webhook_seen(&self, event_id: &str) -> StoreResult<bool> {
        let n: i64 = with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_events WHERE event_id = $1").bind(event_id).fetch_one(pool).await)?;
        Ok(n > 0)
    }

    /// Records a webhook event as processed (for events without a transition). False when it
    /// was recorded before.
    pub async fn record_webhook(&self, event_id: &str, event_type: &str) -> StoreResult<bool> {
        let now = Timestamp::now();
        let n = with_db!(&self.db, pool => sqlx::query(
            "INSERT INTO webhook_events (event_id, event_type, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(event_id).bind(event_type).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Remembers the event that asks for a capture, before the provider is called: the capture's
    /// `payment.captured` event carries its causation whichever path records the capture.
    pub async fn note_capture_cause(&self, payment_id: Uuid, cause: &Envelope) -> StoreResult<()> {
        with_db!(&self.db, pool => sqlx::query(
            "UPDATE payments SET capture_causation_id = $2, capture_correlation_id = $3 WHERE id = $1")
            .bind(payment_id).bind(cause.id.to_string()).bind(&cause.correlationid).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Forgets webhook events received before `before` (a provider retries a delivery for days,
    /// not weeks: Stripe for up to three days). Returns how many rows went.
    pub async fn purge_webhook_events(&self, before: Timestamp) -> StoreResult<u64> {
        Ok(with_db!(&self.db, pool => sqlx::query("DELETE FROM webhook_events WHERE received_at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?)
    }

    /// True when `group` processed the event before.
    pub async fn inbox_seen(&self, group: &str, event_id: Uuid) -> StoreResult<bool> {
        let n: i64 = with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM inbox WHERE consumer_group = $1 AND event_id = $2")
            .bind(group).bind(event_id).fetch_one(pool).await)?;
        Ok(n > 0)
    }

    /// Claims an event that has no effect (nothing to capture, refund or cancel).
    pub async fn claim_only(&self, group: &str, event_id: Uuid) -> StoreResult<bool> {
        with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let fresh = inbox::claim(&mut *tx, group, event_id).await?;
            tx.commit().await?;
            Ok(fresh)
        })
    }
}

/// The `outcome` label of `shop_payments_total` for a payment that reached `to`; `None` for the
/// steps before an outcome (waiting for a method, a confirmation or the customer's action).
pub fn payment_outcome(to: PaymentStatus) -> Option<&'static str> {
    match to {
        PaymentStatus::Authorized => Some("authorized"),
        PaymentStatus::Failed => Some("declined"),
        PaymentStatus::Captured => Some("captured"),
        PaymentStatus::Cancelled => Some("cancelled"),
        PaymentStatus::PartiallyRefunded => Some("partially_refunded"),
        PaymentStatus::Refunded => Some("refunded"),
        PaymentStatus::RequiresPaymentMethod
        | PaymentStatus::RequiresConfirmation
        | PaymentStatus::RequiresAction => None,
    }
}
