//! Persistence of notifications, contacts, known orders and shipments (PostgreSQL or SQLite).

use kit::db::{Backend, Db, Timestamp};
use kit::events::inbox;
use kit::pagination::PageRequest;
use kit::with_db;
use uuid::Uuid;

use crate::model::*;

/// The columns an insert writes.
const INSERT_COLS: &str =
    "id, event_id, event_type, user_id, order_id, recipient, notification_type, channel, subject, \
     content, html, status, retry_count, last_error, next_attempt_at, created_at, sent_at, secret, secret_expires_at";
/// The columns of [`NotificationRow`].
const COLS: &str = INSERT_COLS;

/// What handling one event writes, in one transaction with its inbox row.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub contacts: Vec<Contact>,
    /// (order id, user id)
    pub orders: Vec<(Uuid, Uuid)>,
    pub shipments: Vec<Shipment>,
    pub notifications: Vec<NewNotification>,
}

/// Filters of the admin list.
#[derive(Debug, Clone, Default)]
pub struct AdminFilter {
    pub status: Option<Status>,
    pub notification_type: Option<NotificationType>,
    pub channel: Option<ChannelKind>,
}

/// The insert of one notification (`ON CONFLICT (event_id, channel) DO NOTHING`), for either
/// backend's executor.
macro_rules! insert {
    ($n:expr, $now:expr) => {{
        let n: &NewNotification = $n;
        let sent_at: Option<Timestamp> = None;
        sqlx::query(const_format_insert())
            .bind(n.id)
            .bind(n.event_id)
            .bind(&n.event_type)
            .bind(n.user_id)
            .bind(n.order_id)
            .bind(&n.recipient)
            .bind(n.notification_type.as_str())
            .bind(n.channel.as_str())
            .bind(&n.subject)
            .bind(&n.content)
            .bind(&n.html)
            .bind(n.status.as_str())
            .bind(&n.last_error)
            .bind($now)
            .bind(sent_at)
            .bind(&n.secret)
            .bind(n.secret_expires_at)
    }};
}

fn const_format_insert() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO notifications ({INSERT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $14, $14, $15, $16, $17) \
             ON CONFLICT (event_id, channel) DO NOTHING"
        )
    })
}

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

    /// Claims the inbox row of (`group`, `event_id`) and writes `effects`, atomically. False
    /// (and nothing written) when the event was processed before. Notifications are inserted
    /// with `ON CONFLICT (event_id, channel) DO NOTHING`.
    pub async fn apply_event(
        &self,
        group: &str,
        event_id: Uuid,
        effects: &Effects,
    ) -> Result<bool, sqlx::Error> {
        let now = Timestamp::now();
        with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            if !inbox::claim(&mut *tx, group, event_id).await? {
                return Ok(false);
            }
            for c in &effects.contacts {
                sqlx::query(
                    "INSERT INTO contacts (user_id, email, name, phone, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (user_id) DO UPDATE SET email = COALESCE(excluded.email, contacts.email), \
                     name = COALESCE(excluded.name, contacts.name), phone = COALESCE(excluded.phone, contacts.phone), \
                     updated_at = excluded.updated_at",
                )
                .bind(c.user_id).bind(&c.email).bind(&c.name).bind(&c.phone).bind(now)
                .execute(&mut *tx).await?;
            }
            for (order, user) in &effects.orders {
                sqlx::query("INSERT INTO known_orders (order_id, user_id) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING")
                    .bind(order).bind(user).execute(&mut *tx).await?;
            }
            for s in &effects.shipments {
                sqlx::query(
                    "INSERT INTO shipments (shipment_id, order_id, carrier, tracking_number) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (shipment_id) DO UPDATE SET carrier = excluded.carrier, \
                     tracking_number = excluded.tracking_number",
                )
                .bind(s.shipment_id).bind(s.order_id).bind(&s.carrier).bind(&s.tracking_number)
                .execute(&mut *tx).await?;
            }
            for n in &effects.notifications {
                insert!(n, now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Stores one message that is not caused by an event (a security email from the auth
    /// service): idempotent per (`event_id`, channel), the caller's request id. True when new.
    pub async fn insert_one(&self, n: &NewNotification) -> Result<bool, sqlx::Error> {
        let now = Timestamp::now();
        let inserted =
            with_db!(&self.db, pool => insert!(n, now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(inserted == 1)
    }

    /// Clears the tokens of security emails whose link expired before they could be sent, and
    /// fails those still pending (a dead link is not worth sending).
    pub async fn expire_secrets(&self, now: Timestamp) -> Result<u64, sqlx::Error> {
        let n = with_db!(&self.db, pool => sqlx::query(
            "UPDATE notifications SET secret = NULL, \
             status = CASE WHEN status = 'PENDING' THEN 'FAILED' ELSE status END, \
             last_error = CASE WHEN status = 'PENDING' THEN 'the link expired before it could be sent' ELSE last_error END \
             WHERE secret IS NOT NULL AND secret_expires_at <= $1")
            .bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Takes up to `limit` due PENDING rows for this dispatcher: their `next_attempt_at` moves
    /// to `now + lease`, so no other dispatcher sees them until the lease runs out (a crash
    /// mid-send makes them due again). PostgreSQL locks with `FOR UPDATE SKIP LOCKED`; on
    /// SQLite the single conditional UPDATE is atomic.
    pub async fn claim_due(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, sqlx::Error> {
        let lock = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE notifications SET next_attempt_at = $2 WHERE id IN (SELECT id FROM notifications \
             WHERE status = 'PENDING' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3{lock}) \
             AND status = 'PENDING' AND next_attempt_at <= $1 RETURNING {COLS}"
        );
        let mut rows = with_db!(&self.db, pool => sqlx::query_as::<_, NotificationRow>(&sql)
            .bind(now).bind(now + lease).bind(limit).fetch_all(pool).await)?;
        rows.sort_by_key(|r| (r.created_at, r.id));
        Ok(rows)
    }

    /// PENDING → SENT (a security email's token is forgotten), with `notification.sent` in the
    /// same transaction.
    pub async fn mark_sent(&self, id: Uuid, at: Timestamp) -> Result<bool, kit::store::StoreError> {
        self.finish(
            id,
            "UPDATE notifications SET status = 'SENT', sent_at = $2, secret = NULL WHERE id = $1 AND status = 'PENDING' \
             RETURNING user_id, order_id, notification_type, channel, retry_count",
            Finish::Sent(at),
        )
        .await
    }

    /// A failed attempt: `retry_count` + 1 and either a next attempt at `next` (still PENDING)
    /// or FAILED when `next` is `None`, with `notification.failed` in the same transaction.
    pub async fn mark_attempt_failed(
        &self,
        id: Uuid,
        error: &str,
        next: Option<Timestamp>,
    ) -> Result<bool, kit::store::StoreError> {
        match next {
            Some(at) => {
                let r = with_db!(&self.db, pool => sqlx::query(
                    "UPDATE notifications SET retry_count = retry_count + 1, last_error = $2, next_attempt_at = $3 \
                     WHERE id = $1 AND status = 'PENDING'")
                    .bind(id).bind(error).bind(at).execute(pool).await.map(|r| r.rows_affected()))?;
                Ok(r == 1)
            }
            None => {
                self.finish(
                    id,
                    "UPDATE notifications SET retry_count = retry_count + 1, last_error = $2, status = 'FAILED', \
                     secret = NULL WHERE id = $1 AND status = 'PENDING' \
                     RETURNING user_id, order_id, notification_type, channel, retry_count",
                    Finish::Failed(error),
                )
                .await
            }
        }
    }

    /// Ends a notification with `update` (which returns the row's user, order, type, channel and
    /// attempts) and enqueues its event in the same transaction. False when it was not PENDING.
    async fn finish(&self, id: Uuid, update: &str, how: Finish<'_>) -> Result<bool, kit::store::StoreError> {
        use kit::events::payloads::{NotificationFailed, NotificationSent};
        use kit::events::{contract::sources, outbox, Envelope};
        type Ended = (Option<Uuid>, Option<Uuid>, String, String, i64);
        with_db!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write_sql()).await?;
            let q = sqlx::query_as::<_, Ended>(update).bind(id);
            let q = match how {
                Finish::Sent(at) => q.bind(at),
                Finish::Failed(error) => q.bind(error),
            };
            let Some((user_id, order_id, template, channel, attempts)) = q.fetch_optional(&mut *tx).await? else {
                return Ok(false);
            };
            let event = match how {
                Finish::Sent(_) => Envelope::new(
                    sources::NOTIFICATION,
                    &NotificationSent { notification_id: id, user_id, template, channel, order_id },
                ),
                Finish::Failed(error) => Envelope::new(
                    sources::NOTIFICATION,
                    &NotificationFailed {
                        notification_id: id, user_id, template, channel, order_id,
                        attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
                        error: error.chars().take(500).collect(),
                    },
                ),
            }?;
            outbox::enqueue(&mut *tx, &event).await?;
            tx.commit().await?;
            self.db.outbox_committed();
            Ok(true)
        })
    }

    /// FAILED → PENDING, due at `now`, with its attempts counted afresh (an admin's resend).
    /// False when the row is not FAILED (or does not exist).
    pub async fn requeue_failed(&self, id: Uuid, now: Timestamp) -> Result<bool, sqlx::Error> {
        let r = with_db!(&self.db, pool => sqlx::query(
            "UPDATE notifications SET status = 'PENDING', retry_count = 0, next_attempt_at = $2 \
             WHERE id = $1 AND status = 'FAILED' AND recipient <> ''")
            .bind(id).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(r == 1)
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<NotificationRow>, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query_as::<_, NotificationRow>(
            &format!("SELECT {COLS} FROM notifications WHERE id = $1"))
            .bind(id).fetch_optional(pool).await)
    }

    /// Every notification of one event (all channels).
    pub async fn by_event(&self, event_id: Uuid) -> Result<Vec<NotificationRow>, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query_as::<_, NotificationRow>(
            &format!("SELECT {COLS} FROM notifications WHERE event_id = $1 ORDER BY channel"))
            .bind(event_id).fetch_all(pool).await)
    }

    /// A user's notifications, newest first.
    pub async fn list_for_user(
        &self,
        user: Uuid,
        page: PageRequest,
    ) -> Result<(Vec<NotificationRow>, i64), sqlx::Error> {
        let rows = with_db!(&self.db, pool => sqlx::query_as::<_, NotificationRow>(&format!(
            "SELECT {COLS} FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"))
            .bind(user).bind(page.limit()).bind(page.offset()).fetch_all(pool).await)?;
        let total: i64 = with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE user_id = $1").bind(user).fetch_one(pool).await)?;
        Ok((rows, total))
    }

    /// Every notification (admin), filtered, newest first.
    pub async fn list_all(
        &self,
        filter: &AdminFilter,
        page: PageRequest,
    ) -> Result<(Vec<NotificationRow>, i64), sqlx::Error> {
        let mut conds = Vec::new();
        let mut args: Vec<&'static str> = Vec::new();
        for (col, v) in [
            ("status", filter.status.map(|s| s.as_str())),
            ("notification_type", filter.notification_type.map(|t| t.as_str())),
            ("channel", filter.channel.map(|c| c.as_str())),
        ] {
            if let Some(v) = v {
                args.push(v);
                conds.push(format!("{col} = ${}", args.len()));
            }
        }
        let where_ = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        let n = args.len();
        let list_sql = format!(
            "SELECT {COLS} FROM notifications{where_} ORDER BY created_at DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let count_sql = format!("SELECT COUNT(*) FROM notifications{where_}");
        let rows = with_db!(&self.db, pool => {
            let mut q = sqlx::query_as::<_, NotificationRow>(&list_sql);
            for a in &args { q = q.bind(*a); }
            q.bind(page.limit()).bind(page.offset()).fetch_all(pool).await
        })?;
        let total: i64 = with_db!(&self.db, pool => {
            let mut q = sqlx::query_scalar(&count_sql);
            for a in &args { q = q.bind(*a); }
            q.fetch_one(pool).await
        })?;
        Ok((rows, total))
    }

    /// Counts by status (for tests and diagnostics).
    pub async fn count_by_status(&self, status: Status) -> Result<i64, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE status = $1")
            .bind(status.as_str()).fetch_one(pool).await)
    }

    pub async fn contact(&self, user: Uuid) -> Result<Option<Contact>, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query_as::<_, Contact>(
            "SELECT user_id, email, name, phone FROM contacts WHERE user_id = $1")
            .bind(user).fetch_optional(pool).await)
    }

    /// Records (or updates; absent fields are kept) where to reach a user. The composer or an
    /// event carrying the customer's address feeds it.
    pub async fn upsert_contact(&self, c: &Contact) -> Result<(), sqlx::Error> {
        let now = Timestamp::now();
        with_db!(&self.db, pool => sqlx::query(
            "INSERT INTO contacts (user_id, email, name, phone, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET email = COALESCE(excluded.email, contacts.email), \
             name = COALESCE(excluded.name, contacts.name), phone = COALESCE(excluded.phone, contacts.phone), \
             updated_at = excluded.updated_at")
            .bind(c.user_id).bind(&c.email).bind(&c.name).bind(&c.phone).bind(now)
            .execute(pool).await.map(|_| ()))
    }

    /// The customer of an order seen in an order event.
    pub async fn order_user(&self, order: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query_scalar("SELECT user_id FROM known_orders WHERE order_id = $1")
            .bind(order).fetch_optional(pool).await)
    }

    pub async fn shipment(&self, shipment: Uuid) -> Result<Option<Shipment>, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query_as::<_, Shipment>(
            "SELECT shipment_id, order_id, carrier, tracking_number FROM shipments WHERE shipment_id = $1")
            .bind(shipment).fetch_optional(pool).await)
    }
}

/// How [`Store::finish`] ends a notification.
#[derive(Clone, Copy)]
enum Finish<'a> {
    Sent(Timestamp),
    Failed(&'a str),
}
