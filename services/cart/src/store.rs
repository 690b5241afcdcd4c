//! The cart storage contract ([`CartStore`]) shared by the Redis and SQL implementations.
//!
//! A cart is a set of lines keyed by product id, stored under an opaque cart id
//! (`user:<uuid>` or `guest:<token>`). Every write refreshes the whole cart's time to live;
//! an expired cart reads as empty. Writes are atomic per cart: concurrent adds to one line
//! never lose an increment and concurrent changes of different lines never lose a line.

use std::time::Duration;

use kit::money::Money;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What the cart remembers about a product from the moment the line was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineSnapshot {
    pub name: String,
    pub sku: String,
    /// The unit price when the line was added.
    pub unit_price: Money,
    pub image: Option<String>,
    /// When the line was added (microsecond precision, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// A stored cart line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub product_id: Uuid,
    pub quantity: i64,
    pub snapshot: LineSnapshot,
}

/// Per-cart limits applied atomically by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Highest quantity of one line; sums are capped at it.
    pub max_quantity: i64,
    /// Most lines in one cart; adding a new line beyond it is refused.
    pub max_lines: usize,
}

/// The result of [`CartStore::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// The line now has this quantity (capped at the per-line maximum); `created` when the
    /// line was new.
    Added { quantity: i64, created: bool },
    /// The line was new and the cart already has the maximum number of lines.
    TooManyLines,
}

/// The result of [`CartStore::merge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Lines of the source cart merged into the target.
    pub merged: usize,
    /// Lines of the source cart dropped because the target was full.
    pub dropped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cart storage unavailable: {0}")]
    Unavailable(String),
    #[error("cart storage error: {0}")]
    Backend(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(e.to_string())
            }
            e => StoreError::Backend(e.to_string()),
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}

impl From<StoreError> for kit::ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "cart storage unavailable");
                kit::ApiError::unavailable("the cart storage is not answering; try again shortly")
            }
            StoreError::Backend(m) => kit::ApiError::internal(m),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Cart storage. Implementations: [`crate::redis_store`] and [`crate::sql_store`]; both pass
/// the same contract tests (`tests/store_contract.rs`).
#[async_trait::async_trait]
pub trait CartStore: Send + Sync {
    /// The live lines of a cart, oldest first (empty when unknown or expired).
    async fn lines(&self, cart: &str) -> StoreResult<Vec<StoredLine>>;

    /// Adds `quantity` to the line of `product_id` (creating it with `snapshot` when new; an
    /// existing line keeps its snapshot), capped at `limits.max_quantity`; refreshes the cart's
    /// TTL to `ttl`. Atomic.
    async fn add(
        &self,
        cart: &str,
        product_id: Uuid,
        quantity: i64,
        snapshot: &LineSnapshot,
        limits: Limits,
        ttl: Duration,
    ) -> StoreResult<AddOutcome>;

    /// Sets the quantity of an existing line; false when the line does not exist. Refreshes
    /// the TTL.
    async fn set_quantity(
        &self,
        cart: &str,
        product_id: Uuid,
        quantity: i64,
        ttl: Duration,
    ) -> StoreResult<bool>;

    /// Removes a line; false when it did not exist. Refreshes the TTL of what remains.
    async fn remove(&self, cart: &str, product_id: Uuid, ttl: Duration) -> StoreResult<bool>;

    /// Removes every line of a cart.
    async fn clear(&self, cart: &str) -> StoreResult<()>;

    /// Moves the lines of `from` into `into` (quantities summed and capped; new lines beyond
    /// `limits.max_lines` dropped), then deletes `from`. Refreshes the TTL of `into`. Atomic.
    async fn merge(&self, from: &str, into: &str, limits: Limits, ttl: Duration)
        -> StoreResult<MergeOutcome>;

    /// Time left before the cart expires, `None` when it does not exist.
    async fn ttl(&self, cart: &str) -> StoreResult<Option<Duration>>;

    /// Deletes expired carts; returns how many rows/keys went. (Redis expires keys itself.)
    async fn purge_expired(&self) -> StoreResult<u64>;

    /// A round trip to the backend (readiness).
    async fn ping(&self) -> StoreResult<()>;
}
