//! One description per service.
//!
//! Every service crate exports a `service(config) -> `[`Service`] function: its name, its
//! migrations, its OpenAPI document and how to build it. Building turns a [`Context`] — the
//! service's database, the event bus, clients of the peers it calls, the internal credential —
//! into a [`Component`]: its router, its event subscriptions, its background tasks, its
//! readiness checks and whether its outbox is relayed. The `shop` binary composes the list of
//! services in one process (`shop up`, `serve all`) or one per process (`serve <service>`); the
//! service's code is the same in both, and only the composer knows which mode it is in.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{JwksSource, Revocations, Verifier};
use crate::client::{ClientPolicy, ServiceClient};
use crate::contract::ServiceName;
use crate::db::{Db, Migrations};
use crate::events::{EventBus, Subscription};
use crate::health::Check;

/// A service's build step: turns a [`Context`] into a [`Component`].
pub type Build =
    Box<dyn FnOnce(Context) -> Pin<Box<dyn Future<Output = anyhow::Result<Component>> + Send>> + Send>;

/// What the composer knows of a service.
pub struct Service {
    pub name: ServiceName,
    /// Its migrations, when it owns a database.
    pub migrations: Option<&'static Migrations>,
    /// Its OpenAPI document (assembled by the gateway).
    pub openapi: fn() -> utoipa::openapi::OpenApi,
    /// Whether the composer opens (and may migrate) its database before building it. True for
    /// every service with migrations unless it said otherwise ([`Service::without_db`]).
    pub needs_db: bool,
    /// How to build it.
    pub build: Build,
}

impl Service {
    /// A service built by `build` (usually `|cx| component(cx, config)`).
    pub fn new<F, Fut>(
        name: ServiceName,
        migrations: Option<&'static Migrations>,
        openapi: fn() -> utoipa::openapi::OpenApi,
        build: F,
    ) -> Service
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Component>> + Send + 'static,
    {
        Service {
            name,
            migrations,
            openapi,
            needs_db: migrations.is_some(),
            build: Box::new(move |cx| Box::pin(build(cx))),
        }
    }

    /// This run of the service keeps its data elsewhere (the cart on Redis): no database is
    /// opened for it, though `shop migrate` still knows its migrations.
    pub fn without_db(mut self) -> Service {
        self.needs_db = false;
        self
    }
}

/// How a service reaches a peer it calls.
#[derive(Clone)]
pub enum Peer {
    /// The peer's router in this process.
    Local(Router),
    /// The peer's base URL (`http://catalog:8080`).
    Remote(url::Url),
}

/// What a service is given to build itself.
pub struct Context {
    pub service: ServiceName,
    /// Everything runs in one process (`shop up`, `serve all`).
    pub embedded: bool,
    /// The credential services present to each other (`x-internal-token`).
    pub internal_token: Option<SecretString>,
    /// Cancelled when the process stops; background tasks end with it.
    pub shutdown: CancellationToken,
    /// The token verifier (given to the gateway; the composer adds it to every service's
    /// router as an `Extension`).
    pub verifier: Option<Verifier>,
    /// The assembled OpenAPI document (given to the gateway).
    pub openapi: Option<utoipa::openapi::OpenApi>,
    db: Option<Db>,
    bus: Option<Arc<dyn EventBus>>,
    peers: BTreeMap<ServiceName, Peer>,
}

impl Context {
    pub fn new(service: ServiceName, embedded: bool, shutdown: CancellationToken) -> Context {
        Context {
            service,
            embedded,
            internal_token: None,
            shutdown,
            verifier: None,
            openapi: None,
            db: None,
            bus: None,
            peers: BTreeMap::new(),
        }
    }

    pub fn with_db(mut self, db: Option<Db>) -> Context {
        self.db = db;
        self
    }

    pub fn with_bus(mut self, bus: Option<Arc<dyn EventBus>>) -> Context {
        self.bus = bus;
        self
    }

    pub fn with_peer(mut self, service: ServiceName, peer: Peer) -> Context {
        self.peers.insert(service, peer);
        self
    }

    /// The service's database (the composer opens and migrates it).
    pub fn db(&self) -> anyhow::Result<Db> {
        self.db.clone().ok_or_else(|| anyhow::anyhow!("the {} service has no database", self.service))
    }

    /// The database, when the composer opened one (the cart needs none with Redis).
    pub fn optional_db(&self) -> Option<Db> {
        self.db.clone()
    }

    /// The event bus.
    pub fn bus(&self) -> anyhow::Result<Arc<dyn EventBus>> {
        self.bus.clone().ok_or_else(|| anyhow::anyhow!("the {} service has no event bus", self.service))
    }

    /// How `peer` is reached (one of the peers of the contract's `ServiceName::peers`).
    pub fn peer(&self, peer: ServiceName) -> anyhow::Result<Peer> {
        self.peers.get(&peer).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "the {} service calls {peer}, but no address of {peer} is configured",
                self.service
            )
        })
    }

    /// A client of `peer` (timeouts, retries of idempotent calls, a circuit breaker), presenting
    /// the internal credential.
    pub fn client(&self, peer: ServiceName) -> anyhow::Result<ServiceClient> {
        self.client_with(peer, ClientPolicy::default())
    }

    /// [`Context::client`] with its own timeouts and retries.
    pub fn client_with(&self, peer: ServiceName, policy: ClientPolicy) -> anyhow::Result<ServiceClient> {
        let client = match self.peer(peer)? {
            Peer::Local(router) => ServiceClient::router(peer.as_str(), router, policy),
            Peer::Remote(url) => {
                ServiceClient::http(peer.as_str(), url.as_str().trim_end_matches('/'), policy)
            }
        };
        Ok(client.with_internal_token(self.internal_token.clone()))
    }
}

/// A built service: what the composer mounts, registers and starts.
pub struct Component {
    /// The service's API routes (the composer adds health, metrics, info and common layers).
    pub router: Router,
    /// Event subscriptions, registered before the bus starts consuming.
    pub subscriptions: Vec<Subscription>,
    /// Background tasks already spawned; they end when the context's `shutdown` is cancelled.
    pub tasks: Vec<JoinHandle<()>>,
    /// Readiness checks besides the database and the outbox relay (which the composer adds).
    pub checks: Vec<Arc<dyn Check>>,
    /// Checks reported on `/readyz` whose failure leaves the service ready (the gateway's view of
    /// its upstreams: one service down must not take the whole API out of rotation).
    pub informational: Vec<Arc<dyn Check>>,
    /// Whether the service writes events to an outbox in its database (the composer relays it).
    pub outbox: bool,
    /// The public keys of access tokens, when this service issues them (the auth service).
    pub jwks: Option<Arc<dyn JwksSource>>,
    /// The revocation cache the service writes as it revokes tokens (the auth service): in one
    /// process every verifier reads this one, so a revocation takes effect at once.
    pub revocations: Option<Arc<Revocations>>,
}

impl Component {
    pub fn new(router: Router) -> Component {
        Component {
            router,
            subscriptions: Vec::new(),
            tasks: Vec::new(),
            checks: Vec::new(),
            informational: Vec::new(),
            outbox: false,
            jwks: None,
            revocations: None,
        }
    }

    pub fn subscribe(mut self, subscriptions: Vec<Subscription>) -> Component {
        self.subscriptions.extend(subscriptions);
        self
    }

    pub fn task(mut self, task: JoinHandle<()>) -> Component {
        self.tasks.push(task);
        self
    }

    pub fn check(mut self, check: Arc<dyn Check>) -> Component {
        self.checks.push(check);
        self
    }

    pub fn informational(mut self, check: Arc<dyn Check>) -> Component {
        self.informational.push(check);
        self
    }

    /// The service's outbox is relayed to the bus.
    pub fn with_outbox(mut self) -> Component {
        self.outbox = true;
        self
    }

    pub fn with_jwks(mut self, jwks: Arc<dyn JwksSource>) -> Component {
        self.jwks = Some(jwks);
        self
    }

    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Component {
        self.revocations = Some(revocations);
        self
    }
}

/// Runs `work` every `interval` until `shutdown` is cancelled: the one loop of every sweeper.
/// A missed tick is not caught up; a failure is logged and retried at the next tick; a run that
/// did something (`Ok(n)` with `n > 0`) is logged at info with `what`.
pub fn every<F, Fut, E>(
    what: &'static str,
    interval: Duration,
    shutdown: CancellationToken,
    mut work: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, E>> + Send,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match work().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(task = what, count = n, "{what}"),
                Err(e) => tracing::warn!(task = what, error = %e, "{what} failed; retrying at the next tick"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn every_runs_until_shutdown_and_survives_failures() {
        let runs = Arc::new(AtomicU64::new(0));
        let shutdown = CancellationToken::new();
        let r = runs.clone();
        let task = every("test sweep", Duration::from_millis(10), shutdown.clone(), move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n % 2 == 0 {
                    Err("odd failure")
                } else {
                    Ok(n)
                }
            }
        });
        while runs.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        let after = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(runs.load(Ordering::SeqCst), after, "no run after shutdown");
    }

    #[test]
    fn a_missing_peer_is_named() {
        let cx = Context::new(ServiceName::Order, false, CancellationToken::new());
        let err = cx.peer(ServiceName::Catalog).err().unwrap().to_string();
        assert!(err.contains("order") && err.contains("catalog"), "{err}");
        assert!(cx.db().is_err() && cx.bus().is_err());
    }
}
