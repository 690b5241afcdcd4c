//! The inbox: which events a consumer group already processed, written in the same database
//! transaction as the handler's effect, so a redelivered event has no second effect.
//!
//! ```ignore
//! let handler = handler_fn(move |ev| { let db = db.clone(); async move {
//!     kit::with_db!(&db, pool => {
//!         let mut tx = pool.begin().await?;
//!         if !inbox::claim(&mut *tx, "payment", ev.id).await? {
//!             return Ok(()); // processed before: nothing to do (the commit is skipped too)
//!         }
//!         /* … the effect, on &mut *tx … */
//!         tx.commit().await?;
//!         Ok(())
//!     })
//! }});
//! ```
//!
//! The table (in [`super::outbox::OUTBOX_POSTGRES_SQL`] / [`super::outbox::OUTBOX_SQLITE_SQL`]):
//! `inbox(consumer_group, event_id, processed_at_ms)`, primary key `(consumer_group, event_id)`.

use uuid::Uuid;

use super::outbox::{now_ms, EventsConn};

/// Inserts the inbox row for (`group`, `event_id`) with `ON CONFLICT DO NOTHING`. True when
/// this is the first time (go on with the effect), false when the event was processed before.
pub async fn claim<C: EventsConn + ?Sized>(
    conn: &mut C,
    group: &str,
    event_id: Uuid,
) -> Result<bool, sqlx::Error> {
    conn.claim_inbox(group, event_id, now_ms()).await
}

pub(crate) const CLAIM_SQL: &str = "INSERT INTO inbox (consumer_group, event_id, processed_at_ms) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
