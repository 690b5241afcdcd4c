//! `shop-cart`: the Cart Service — guest and customer carts stored in Redis (production) or
//! SQL (embedded; PostgreSQL or SQLite), priced and checked against the catalog over its
//! public API. See `docs/cart.md`.
//!
//! [`service`] describes it to the composer (`kit::component`): a store ([`redis_store`] or
//! [`sql_store`] with its sweeper), the catalog through the kit's service client
//! ([`catalog_products`]), a [`CartState`] and [`router`].

pub mod api;
pub mod model;
pub mod products;
pub mod redis_store;
pub mod sql_store;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use api::{openapi, router};
pub use products::{
    catalog_policy, catalog_products, LookupError, ProductInfo, ProductLookup, ProductStatus,
};
pub use redis_store::RedisTarget;
pub use store::{AddOutcome, CartStore, Limits, LineSnapshot, MergeOutcome, StoreError, StoredLine};

/// The cart's migrations for both backends (SQL store only).
pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("../../migrations/postgres/cart"),
    sqlite: sqlx::migrate!("../../migrations/sqlite/cart"),
};

/// Configuration of the cart service (`SHOP_CART__<FIELD>`). Every field has a default.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CartConfig {
    /// Redis URL (`redis://…`, or `rediss://…` for TLS); when absent the SQL store is used.
    /// Env: `SHOP_CART__REDIS_URL`.
    #[serde(serialize_with = "ser_opt_secret")]
    pub redis_url: Option<SecretString>,
    /// CA certificates (PEM) that verify a `rediss://` server instead of the web PKI roots.
    /// Env: `SHOP_CART__REDIS_CA_FILE`.
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of every Redis key. Default `shop:cart:`.
    pub redis_prefix: String,
    /// Time to live of a signed-in user's cart, refreshed on every write. Default 7 days.
    pub user_ttl_secs: u64,
    /// Time to live of a guest cart, refreshed on every write. Default 2 days.
    pub guest_ttl_secs: u64,
    /// Highest quantity of one line. Default 99.
    pub max_quantity_per_line: i64,
    /// Most lines in one cart. Default 50.
    pub max_lines: usize,
    /// Interval of the SQL store's sweep of expired carts. Default 300 s.
    pub sweep_interval_secs: u64,
}

// Serialised in clear so a configuration round-trips; `Debug` stays `[REDACTED]`.
fn ser_opt_secret<S: serde::Serializer>(s: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.expose_secret()),
        None => ser.serialize_none(),
    }
}

impl Default for CartConfig {
    fn default() -> Self {
        CartConfig {
            redis_url: None,
            redis_ca_file: None,
            redis_prefix: "shop:cart:".into(),
            user_ttl_secs: 7 * 24 * 3600,
            guest_ttl_secs: 2 * 24 * 3600,
            max_quantity_per_line: 99,
            max_lines: 50,
            sweep_interval_secs: 300,
        }
    }
}

impl CartConfig {
    /// Checks the values; the error names the offending keys.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        if self.user_ttl_secs == 0 {
            errors.push("user_ttl_secs must be at least 1");
        }
        if self.guest_ttl_secs == 0 {
            errors.push("guest_ttl_secs must be at least 1");
        }
        if self.max_quantity_per_line < 1 {
            errors.push("max_quantity_per_line must be at least 1");
        }
        if self.max_lines < 1 {
            errors.push("max_lines must be at least 1");
        }
        if self.sweep_interval_secs == 0 {
            errors.push("sweep_interval_secs must be at least 1");
        }
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invalid cart configuration: {}", errors.join("; "))
        }
    }

    /// The cart's Redis, if any: `SHOP_CART__REDIS_URL`, else the shared `SHOP_REDIS_URL`
    /// (`shared_url`); the CA file likewise (`SHOP_CART__REDIS_CA_FILE`, else `SHOP_REDIS_CA_FILE`).
    pub fn redis_target(
        &self,
        shared_url: Option<&SecretString>,
        shared_ca: Option<&Path>,
    ) -> Option<RedisTarget> {
        let (url, url_key) = match (&self.redis_url, shared_url) {
            (Some(u), _) => (u.clone(), "SHOP_CART__REDIS_URL"),
            (None, Some(u)) => (u.clone(), "SHOP_REDIS_URL"),
            (None, None) => return None,
        };
        let (ca_file, ca_key) = match (&self.redis_ca_file, shared_ca) {
            (Some(f), _) => (Some(f.clone()), "SHOP_CART__REDIS_CA_FILE"),
            (None, Some(f)) => (Some(f.to_path_buf()), "SHOP_REDIS_CA_FILE"),
            (None, None) => (None, ""),
        };
        Some(RedisTarget { url, url_key: url_key.into(), ca_file, ca_key: ca_key.into() })
    }

    pub fn user_ttl(&self) -> Duration {
        Duration::from_secs(self.user_ttl_secs)
    }

    pub fn guest_ttl(&self) -> Duration {
        Duration::from_secs(self.guest_ttl_secs)
    }

    pub fn limits(&self) -> Limits {
        Limits { max_quantity: self.max_quantity_per_line, max_lines: self.max_lines }
    }
}

/// Shared state of the cart's handlers.
#[derive(Clone)]
pub struct CartState {
    pub store: Arc<dyn CartStore>,
    pub products: Arc<dyn ProductLookup>,
    pub config: Arc<CartConfig>,
}

impl CartState {
    /// Checks the configuration and bundles the parts.
    pub async fn new(
        store: Arc<dyn CartStore>,
        products: Arc<dyn ProductLookup>,
        config: CartConfig,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(CartState { store, products, config: Arc::new(config) })
    }

    /// A readiness check of the cart storage (`cart/storage`).
    pub fn readiness_check(&self) -> Arc<dyn kit::health::Check> {
        Arc::new(StoreCheck(self.store.clone()))
    }
}

struct StoreCheck(Arc<dyn CartStore>);

#[async_trait::async_trait]
impl kit::health::Check for StoreCheck {
    fn name(&self) -> &str {
        "storage"
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// The Redis store at `url` (`rediss://` verified against the web PKI roots); every key starts
/// with `prefix`.
pub async fn redis_store(url: &str, prefix: &str) -> anyhow::Result<Arc<dyn CartStore>> {
    Ok(Arc::new(redis_store::RedisStore::connect(url, prefix).await?))
}

/// The Redis store at `target` ([`CartConfig::redis_target`]); errors name its keys.
pub async fn redis_store_at(target: &RedisTarget, prefix: &str) -> anyhow::Result<Arc<dyn CartStore>> {
    Ok(Arc::new(redis_store::RedisStore::connect_to(target, prefix).await?))
}

/// The SQL store over a migrated cart database ([`MIGRATIONS`]).
pub fn sql_store(db: kit::db::Db) -> Arc<dyn CartStore> {
    Arc::new(sql_store::SqlStore::new(db))
}

/// Deletes expired carts every `interval` until `shutdown` is cancelled (the SQL store's
/// sweep; a no-op for Redis, which expires keys itself).
pub fn spawn_sweeper(
    store: Arc<dyn CartStore>,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    kit::component::every("expired carts swept", interval, shutdown, move || {
        let store = store.clone();
        async move { store.purge_expired().await }
    })
}

/// The cart as the composer sees it (`kit::component`): carts in Redis when `redis_url` (or the
/// platform's `shared_redis_url`) is set — no database is opened then —, in its SQL database
/// otherwise. `shared_redis_ca` is the platform's `SHOP_REDIS_CA_FILE`.
pub fn service(
    config: CartConfig,
    shared_redis_url: Option<SecretString>,
    shared_redis_ca: Option<PathBuf>,
) -> kit::component::Service {
    let target = config.redis_target(shared_redis_url.as_ref(), shared_redis_ca.as_deref());
    let redis = target.is_some();
    let service =
        kit::component::Service::new(kit::contract::ServiceName::Cart, Some(&MIGRATIONS), openapi, |cx| {
            component(cx, config, target)
        });
    if redis {
        service.without_db()
    } else {
        service
    }
}

async fn component(
    cx: kit::component::Context,
    config: CartConfig,
    redis: Option<RedisTarget>,
) -> anyhow::Result<kit::component::Component> {
    let store = match (&redis, cx.optional_db()) {
        (Some(target), _) => redis_store_at(target, &config.redis_prefix)
            .await
            .map_err(|e| e.context("connecting the cart to Redis"))?,
        (None, Some(db)) => sql_store(db),
        (None, None) => {
            anyhow::bail!("the cart needs SHOP_REDIS_URL (or SHOP_CART__REDIS_URL) or a database")
        }
    };
    let sweeper =
        spawn_sweeper(store.clone(), Duration::from_secs(config.sweep_interval_secs), cx.shutdown.clone());
    let products = catalog_products(cx.client_with(kit::contract::ServiceName::Catalog, catalog_policy())?);
    let state = CartState::new(store, products, config).await?;
    let check = state.readiness_check();
    Ok(kit::component::Component::new(router(state)).task(sweeper).check(check))
}
