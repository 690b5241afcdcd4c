//! `shop-auth`: the identity service of ShopPlatform.
//!
//! Accounts with argon2id passwords, EdDSA (Ed25519) access tokens signed with a key whose
//! public half is published as a JWKS, opaque single-use refresh tokens rotated on every use
//! with reuse detection, per-IP and per-account login throttling, and admin user management.
//! See `docs/auth.md`.
//!
//! The composer uses [`MIGRATIONS`], [`AuthConfig`], [`AuthState::new`],
//! [`AuthState::jwks_source`], [`router`], [`openapi`] and [`seed`].

mod api;
pub mod config;
pub mod keys;
pub mod password;
mod seed;
pub mod service;
pub mod store;
pub mod throttle;

pub use api::{openapi, router, TokenResponse, User};
pub use config::AuthConfig;
pub use seed::{seed, SeedReport};
pub use service::AuthState;

/// Migrations of the auth database, for both backends.
pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("../../migrations/postgres/auth"),
    sqlite: sqlx::migrate!("../../migrations/sqlite/auth"),
};

/// The auth service as the composer sees it (`kit::component`).
pub fn service(config: AuthConfig) -> kit::component::Service {
    kit::component::Service::new(kit::contract::ServiceName::Auth, Some(&MIGRATIONS), openapi, |cx| {
        component(cx, config)
    })
}

async fn component(
    cx: kit::component::Context,
    config: AuthConfig,
) -> anyhow::Result<kit::component::Component> {
    let state = AuthState::new(cx.db()?, config).await?;
    let jwks = state.jwks_source();
    // Expired refresh tokens can no longer be used (nor need reuse detection): delete them.
    let store = state.store().clone();
    let purge = kit::component::every(
        "expired refresh tokens deleted",
        std::time::Duration::from_secs(3600),
        cx.shutdown.clone(),
        move || {
            let store = store.clone();
            async move { store.delete_expired_refresh(time::OffsetDateTime::now_utc()).await }
        },
    );
    Ok(kit::component::Component::new(router(state)).with_jwks(jwks).task(purge))
}
