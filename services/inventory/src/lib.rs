//! `shop-inventory`: the Inventory Service — stock per product, reservations per order with
//! expiry, an audit trail of every movement, low-stock alerts, over PostgreSQL or SQLite.
//! See `docs/inventory.md`.
//!
//! The composer mounts [`router`] (only the `/api/v1/...` routes; it adds the common layers and
//! the token [`kit::auth::Verifier`] as an `Extension`), runs [`MIGRATIONS`], merges
//! [`openapi`] into the platform document, registers [`handlers`] on the event bus, starts
//! [`spawn_sweeper`] and may call [`seed`].

pub mod api;
pub mod decide;
pub mod events;
pub mod model;
pub mod seed;
pub mod store;

#[cfg(test)]
mod store_tests;

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use api::{openapi, router};
pub use events::handlers;
pub use seed::{seed, SeedProduct, SeedReport};
pub use store::{Origin, ReserveOutcome, Store, StoreError, Transition};

/// The inventory's migrations for both backends.
pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("../../migrations/postgres/inventory"),
    sqlite: sqlx::migrate!("../../migrations/sqlite/inventory"),
};

/// Configuration of the inventory service.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct InventoryConfig {
    /// How long a reservation holds stock before the sweeper releases it (default 15 min).
    pub reservation_ttl_secs: u64,
    /// How often the sweeper looks for expired reservations (default 30 s).
    pub sweep_interval_secs: u64,
    /// The internal credential other services send as `x-internal-token` on the reservation
    /// endpoints. Unset: only admins may call them.
    #[serde(skip_serializing)]
    pub internal_token: Option<SecretString>,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig { reservation_ttl_secs: 15 * 60, sweep_interval_secs: 30, internal_token: None }
    }
}

/// Shared state of the inventory's handlers, event consumers and sweeper.
#[derive(Clone)]
pub struct InventoryState {
    pub store: Store,
    pub config: InventoryConfig,
}

impl InventoryState {
    pub fn new(db: kit::db::Db, config: InventoryConfig) -> Self {
        let store = Store::new(db, Duration::from_secs(config.reservation_ttl_secs));
        InventoryState { store, config }
    }
}

/// Starts the background task that expires reservations every `sweep_interval_secs`
/// (ACTIVE → EXPIRED, units back to available). It stops when `shutdown` is cancelled.
pub fn spawn_sweeper(state: InventoryState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(state.config.sweep_interval_secs.max(1));
    kit::component::every("reservations expired", every, shutdown, move || {
        let state = state.clone();
        async move { state.store.sweep_expired(kit::db::Timestamp::now()).await.map(|n| n as u64) }
    })
}

/// The inventory as the composer sees it (`kit::component`). It accepts the platform's internal
/// credential, unless it runs apart with an `internal_token` of its own.
pub fn service(config: InventoryConfig) -> kit::component::Service {
    kit::component::Service::new(kit::contract::ServiceName::Inventory, Some(&MIGRATIONS), openapi, |cx| {
        component(cx, config)
    })
}

async fn component(
    cx: kit::component::Context,
    mut config: InventoryConfig,
) -> anyhow::Result<kit::component::Component> {
    if cx.embedded || config.internal_token.is_none() {
        config.internal_token = cx.internal_token.clone();
    }
    let state = InventoryState::new(cx.db()?, config);
    let sweeper = spawn_sweeper(state.clone(), cx.shutdown.clone());
    Ok(kit::component::Component::new(router(state.clone()))
        .subscribe(handlers(state))
        .task(sweeper)
        .with_outbox())
}
