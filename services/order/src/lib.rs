//! `shop-order`: the Order Service — checkout (from the cart or explicit items), the
//! orchestrated checkout saga with its status machine and history, cancellation with
//! compensation, fulfilment and tracking. See `docs/orders.md`.
//!
//! The composer runs [`MIGRATIONS`], builds a [`Saga`] with [`Peers`] (clients of the catalog,
//! the inventory and the cart, over HTTP or in-process), mounts [`router`] (only the
//! `/api/v1/...` routes; it adds the common layers and the token verifier as an `Extension`),
//! merges [`openapi`], registers [`handlers`] on the event bus, starts the outbox relay and
//! [`spawn_worker`].

pub mod api;
pub mod config;
pub mod events;
pub mod model;
pub mod saga;
pub mod store;

#[cfg(test)]
mod store_tests;

pub use api::{openapi, router};
pub use config::{OrderConfig, ShippingMethod, TaxConfig};
pub use events::{handlers, subscribe};
pub use saga::{spawn_worker, Peers, Saga};
pub use store::{Store, CONSUMER_GROUP};

/// The order service's migrations for both backends.
pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("../../migrations/postgres/order"),
    sqlite: sqlx::migrate!("../../migrations/sqlite/order"),
};
