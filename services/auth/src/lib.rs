//! `shop-auth`: the identity service of ShopPlatform.
//!
//! Accounts with argon2id passwords (a bounded pool), EdDSA (Ed25519) access tokens signed with
//! a key whose public half is published as a JWKS, opaque single-use refresh tokens rotated on
//! every use with reuse detection and an absolute session lifetime, revocation ("tokens valid
//! after" per user, served to every verifier), self-service (password change and reset, email
//! verification, signing out everywhere), progressive login delays per (account, address), and
//! admin user management. See `docs/auth.md`.
//!
//! The composer uses [`MIGRATIONS`], [`AuthConfig`], [`AuthState::new`],
//! [`AuthState::jwks_source`], [`router`], [`openapi`] and [`seed`].

mod api;
pub mod config;
pub mod keys;
pub mod mail;
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
    mut config: AuthConfig,
) -> anyhow::Result<kit::component::Component> {
    // The revocation feed is read with the platform's internal credential.
    if cx.embedded || config.internal_token.is_none() {
        config.internal_token = cx.internal_token.clone();
    }
    // Security emails go through the notification service (ADR 0016).
    let mailer: std::sync::Arc<dyn mail::Mailer> = match cx.client(kit::contract::ServiceName::Notification) {
        Ok(client) => std::sync::Arc::new(mail::NotificationMailer(client)),
        Err(e) => {
            tracing::warn!(error = %e, "security emails (reset, verification) cannot be sent");
            std::sync::Arc::new(mail::NoMailer)
        }
    };
    let state = AuthState::connect(cx.db()?, config, mailer).await?;
    let jwks = state.jwks_source();
    let revocations = state.revocations();
    let hour = std::time::Duration::from_secs(3600);
    // Expired refresh tokens can no longer be used (nor need reuse detection): delete them.
    let store = state.store().clone();
    let purge_refresh =
        kit::component::every("expired refresh tokens deleted", hour, cx.shutdown.clone(), move || {
            let store = store.clone();
            async move { store.delete_expired_refresh(time::OffsetDateTime::now_utc()).await }
        });
    // Reset and verification tokens: deleted a day after they expired (used ones expire too;
    // until then they count for the mail limit).
    let store = state.store().clone();
    let purge_tokens = kit::component::every(
        "spent reset and verification tokens deleted",
        hour,
        cx.shutdown.clone(),
        move || {
            let store = store.clone();
            async move {
                let now = store::epoch_ms(time::OffsetDateTime::now_utc());
                store.delete_spent_account_tokens(now, 24 * 3600 * 1000).await
            }
        },
    );
    Ok(kit::component::Component::new(router(state))
        .with_jwks(jwks)
        .with_revocations(revocations)
        .task(purge_refresh)
        .task(purge_tokens))
}
