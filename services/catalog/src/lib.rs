//! `shop-catalog`: the Product Service — products, categories and brands over PostgreSQL or
//! SQLite. See `docs/catalog.md`.
//!
//! The composer mounts [`router`] (only the `/api/v1/...` routes; it adds the common layers and
//! the token [`kit::auth::Verifier`] as an `Extension`), runs [`MIGRATIONS`], merges
//! [`openapi`] into the platform document and may call [`seed`].

pub mod api;
pub mod model;
pub mod seed;
pub mod store;

#[cfg(test)]
mod store_tests;

pub use api::{openapi, router};
pub use seed::{seed, SeedReport};
pub use store::Store;

/// The catalog's migrations for both backends.
pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("../../migrations/postgres/catalog"),
    sqlite: sqlx::migrate!("../../migrations/sqlite/catalog"),
};

/// Shared state of the catalog's handlers.
#[derive(Clone)]
pub struct CatalogState {
    pub store: Store,
}

impl CatalogState {
    pub fn new(db: kit::db::Db) -> Self {
        CatalogState { store: Store::new(db) }
    }
}

/// The catalog as the composer sees it (`kit::component`).
pub fn service() -> kit::component::Service {
    kit::component::Service::new(
        kit::contract::ServiceName::Catalog,
        Some(&MIGRATIONS),
        openapi,
        |cx| async move { Ok(kit::component::Component::new(router(CatalogState::new(cx.db()?)))) },
    )
}
