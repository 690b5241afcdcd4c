//! `shop-order`: the Order Service — checkout (from the cart or explicit items), the
//! orchestrated checkout saga with its status machine and history, cancellation with
//! compensation, fulfilment and tracking. See `docs/orders.md`.
//!
//! [`service`] describes it to the composer (`kit::component`): a [`Saga`] with [`Peers`]
//! (clients of the catalog, the inventory and the cart, over HTTP or in-process), [`router`],
//! the event [`handlers`], the outbox and the saga worker ([`spawn_worker`]).

pub mod api;
pub mod config;
pub mod decide;
pub mod events;
pub mod metrics;
pub mod model;
pub mod saga;
pub mod store;

#[cfg(test)]
mod store_tests;

pub use api::{openapi, router};
pub use config::{OrderConfig, ShippingMethod, TaxConfig};
pub use events::handlers;
pub use saga::{spawn_worker, Peers, Saga};
pub use store::{Store, CONSUMER_GROUP};

/// The order service's migrations for both backends.
pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("../../migrations/postgres/order"),
    sqlite: sqlx::migrate!("../../migrations/sqlite/order"),
};

/// The order service as the composer sees it (`kit::component`). It accepts the platform's
/// internal credential, unless it runs apart with an `internal_token` of its own.
pub fn service(config: OrderConfig) -> kit::component::Service {
    kit::component::Service::new(kit::contract::ServiceName::Order, Some(&MIGRATIONS), openapi, |cx| {
        component(cx, config)
    })
}

async fn component(
    cx: kit::component::Context,
    mut config: OrderConfig,
) -> anyhow::Result<kit::component::Component> {
    use kit::contract::ServiceName;
    if cx.embedded || config.internal_token.is_none() {
        config.internal_token = cx.internal_token.clone();
    }
    let peers = Peers {
        catalog: cx.client(ServiceName::Catalog)?,
        inventory: cx.client(ServiceName::Inventory)?,
        cart: cx.client(ServiceName::Cart)?,
    };
    let db = cx.db()?;
    let store = Store::new(db.clone()).with_unpaid_limits(config.unpaid_limits());
    let saga = Saga::new(store, peers, config);
    let worker = spawn_worker(saga.clone(), cx.shutdown.clone());
    // Idempotency keys are forgotten after their retention (the order row keeps its own key).
    let keys = kit::idempotency::spawn_purge(db, cx.shutdown.clone());
    Ok(kit::component::Component::new(router(saga.clone()))
        .subscribe(handlers(saga))
        .task(worker)
        .task(keys)
        .with_outbox())
}
