//! Composing the service crates into runnable apps: everything in one process, or one
//! service per process. The same service code runs in both.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::{Extension, Router};
use kit::auth::{HttpJwks, Verifier};
use kit::client::{ClientPolicy, ServiceClient};
use kit::contract::ServiceName;
use kit::db::{Db, Migrations, PoolSettings};
use kit::events::outbox::{Relay, RelayConfig};
use kit::events::{Consumers, EventBus};
use kit::health::Readiness;
use secrecy::SecretString;
use shop_gateway::Upstream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::{DbScope, Settings};

/// Migrations of a service that owns a database.
pub fn migrations(service: ServiceName) -> Option<&'static Migrations> {
    match service {
        ServiceName::Auth => Some(&shop_auth::MIGRATIONS),
        ServiceName::Catalog => Some(&shop_catalog::MIGRATIONS),
        ServiceName::Cart => Some(&shop_cart::MIGRATIONS),
        ServiceName::Inventory => Some(&shop_inventory::MIGRATIONS),
        ServiceName::Notification => Some(&shop_notification::MIGRATIONS),
        ServiceName::Order => Some(&shop_order::MIGRATIONS),
        ServiceName::Payment => Some(&shop_payment::MIGRATIONS),
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
    let pool = PoolSettings {
        max_connections: settings.db_max_connections,
        ca_file: settings.database_ca_file.clone(),
        ..Default::default()
    };
    let db = Db::connect(&url, &pool)
        .await
        .with_context(|| format!("{service} database ({})", settings.database_url_key(service, scope)))?;
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

/// A composed app and what runs beside it: outbox relays, event consumers, sweepers,
/// dispatchers. [`Running::stop`] shuts them down in order.
pub struct Running {
    pub app: Router,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    consumers: Option<Consumers>,
    dbs: Vec<Db>,
}

impl Running {
    /// Stops consumers (committing what they processed), background tasks, then the pools.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Some(c) = self.consumers {
            c.join().await;
        }
        for t in self.tasks {
            let _ = t.await;
        }
        for db in self.dbs {
            db.close().await;
        }
    }
}

/// Collects the pieces while composing.
struct Builder {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    dbs: Vec<Db>,
    readiness: Readiness,
}

impl Builder {
    fn new() -> Self {
        Builder {
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
            dbs: Vec::new(),
            readiness: Readiness::new(),
        }
    }

    fn db(&mut self, prefix: &str, db: &Db) {
        self.dbs.push(db.clone());
        self.readiness = std::mem::take(&mut self.readiness).with(prefix, Arc::new(db.clone()));
    }

    /// Relays a service's outbox to the bus.
    fn relay(&mut self, prefix: &str, db: &Db, bus: &Arc<dyn EventBus>) {
        let relay = Relay::new(db.clone(), bus.clone(), RelayConfig::default());
        self.readiness = std::mem::take(&mut self.readiness).with(prefix, Arc::new(relay.health()));
        self.tasks.push(relay.spawn(self.shutdown.clone()));
    }

    async fn finish(
        mut self,
        app: impl FnOnce(Readiness) -> Router,
        bus: Option<&Arc<dyn EventBus>>,
    ) -> anyhow::Result<Running> {
        // Consumers start only now, after every handler has been registered.
        let consumers = match bus {
            Some(bus) => {
                let c = bus.start(self.shutdown.clone()).await.context("starting event consumers")?;
                self.readiness = std::mem::take(&mut self.readiness).with("events", Arc::new(c.health()));
                Some(c)
            }
            None => None,
        };
        Ok(Running {
            app: app(self.readiness),
            shutdown: self.shutdown,
            tasks: self.tasks,
            consumers,
            dbs: self.dbs,
        })
    }
}

/// A token verifier expecting the issuer and audience the auth service is configured with
/// (`SHOP_AUTH__ISSUER`, `SHOP_AUTH__AUDIENCE`; every process reads the same keys).
fn verifier(settings: &Settings, keys: Arc<dyn kit::auth::JwksSource>) -> Verifier {
    Verifier::new(keys, settings.auth.issuer.clone(), settings.auth.audience.clone())
}

fn http_verifier(settings: &Settings) -> Verifier {
    let client = reqwest::Client::builder().build().expect("HTTP client");
    verifier(settings, Arc::new(HttpJwks { url: settings.jwks_url(), client }))
}

fn inventory_config(settings: &Settings) -> shop_inventory::InventoryConfig {
    let mut c = settings.inventory.clone();
    if c.internal_token.is_none() {
        c.internal_token = settings.internal_token.clone();
    }
    c
}

fn order_config(settings: &Settings) -> shop_order::OrderConfig {
    let mut c = settings.order.clone();
    if c.internal_token.is_none() {
        c.internal_token = settings.internal_token.clone();
    }
    c
}

/// In one process the services still present an internal credential to each other; without
/// a configured one, a random one for this process's lifetime.
fn embedded_internal_token(settings: &Settings) -> SecretString {
    settings.internal_token.clone().unwrap_or_else(|| {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        SecretString::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
    })
}

/// Clients of peer services: timeouts, retries of idempotent calls, circuit breakers.
fn peer_policy() -> ClientPolicy {
    ClientPolicy::default()
}

fn order_peers(
    catalog: ServiceClient,
    inventory: ServiceClient,
    cart: ServiceClient,
    internal_token: Option<SecretString>,
) -> shop_order::Peers {
    shop_order::Peers { catalog, inventory: inventory.with_internal_token(internal_token), cart }
}

async fn cart_store(settings: &Settings, db: Option<&Db>) -> anyhow::Result<Arc<dyn shop_cart::CartStore>> {
    let redis = settings.cart.redis_target(settings.redis_url.as_ref(), settings.redis_ca_file.as_deref());
    match (redis, db) {
        (Some(target), _) => shop_cart::redis_store_at(&target, &settings.cart.redis_prefix)
            .await
            .context("connecting the cart to Redis"),
        (None, Some(db)) => Ok(shop_cart::sql_store(db.clone())),
        (None, None) => anyhow::bail!("the cart needs SHOP_REDIS_URL or a database"),
    }
}

/// What `shop up` / `shop serve all` runs: every service behind the gateway in one process,
/// talking over the in-process event bus (or Kafka when `SHOP_EVENTS__BUS=kafka`).
/// Hands the build's revision and time (from `build.rs`) to `kit::info` for `GET /info`.
fn record_build() {
    let epoch = env!("SHOP_BUILD_EPOCH").parse::<i64>().unwrap_or(0);
    kit::info::set_build(env!("SHOP_GIT_REVISION"), epoch);
}

pub async fn embedded(settings: &Settings, seed: bool) -> anyhow::Result<Running> {
    record_build();
    kit::info::set_mode("embedded");
    let mut b = Builder::new();
    let auth_db = open_db(settings, ServiceName::Auth, DbScope::Shared).await?;
    let catalog_db = open_db(settings, ServiceName::Catalog, DbScope::Shared).await?;
    let cart_db = open_db(settings, ServiceName::Cart, DbScope::Shared).await?;
    let inventory_db = open_db(settings, ServiceName::Inventory, DbScope::Shared).await?;
    let notification_db = open_db(settings, ServiceName::Notification, DbScope::Shared).await?;
    let order_db = open_db(settings, ServiceName::Order, DbScope::Shared).await?;
    let payment_db = open_db(settings, ServiceName::Payment, DbScope::Shared).await?;
    for (name, db) in [
        ("auth", &auth_db),
        ("catalog", &catalog_db),
        ("cart", &cart_db),
        ("inventory", &inventory_db),
        ("order", &order_db),
        ("payment", &payment_db),
        ("notification", &notification_db),
    ] {
        b.db(name, db);
    }
    if seed {
        seed_all(settings, &auth_db, &catalog_db, &inventory_db).await?;
    }

    let auth = shop_auth::AuthState::new(auth_db, settings.auth.clone()).await?;
    let verifier = verifier(settings, auth.jwks_source());
    let bus = kit::events::connect(&settings.events).await.context("connecting the event bus")?;

    let catalog =
        shop_catalog::router(shop_catalog::CatalogState::new(catalog_db)).layer(Extension(verifier.clone()));

    // The cart asks the catalog through its router: never through the catalog's tables.
    let store = cart_store(settings, Some(&cart_db)).await?;
    b.tasks.push(shop_cart::spawn_sweeper(
        store.clone(),
        Duration::from_secs(settings.cart.sweep_interval_secs),
        b.shutdown.clone(),
    ));
    let cart =
        shop_cart::CartState::new(store, shop_cart::router_products(catalog.clone()), settings.cart.clone())
            .await?;
    b.readiness = std::mem::take(&mut b.readiness).with("cart", cart.readiness_check());

    let token = embedded_internal_token(settings);
    let mut inventory_cfg = inventory_config(settings);
    inventory_cfg.internal_token = Some(token.clone());
    let inventory = shop_inventory::InventoryState::new(inventory_db.clone(), inventory_cfg);
    shop_inventory::subscribe(&*bus, inventory.clone())?;
    b.tasks.push(shop_inventory::spawn_sweeper(inventory.clone(), b.shutdown.clone()));
    b.relay("inventory", &inventory_db, &bus);
    let inventory = shop_inventory::router(inventory).layer(Extension(verifier.clone()));
    let cart = shop_cart::router(cart).layer(Extension(verifier.clone()));

    // The order service calls the catalog, the inventory and the cart through their routers.
    let peers = order_peers(
        ServiceClient::router("catalog", catalog.clone(), peer_policy()),
        ServiceClient::router("inventory", inventory.clone(), peer_policy()),
        ServiceClient::router("cart", cart.clone(), peer_policy()),
        Some(token.clone()),
    );
    let mut order_cfg = order_config(settings);
    order_cfg.internal_token = Some(token.clone());
    let saga = shop_order::Saga::new(shop_order::Store::new(order_db.clone()), peers, order_cfg);
    shop_order::subscribe(&*bus, saga.clone())?;
    b.tasks.push(shop_order::spawn_worker(saga.clone(), b.shutdown.clone()));
    b.relay("order", &order_db, &bus);
    let order = shop_order::router(saga).layer(Extension(verifier.clone()));

    let payment = shop_payment::PaymentState::new(
        payment_db.clone(),
        settings.payment.clone(),
        shop_payment::router_orders(order.clone(), Some(token.clone())),
    )?;
    shop_payment::subscribe(&*bus, payment.clone())?;
    b.tasks.push(shop_payment::spawn_simulated_webhooks(payment.clone(), b.shutdown.clone()));
    b.tasks.push(shop_payment::spawn_sweeper(payment.clone(), b.shutdown.clone()));
    b.relay("payment", &payment_db, &bus);
    let payment = shop_payment::router(payment).layer(Extension(verifier.clone()));

    let notification =
        shop_notification::NotificationState::new(notification_db, settings.notification.clone()).await?;
    shop_notification::subscribe(&*bus, notification.clone())?;
    b.tasks.push(shop_notification::spawn_dispatcher(notification.clone(), b.shutdown.clone()));

    let upstreams = vec![
        (ServiceName::Auth, Upstream::Local(shop_auth::router(auth).layer(Extension(verifier.clone())))),
        (ServiceName::Catalog, Upstream::Local(catalog)),
        (ServiceName::Cart, Upstream::Local(cart)),
        (ServiceName::Inventory, Upstream::Local(inventory)),
        (ServiceName::Order, Upstream::Local(order)),
        (ServiceName::Payment, Upstream::Local(payment)),
        (
            ServiceName::Notification,
            Upstream::Local(shop_notification::router(notification).layer(Extension(verifier.clone()))),
        ),
    ];
    let gateway = settings.gateway.clone();
    b.finish(
        move |readiness| shop_gateway::app(&gateway, upstreams, openapi(), readiness, Some(verifier)),
        Some(&bus),
    )
    .await
}

/// The assembled OpenAPI document of every service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    shop_gateway::openapi::assemble([
        shop_auth::openapi(),
        shop_catalog::openapi(),
        shop_cart::openapi(),
        shop_inventory::openapi(),
        shop_order::openapi(),
        shop_payment::openapi(),
        shop_notification::openapi(),
        shop_gateway::aggregate::openapi(),
    ])
}

/// Seeds every service's data; idempotent.
pub async fn seed_all(
    settings: &Settings,
    auth_db: &Db,
    catalog_db: &Db,
    inventory_db: &Db,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let catalog = shop_catalog::seed(catalog_db).await.context("seeding the catalog")?;
    let stock = shop_inventory::seed(inventory_db).await.context("seeding stock")?;
    let auth = shop_auth::seed(auth_db, &settings.auth).await.context("seeding accounts")?;
    tracing::info!(
        ?catalog,
        ?stock,
        ?auth,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seed data in place"
    );
    Ok(())
}

/// One service running in its own process (`shop serve <service>`).
pub async fn single(settings: &Settings, service: ServiceName) -> anyhow::Result<Running> {
    record_build();
    let mut b = Builder::new();
    let name = service.as_str();
    let api_app = move |api: Router| move |readiness: Readiness| kit::http::service_app(name, api, readiness);
    match service {
        ServiceName::Auth => {
            let db = open_db(settings, service, DbScope::Single).await?;
            b.db("", &db);
            let state = shop_auth::AuthState::new(db, settings.auth.clone()).await?;
            let api =
                shop_auth::router(state.clone()).layer(Extension(verifier(settings, state.jwks_source())));
            b.finish(api_app(api), None).await
        }
        ServiceName::Catalog => {
            let db = open_db(settings, service, DbScope::Single).await?;
            b.db("", &db);
            let api = shop_catalog::router(shop_catalog::CatalogState::new(db))
                .layer(Extension(http_verifier(settings)));
            b.finish(api_app(api), None).await
        }
        ServiceName::Cart => {
            let redis = settings.cart.redis_url.is_some() || settings.redis_url.is_some();
            let db = if redis { None } else { Some(open_db(settings, service, DbScope::Single).await?) };
            if let Some(db) = &db {
                b.db("", db);
            }
            let store = cart_store(settings, db.as_ref()).await?;
            b.tasks.push(shop_cart::spawn_sweeper(
                store.clone(),
                Duration::from_secs(settings.cart.sweep_interval_secs),
                b.shutdown.clone(),
            ));
            let catalog = settings.cart.catalog_url.clone().unwrap_or_else(|| {
                settings.service_url(ServiceName::Catalog).as_str().trim_end_matches('/').to_string()
            });
            let state =
                shop_cart::CartState::new(store, shop_cart::http_products(&catalog), settings.cart.clone())
                    .await?;
            b.readiness = std::mem::take(&mut b.readiness).with("", state.readiness_check());
            let api = shop_cart::router(state).layer(Extension(http_verifier(settings)));
            b.finish(api_app(api), None).await
        }
        ServiceName::Inventory => {
            let db = open_db(settings, service, DbScope::Single).await?;
            b.db("", &db);
            let bus = kit::events::connect(&settings.events).await.context("connecting the event bus")?;
            let state = shop_inventory::InventoryState::new(db.clone(), inventory_config(settings));
            shop_inventory::subscribe(&*bus, state.clone())?;
            b.tasks.push(shop_inventory::spawn_sweeper(state.clone(), b.shutdown.clone()));
            b.relay("", &db, &bus);
            let api = shop_inventory::router(state).layer(Extension(http_verifier(settings)));
            b.finish(api_app(api), Some(&bus)).await
        }
        ServiceName::Order => {
            let db = open_db(settings, service, DbScope::Single).await?;
            b.db("", &db);
            let bus = kit::events::connect(&settings.events).await.context("connecting the event bus")?;
            let url = |s: ServiceName| settings.service_url(s).as_str().trim_end_matches('/').to_string();
            let peers = order_peers(
                ServiceClient::http("catalog", &url(ServiceName::Catalog), peer_policy()),
                ServiceClient::http("inventory", &url(ServiceName::Inventory), peer_policy()),
                ServiceClient::http("cart", &url(ServiceName::Cart), peer_policy()),
                settings.internal_token.clone(),
            );
            let saga =
                shop_order::Saga::new(shop_order::Store::new(db.clone()), peers, order_config(settings));
            shop_order::subscribe(&*bus, saga.clone())?;
            b.tasks.push(shop_order::spawn_worker(saga.clone(), b.shutdown.clone()));
            b.relay("", &db, &bus);
            let api = shop_order::router(saga).layer(Extension(http_verifier(settings)));
            b.finish(api_app(api), Some(&bus)).await
        }
        ServiceName::Payment => {
            let db = open_db(settings, service, DbScope::Single).await?;
            b.db("", &db);
            let bus = kit::events::connect(&settings.events).await.context("connecting the event bus")?;
            let orders = shop_payment::http_orders(
                settings.service_url(ServiceName::Order).as_str().trim_end_matches('/'),
                settings.internal_token.clone(),
            );
            let state = shop_payment::PaymentState::new(db.clone(), settings.payment.clone(), orders)?;
            shop_payment::subscribe(&*bus, state.clone())?;
            b.tasks.push(shop_payment::spawn_simulated_webhooks(state.clone(), b.shutdown.clone()));
            b.tasks.push(shop_payment::spawn_sweeper(state.clone(), b.shutdown.clone()));
            b.relay("", &db, &bus);
            let api = shop_payment::router(state).layer(Extension(http_verifier(settings)));
            b.finish(api_app(api), Some(&bus)).await
        }
        ServiceName::Notification => {
            let db = open_db(settings, service, DbScope::Single).await?;
            b.db("", &db);
            let bus = kit::events::connect(&settings.events).await.context("connecting the event bus")?;
            let state = shop_notification::NotificationState::new(db, settings.notification.clone()).await?;
            shop_notification::subscribe(&*bus, state.clone())?;
            b.tasks.push(shop_notification::spawn_dispatcher(state.clone(), b.shutdown.clone()));
            let api = shop_notification::router(state).layer(Extension(http_verifier(settings)));
            b.finish(api_app(api), Some(&bus)).await
        }
        ServiceName::Gateway => {
            let upstreams = ServiceName::ALL
                .into_iter()
                .filter(|s| *s != ServiceName::Gateway)
                .map(|s| (s, Upstream::Remote(settings.service_url(s))))
                .collect();
            let gateway = settings.gateway.clone();
            let verifier = http_verifier(settings);
            b.finish(move |r| shop_gateway::app(&gateway, upstreams, openapi(), r, Some(verifier)), None)
                .await
        }
    }
}
