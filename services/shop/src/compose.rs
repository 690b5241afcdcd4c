//! Composing the services into runnable apps: everything in one process, or one service per
//! process. Each service crate describes itself once (`service(config) -> kit::component::Service`);
//! this module iterates over [`services`] in both modes. Adding a service = its crate and one
//! line in [`service`].

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use axum::{Extension, Router};
use kit::auth::{HttpJwks, HttpRevocations, JwksSource, Revocations, Verifier};
use kit::component::{Component, Context, Peer, Service};
use kit::contract::ServiceName;
use kit::db::{Db, Migrations, PoolSettings};
use kit::events::outbox::{Relay, RelayConfig};
use kit::events::{Consumers, EventBus};
use kit::health::Readiness;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::{DbScope, Settings};

/// The service `name`, configured from `settings`: the one table of the platform's services.
pub fn service(name: ServiceName, settings: &Settings) -> Service {
    match name {
        ServiceName::Auth => shop_auth::service(auth_config(settings)),
        ServiceName::Catalog => shop_catalog::service(),
        ServiceName::Cart => shop_cart::service(
            settings.cart.clone(),
            settings.redis_url.clone(),
            settings.redis_ca_file.clone(),
        ),
        ServiceName::Inventory => shop_inventory::service(settings.inventory.clone()),
        ServiceName::Order => shop_order::service(settings.order.clone()),
        ServiceName::Payment => shop_payment::service(settings.payment.clone()),
        ServiceName::Notification => shop_notification::service(settings.notification.clone()),
        ServiceName::Gateway => shop_gateway::service(gateway_config(settings)),
    }
}

/// Every service, in start-up order (the contract's order: the auth service first, whose keys
/// the others verify tokens with; the gateway last, which routes to all of them).
pub fn services(settings: &Settings) -> Vec<Service> {
    ServiceName::ALL.into_iter().map(|name| service(name, settings)).collect()
}

/// The auth service shares its login failure counters through the platform's Redis
/// (`SHOP_REDIS_URL`, verified with `SHOP_REDIS_CA_FILE`) unless `SHOP_AUTH__REDIS_URL` names
/// another.
fn auth_config(settings: &Settings) -> shop_auth::AuthConfig {
    let mut config = settings.auth.clone();
    if config.redis_url.is_none() {
        config.redis_url = settings.redis_url.clone();
        config.redis_ca_file = config.redis_ca_file.or_else(|| settings.redis_ca_file.clone());
    }
    config
}

/// The gateway shares its rate limits through the platform's Redis (`SHOP_REDIS_URL`) unless
/// `SHOP_GATEWAY__RATE_LIMIT__REDIS_URL` names another. Running apart on Kafka, it reads the
/// bus (read-only) for the console's event browser.
fn gateway_config(settings: &Settings) -> shop_gateway::GatewayConfig {
    let mut config = settings.gateway.clone();
    if config.rate_limit.redis_url.is_none() {
        config.rate_limit.redis_url = settings.redis_url.clone();
        config.rate_limit.redis_ca_file =
            config.rate_limit.redis_ca_file.take().or_else(|| settings.redis_ca_file.clone());
    }
    if settings.events.bus == kit::events::BusKind::Kafka {
        config.events = Some(settings.events.clone());
    }
    config
}

/// Migrations of a service that owns a database.
pub fn migrations(name: ServiceName) -> Option<&'static Migrations> {
    service(name, &Settings::default()).migrations
}

/// The assembled OpenAPI document of every service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let defaults = Settings::default();
    shop_gateway::openapi::assemble(services(&defaults).iter().map(|s| (s.openapi)()))
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

/// How one service was wired: what the composer registered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    pub service: ServiceName,
    /// `(consumer group, topics)` of each subscription it registered on the bus.
    pub subscriptions: Vec<(String, Vec<String>)>,
    /// Whether its outbox is relayed to the bus.
    pub outbox: bool,
}

/// A composed app and what runs beside it: outbox relays, event consumers, sweepers,
/// dispatchers. [`Running::stop`] shuts them down in order.
pub struct Running {
    /// Every route on one listener (`shop up`, tests).
    pub app: Router,
    /// The API alone and the operations endpoints alone, for two listeners (`SHOP_OPS_ADDR`).
    pub apps: kit::http::Apps,
    /// The readiness the process reports (drained at shutdown).
    pub readiness: Readiness,
    /// What each composed service registered (logged at start; checked against the contract).
    pub wiring: Vec<Wiring>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    consumers: Vec<Consumers>,
    dbs: Vec<Db>,
}

impl Running {
    /// Stops consumers (committing what they processed), background tasks, then the pools.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for c in self.consumers {
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

/// What the composer collects from the components it mounts.
struct Mounted {
    wiring: Vec<Wiring>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    dbs: Vec<Db>,
    readiness: Readiness,
}

impl Mounted {
    fn new() -> Mounted {
        Mounted {
            wiring: Vec::new(),
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
            dbs: Vec::new(),
            readiness: Readiness::new(),
        }
    }

    /// Registers a built component: its subscriptions on the bus (before it starts), its tasks,
    /// its database, the relay of its outbox and its readiness checks under `prefix`.
    fn mount(
        &mut self,
        name: ServiceName,
        prefix: &str,
        component: &mut Component,
        db: Option<&Db>,
        bus: Option<&Arc<dyn EventBus>>,
    ) -> anyhow::Result<()> {
        let wiring = Wiring {
            service: name,
            subscriptions: component
                .subscriptions
                .iter()
                .map(|s| (s.group.clone(), s.topics.clone()))
                .collect(),
            outbox: component.outbox,
        };
        tracing::debug!(?wiring, "service composed");
        self.wiring.push(wiring);
        if let Some(db) = db {
            self.dbs.push(db.clone());
            self.readiness = std::mem::take(&mut self.readiness).with(prefix, Arc::new(db.clone()));
        }
        if !component.subscriptions.is_empty() || component.outbox {
            let bus = bus.ok_or_else(|| anyhow::anyhow!("the {name} service needs an event bus"))?;
            kit::events::register(&**bus, component.subscriptions.drain(..).collect())
                .with_context(|| format!("subscribing {name}"))?;
            if component.outbox {
                let db =
                    db.ok_or_else(|| anyhow::anyhow!("the {name} service has an outbox but no database"))?;
                let relay =
                    Relay::new(db.clone(), bus.clone(), RelayConfig::default()).for_service(name.as_str());
                self.readiness = std::mem::take(&mut self.readiness).with(prefix, Arc::new(relay.health()));
                self.tasks.push(relay.spawn(self.shutdown.clone()));
            }
        }
        self.tasks.append(&mut component.tasks);
        for check in component.checks.drain(..) {
            self.readiness = std::mem::take(&mut self.readiness).with(prefix, check);
        }
        for check in component.informational.drain(..) {
            self.readiness = std::mem::take(&mut self.readiness).with_informational(prefix, check);
        }
        Ok(())
    }

    /// Keeps `revocations` up to date (a pull every `SHOP_AUTH__REVOCATION_POLL_MS`) and reports
    /// the feed in readiness (informational: an auth outage must not take every service down).
    fn follow_revocations(&mut self, settings: &Settings, revocations: &Arc<Revocations>) {
        let interval = std::time::Duration::from_millis(settings.auth.revocation_poll_ms.max(50));
        self.tasks.push(revocations.spawn(interval, self.shutdown.clone()));
        let check = revocations.health((interval * 10).max(std::time::Duration::from_secs(30)));
        self.readiness = std::mem::take(&mut self.readiness).with_informational("", check);
    }

    /// Starts the bus's consumers — only now, after every handler has been registered — and
    /// returns the running app.
    async fn finish(
        mut self,
        name: ServiceName,
        api: Router,
        bus: Option<&Arc<dyn EventBus>>,
    ) -> anyhow::Result<Running> {
        let mut consumers = Vec::new();
        if let Some(bus) = bus {
            let c = bus.start(self.shutdown.clone()).await.context("starting event consumers")?;
            self.readiness = std::mem::take(&mut self.readiness).with("events", Arc::new(c.health()));
            consumers.push(c);
        }
        let apps = kit::http::service_apps(name.as_str(), api, self.readiness.clone());
        Ok(Running {
            app: apps.combined.clone(),
            apps,
            readiness: self.readiness,
            wiring: self.wiring,
            shutdown: self.shutdown,
            tasks: self.tasks,
            consumers,
            dbs: self.dbs,
        })
    }
}

/// A token verifier expecting the issuer and audience the auth service is configured with
/// (`SHOP_AUTH__ISSUER`, `SHOP_AUTH__AUDIENCE`; every process reads the same keys).
fn verifier(settings: &Settings, keys: Arc<dyn JwksSource>) -> Verifier {
    Verifier::new(keys, settings.auth.issuer.clone(), settings.auth.audience.clone())
}

/// A verifier of a service that runs apart: the keys from the JWKS, the revocations from the
/// auth service's feed next to it (`/internal/v1/revocations`, with the internal credential),
/// pulled every `SHOP_AUTH__REVOCATION_POLL_MS` by a task of `m`, whose readiness reports the
/// feed (informational).
fn http_verifier(settings: &Settings, m: &mut Mounted) -> Verifier {
    let client = reqwest::Client::builder().build().expect("HTTP client");
    let mut feed =
        url::Url::parse(&settings.jwks_url()).unwrap_or_else(|_| settings.service_url(ServiceName::Auth));
    feed.set_path(kit::auth::REVOCATIONS_PATH);
    feed.set_query(None);
    let revocations = Revocations::new(Arc::new(HttpRevocations {
        url: feed.to_string(),
        client: client.clone(),
        internal_token: settings.internal_token.clone(),
    }));
    m.follow_revocations(settings, &revocations);
    verifier(settings, Arc::new(HttpJwks { url: settings.jwks_url(), client })).with_revocations(revocations)
}

/// A router that hands requests to a peer built later (in one process the auth service, built
/// first, mails through the notification service, built after it); 503 until then.
fn deferred(cell: Arc<std::sync::OnceLock<Router>>, peer: ServiceName) -> Router {
    use axum::response::IntoResponse;
    use tower::ServiceExt;
    Router::new().fallback(move |req: axum::extract::Request| {
        let cell = cell.clone();
        async move {
            match cell.get() {
                Some(router) => router.clone().oneshot(req).await.into_response(),
                None => kit::problem::ApiError::unavailable(format!("the {peer} service is not started yet"))
                    .into_response(),
            }
        }
    })
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

/// Hands the build's revision and time (from `build.rs`) to `kit::info` for `GET /info`.
fn record_build() {
    let epoch = env!("SHOP_BUILD_EPOCH").parse::<i64>().unwrap_or(0);
    kit::info::set_build(env!("SHOP_GIT_REVISION"), epoch);
}

/// What `shop up` / `shop serve all` runs: every service behind the gateway in one process,
/// talking over the in-process event bus (or Kafka when `SHOP_EVENTS__BUS=kafka`). Each service
/// reaches its peers through their routers, never through their tables. `seed` loads the sample
/// catalog and the demo accounts (`shop up`).
pub async fn embedded(settings: &Settings, seed: bool) -> anyhow::Result<Running> {
    record_build();
    kit::info::set_mode("embedded");
    let mut m = Mounted::new();
    let services = services(settings);
    let mut dbs = BTreeMap::new();
    for s in services.iter().filter(|s| s.needs_db) {
        dbs.insert(s.name, open_db(settings, s.name, DbScope::Shared).await?);
    }
    if seed {
        let db = |name| dbs.get(&name).ok_or_else(|| anyhow::anyhow!("no {name} database to seed"));
        crate::seed::all(
            settings,
            db(ServiceName::Auth)?,
            db(ServiceName::Catalog)?,
            db(ServiceName::Inventory)?,
            true,
        )
        .await?;
    }
    let bus = kit::events::connect(&settings.events).await.context("connecting the event bus")?;
    let token = embedded_internal_token(settings);
    let mut peers: BTreeMap<ServiceName, Router> = BTreeMap::new();
    let later: BTreeMap<ServiceName, Arc<std::sync::OnceLock<Router>>> =
        ServiceName::ALL.into_iter().map(|n| (n, Arc::default())).collect();
    let mut verifier_in_use: Option<Verifier> = None;
    let mut gateway = None;
    for service in services {
        let name = service.name;
        let db = dbs.remove(&name);
        let mut cx =
            Context::new(name, true, m.shutdown.clone()).with_db(db.clone()).with_bus(Some(bus.clone()));
        cx.internal_token = Some(token.clone());
        cx.verifier = verifier_in_use.clone();
        for peer in name.peers() {
            let router = match peers.get(peer) {
                Some(router) => router.clone(),
                None => deferred(later[peer].clone(), *peer),
            };
            cx = cx.with_peer(*peer, Peer::Local(router));
        }
        if name == ServiceName::Gateway {
            cx.openapi = Some(openapi());
        }
        let mut component =
            (service.build)(cx).await.with_context(|| format!("starting the {name} service"))?;
        if let Some(keys) = component.jwks.clone() {
            let mut v = verifier(settings, keys);
            // The auth service writes revocations into this cache as it makes them, and pulls
            // its database for those of other replicas and of before a restart.
            if let Some(revocations) = component.revocations.clone() {
                m.follow_revocations(settings, &revocations);
                v = v.with_revocations(revocations);
            }
            verifier_in_use = Some(v);
        }
        let verifier =
            verifier_in_use.clone().ok_or_else(|| anyhow::anyhow!("no service issues access tokens"))?;
        m.mount(name, name.as_str(), &mut component, db.as_ref(), Some(&bus))?;
        let router = component.router.layer(Extension(verifier));
        if name == ServiceName::Gateway {
            gateway = Some(router);
        } else {
            let _ = later[&name].set(router.clone());
            peers.insert(name, router);
        }
    }
    let gateway = gateway.ok_or_else(|| anyhow::anyhow!("no gateway"))?;
    m.finish(ServiceName::Gateway, gateway, Some(&bus)).await
}

/// One service running in its own process (`shop serve <service>`): its peers are reached at
/// their URLs (`SHOP_<PEER>_URL`), tokens are verified against the auth service's JWKS.
pub async fn single(settings: &Settings, name: ServiceName) -> anyhow::Result<Running> {
    record_build();
    let mut m = Mounted::new();
    let service = service(name, settings);
    let db = if service.needs_db { Some(open_db(settings, name, DbScope::Single).await?) } else { None };
    let needs_bus = !name.subscriptions().is_empty() || !name.publishes().is_empty();
    let bus = if needs_bus {
        Some(kit::events::connect(&settings.events).await.context("connecting the event bus")?)
    } else {
        None
    };
    let mut cx = Context::new(name, false, m.shutdown.clone()).with_db(db.clone()).with_bus(bus.clone());
    cx.internal_token = settings.internal_token.clone();
    let remote_verifier = (name != ServiceName::Auth).then(|| http_verifier(settings, &mut m));
    cx.verifier = remote_verifier.clone();
    for peer in name.peers() {
        cx = cx.with_peer(*peer, Peer::Remote(settings.service_url(*peer)));
    }
    if name == ServiceName::Gateway {
        cx.openapi = Some(openapi());
    }
    let mut component = (service.build)(cx).await.with_context(|| format!("starting the {name} service"))?;
    let verifier = match (component.jwks.clone(), remote_verifier) {
        (Some(keys), _) => {
            let mut v = verifier(settings, keys);
            if let Some(revocations) = component.revocations.clone() {
                m.follow_revocations(settings, &revocations);
                v = v.with_revocations(revocations);
            }
            v
        }
        (None, Some(v)) => v,
        (None, None) => http_verifier(settings, &mut m),
    };
    m.mount(name, "", &mut component, db.as_ref(), bus.as_ref())?;
    let api = component.router.layer(Extension(verifier));
    m.finish(name, api, bus.as_ref()).await
}
