//! Composing the service crates into runnable apps: everything in one process, or one
//! service per process. The same service code runs in both.

use std::sync::Arc;

use anyhow::Context;
use axum::{Extension, Router};
use kit::auth::{HttpJwks, Verifier};
use kit::contract::ServiceName;
use kit::db::{Db, Migrations, PoolSettings};
use kit::health::Readiness;
use shop_gateway::Upstream;

use crate::settings::{DbScope, Settings};

/// Migrations of a service that owns a database.
pub fn migrations(service: ServiceName) -> Option<&'static Migrations> {
    match service {
        ServiceName::Auth => Some(&shop_auth::MIGRATIONS),
        ServiceName::Catalog => Some(&shop_catalog::MIGRATIONS),
        ServiceName::Gateway => None,
    }
}

/// Opens (and, when configured, migrates) a service's database.
pub async fn open_db(settings: &Settings, service: ServiceName, scope: DbScope) -> anyhow::Result<Db> {
    let url = settings.database_url(service, scope);
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
        }
    }
    let pool = PoolSettings { max_connections: settings.db_max_connections, ..Default::default() };
    let db = Db::connect(&url, &pool).await.with_context(|| format!("{service} database"))?;
    tracing::info!(%service, url = %kit::config::redact_url(&url), "database connected");
    if settings.migrate_on_start {
        migrate(&db, service).await?;
    }
    Ok(db)
}

pub async fn migrate(db: &Db, service: ServiceName) -> anyhow::Result<()> {
    if let Some(m) = migrations(service) {
        db.migrate(m).await.with_context(|| format!("migrating the {service} database"))?;
    }
    Ok(())
}

/// What `shop up` / `shop serve all` runs: every service behind the gateway in one process.
pub struct Embedded {
    pub app: Router,
    pub auth_db: Db,
    pub catalog_db: Db,
}

pub async fn embedded(settings: &Settings, seed: bool) -> anyhow::Result<Embedded> {
    let auth_db = open_db(settings, ServiceName::Auth, DbScope::Shared).await?;
    let catalog_db = open_db(settings, ServiceName::Catalog, DbScope::Shared).await?;
    let auth = shop_auth::AuthState::new(auth_db.clone(), settings.auth.clone()).await?;
    let verifier = verifier(settings, auth.jwks_source());
    if seed {
        seed_all(&auth_db, &catalog_db, settings).await?;
    }
    let catalog = shop_catalog::CatalogState::new(catalog_db.clone());
    let readiness = Readiness::new()
        .with("auth", Arc::new(auth_db.clone()))
        .with("catalog", Arc::new(catalog_db.clone()));
    let upstreams = vec![
        (ServiceName::Auth, Upstream::Local(shop_auth::router(auth).layer(Extension(verifier.clone())))),
        (
            ServiceName::Catalog,
            Upstream::Local(shop_catalog::router(catalog).layer(Extension(verifier.clone()))),
        ),
    ];
    let app = shop_gateway::app(&settings.gateway, upstreams, openapi(), readiness, Some(verifier));
    Ok(Embedded { app, auth_db, catalog_db })
}

/// The assembled OpenAPI document of every service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    shop_gateway::openapi::assemble([shop_auth::openapi(), shop_catalog::openapi()])
}

/// Seeds every service's data; idempotent.
pub async fn seed_all(auth_db: &Db, catalog_db: &Db, settings: &Settings) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let catalog = shop_catalog::seed(catalog_db).await.context("seeding the catalog")?;
    let auth = shop_auth::seed(auth_db, &settings.auth).await.context("seeding accounts")?;
    tracing::info!(?catalog, ?auth, elapsed_ms = started.elapsed().as_millis() as u64, "seed data in place");
    Ok(())
}

/// The app of one service running in its own process (`shop serve <service>`).
pub async fn single(settings: &Settings, service: ServiceName) -> anyhow::Result<Router> {
    let http_jwks =
        || verifier(settings, Arc::new(HttpJwks { url: settings.jwks_url(), client: reqwest_client() }));
    Ok(match service {
        ServiceName::Auth => {
            let db = open_db(settings, service, DbScope::Single).await?;
            let state = shop_auth::AuthState::new(db.clone(), settings.auth.clone()).await?;
            let verifier = verifier(settings, state.jwks_source());
            let api = shop_auth::router(state).layer(Extension(verifier));
            kit::http::service_app("auth", api, Readiness::new().with("", Arc::new(db)))
        }
        ServiceName::Catalog => {
            let db = open_db(settings, service, DbScope::Single).await?;
            let api = shop_catalog::router(shop_catalog::CatalogState::new(db.clone()))
                .layer(Extension(http_jwks()));
            kit::http::service_app("catalog", api, Readiness::new().with("", Arc::new(db)))
        }
        ServiceName::Gateway => {
            let upstreams = [ServiceName::Auth, ServiceName::Catalog]
                .into_iter()
                .map(|s| (s, Upstream::Remote(settings.service_url(s))))
                .collect();
            shop_gateway::app(&settings.gateway, upstreams, openapi(), Readiness::new(), Some(http_jwks()))
        }
    })
}

/// A token verifier expecting the issuer and audience the auth service is configured with
/// (`SHOP_AUTH__ISSUER`, `SHOP_AUTH__AUDIENCE`; every process reads the same keys).
fn verifier(settings: &Settings, keys: Arc<dyn kit::auth::JwksSource>) -> Verifier {
    Verifier::new(keys, settings.auth.issuer.clone(), settings.auth.audience.clone())
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("HTTP client")
}
