//! `shop-payment`: the Payment Service — payments of orders with manual capture (authorise at
//! confirmation, capture once the order is confirmed), hosted checkout (Stripe Checkout
//! Sessions, or the simulated provider's own page), refunds, `Idempotency-Key`s, signed
//! webhooks, over Stripe or an embedded simulated provider. See `docs/payments.md` and
//! ADR 0008.
//!
//! [`service`] describes it to the composer (`kit::component`): a [`PaymentState`] with an
//! [`OrderLookup`] over the kit's service client, [`router`], the event [`handlers`], the outbox,
//! [`spawn_simulated_webhooks`] and [`spawn_sweeper`].

pub mod api;
pub mod config;
pub mod decide;
pub mod events;
pub mod hosted;
pub mod model;
pub mod orders;
pub mod provider;
pub mod service;
pub mod store;
pub mod webhook;

#[cfg(test)]
mod store_tests;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use kit::db::Timestamp;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use api::{openapi, router};
pub use config::{PaymentConfig, RedirectPolicy, StripeConfig};
pub use events::{handlers, CONSUMER_GROUP};
pub use model::{Payment, PaymentStatus, ProviderKind};
pub use orders::{LookupError, OrderInfo, OrderLookup};
pub use provider::{simulated::SimulatedProvider, stripe::StripeProvider, PaymentProvider};
pub use store::Store;

/// The payment service's migrations for both backends.
pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("../../migrations/postgres/payment"),
    sqlite: sqlx::migrate!("../../migrations/sqlite/payment"),
};

/// Shared state of the handlers, the event consumer and the background tasks. Cheap to clone.
#[derive(Clone)]
pub struct PaymentState {
    pub store: Store,
    pub config: Arc<PaymentConfig>,
    pub provider: Arc<dyn PaymentProvider>,
    pub orders: Arc<dyn OrderLookup>,
    /// Where hosted checkout may send the customer back to (`redirect_origins`).
    pub redirects: Arc<RedirectPolicy>,
    /// The simulated provider, whose hosted checkout page this service serves.
    simulated: Option<SimulatedProvider>,
    webhook_secret: Option<Arc<SecretString>>,
    simulated_wake: Arc<Notify>,
}

impl PaymentState {
    /// Builds the state and the configured provider. The simulated provider keeps its state in
    /// `db`; without `webhook_secret` it gets a random one (its webhooks are signed with it).
    /// Fails when no provider was chosen, when `provider = "stripe"` has no secret key, or when a
    /// redirect origin is not one. The simulated provider outside `shop up` is allowed but
    /// announced loudly (log and `GET /info` warnings): it takes no money.
    pub fn new(db: kit::db::Db, config: PaymentConfig, orders: Arc<dyn OrderLookup>) -> anyhow::Result<Self> {
        let Some(kind) = config.provider else {
            anyhow::bail!(
                "{}: no payment provider configured; set it to `stripe` (with \
                 SHOP_PAYMENT__STRIPE__SECRET_KEY) to take real payments, or to `simulated` to \
                 accept test cards without charging anyone (development only)",
                kit::contract::env::PAYMENT_PROVIDER
            );
        };
        let wake = Arc::new(Notify::new());
        let redirects = RedirectPolicy::new(&config.redirect_origins).map_err(anyhow::Error::msg)?;
        let mut secret = config.webhook_secret.clone().filter(|s| !s.expose_secret().trim().is_empty());
        let mut simulated = None;
        let provider: Arc<dyn PaymentProvider> = match kind {
            ProviderKind::Simulated => {
                if !kit::info::is_demo() {
                    let warning = "payments are SIMULATED: orders are marked paid but nobody is charged \
                                   (SHOP_PAYMENT__PROVIDER=simulated); use `stripe` in production";
                    tracing::warn!("{warning}");
                    kit::info::warn(warning);
                }
                if secret.is_none() {
                    let mut bytes = [0u8; 24];
                    rand::thread_rng().fill_bytes(&mut bytes);
                    secret = Some(SecretString::from(format!("whsec_{}", hex::encode(bytes))));
                }
                let p = SimulatedProvider::new(
                    db.clone(),
                    Duration::from_millis(config.simulated_webhook_delay_ms),
                    wake.clone(),
                );
                simulated = Some(p.clone());
                Arc::new(p)
            }
            ProviderKind::Stripe => {
                let p = StripeProvider::new(&config.stripe).map_err(anyhow::Error::msg)?;
                if secret.is_none() {
                    tracing::warn!(
                        "SHOP_PAYMENT__WEBHOOK_SECRET is not set: Stripe webhooks will be refused"
                    );
                }
                Arc::new(p)
            }
        };
        Ok(PaymentState {
            store: Store::new(db),
            config: Arc::new(config),
            provider,
            orders,
            redirects: Arc::new(redirects),
            simulated,
            webhook_secret: secret.map(Arc::new),
            simulated_wake: wake,
        })
    }

    /// Replaces the provider (tests, or another Stripe-compatible implementation).
    pub fn with_provider(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// The simulated provider when it is the one in use: its hosted checkout page is served by
    /// this service ([`hosted`]). `None` with Stripe (Stripe hosts its own page).
    pub fn hosted_provider(&self) -> Option<&SimulatedProvider> {
        self.simulated.as_ref().filter(|_| self.provider.kind() == ProviderKind::Simulated)
    }

    /// Expires the simulated provider's checkout sessions whose time is up (their
    /// `checkout.session.expired` webhooks then cancel the payments). Nothing with Stripe.
    pub async fn expire_due_checkout_sessions(&self) -> Result<usize, provider::ProviderError> {
        match self.hosted_provider() {
            Some(p) => p.expire_due_sessions().await,
            None => Ok(0),
        }
    }

    /// The secret webhooks are verified (and simulated ones signed) with.
    pub fn webhook_secret(&self) -> Option<&str> {
        self.webhook_secret.as_deref().map(|s| s.expose_secret())
    }

    /// Delivers the simulated provider's due webhooks to [`webhook::process`], signed like
    /// Stripe signs them. Returns how many were accepted.
    pub async fn deliver_simulated_webhooks(&self) -> Result<usize, sqlx::Error> {
        let Some(simulated) = self.hosted_provider() else { return Ok(0) };
        let mut delivered = 0;
        for (id, payload) in simulated.due_webhooks(Timestamp::now(), 50).await? {
            let result = match self.webhook_secret() {
                None => Err("no webhook secret".to_string()),
                Some(secret) => {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let mut headers = HeaderMap::new();
                    let sig = webhook::sign(secret, now, payload.as_bytes());
                    headers.insert(
                        webhook::SIGNATURE_HEADER,
                        HeaderValue::from_str(&sig).expect("a signature is a valid header value"),
                    );
                    webhook::process(self, &headers, payload.as_bytes())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            };
            if result.is_ok() {
                delivered += 1;
            } else if let Err(e) = &result {
                tracing::warn!(webhook = %id, error = %e, "simulated webhook not accepted; retrying later");
            }
            simulated.record_delivery(id, result, Timestamp::now() + Duration::from_secs(5)).await?;
        }
        Ok(delivered)
    }
}

/// Delivers the simulated provider's webhooks (after `simulated_webhook_delay_ms`, retried
/// every few seconds until accepted; they are stored, so a restart delivers what was left).
/// With the Stripe provider there is nothing to deliver and the task only idles.
pub fn spawn_simulated_webhooks(
    state: PaymentState,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let poll = Duration::from_secs(1);
        loop {
            if let Err(e) = state.deliver_simulated_webhooks().await {
                tracing::warn!(error = %e, "simulated webhook delivery failed; retrying");
            }
            let next = match state.hosted_provider() {
                Some(simulated) => simulated.next_webhook_due().await,
                None => Ok(None),
            };
            let wait = match next {
                Ok(Some(due)) => {
                    let left = (due.0 - time::OffsetDateTime::now_utc()).whole_milliseconds().max(1);
                    Duration::from_millis(u64::try_from(left).unwrap_or(1)).min(poll)
                }
                _ => poll,
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = state.simulated_wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// Settles refunds left PENDING for more than a minute (provider unreachable, or a crash
/// between the provider call and the record), every 30 s, with the refund's original
/// idempotency key; history source `sweeper`. With the simulated provider it also expires
/// checkout sessions past their expiry. Stops when `shutdown` is cancelled.
pub fn spawn_sweeper(state: PaymentState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    kit::component::every(
        "payment sweep (stale refunds settled, checkout sessions expired)",
        Duration::from_secs(30),
        shutdown,
        move || {
            let state = state.clone();
            async move {
                let settled =
                    state.settle_stale_refunds(Duration::from_secs(60)).await.map_err(|e| e.to_string())?;
                let expired = state.expire_due_checkout_sessions().await.map_err(|e| e.to_string())?;
                Ok::<u64, String>((settled + expired) as u64)
            }
        },
    )
}

/// How long a processed webhook event id is remembered (duplicates arrive within days).
pub const WEBHOOK_EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The payment service as the composer sees it (`kit::component`).
pub fn service(config: PaymentConfig) -> kit::component::Service {
    kit::component::Service::new(kit::contract::ServiceName::Payment, Some(&MIGRATIONS), openapi, |cx| {
        component(cx, config)
    })
}

async fn component(
    cx: kit::component::Context,
    config: PaymentConfig,
) -> anyhow::Result<kit::component::Component> {
    let orders = orders::lookup(cx.client_with(kit::contract::ServiceName::Order, orders::policy())?);
    let db = cx.db()?;
    if config.provider == Some(ProviderKind::Simulated) {
        SimulatedProvider::ensure_schema(&db)
            .await
            .map_err(|e| anyhow::anyhow!("the simulated provider's tables: {e}"))?;
    }
    let state = PaymentState::new(db, config, orders)?;
    let webhooks = spawn_simulated_webhooks(state.clone(), cx.shutdown.clone());
    let sweeper = spawn_sweeper(state.clone(), cx.shutdown.clone());
    let keys = kit::idempotency::spawn_purge(state.store.db().clone(), cx.shutdown.clone());
    let store = state.store.clone();
    let events = kit::component::every(
        "processed webhook events forgotten",
        Duration::from_secs(3600),
        cx.shutdown.clone(),
        move || {
            let store = store.clone();
            async move { store.purge_webhook_events(Timestamp::now() - WEBHOOK_EVENT_RETENTION).await }
        },
    );
    Ok(kit::component::Component::new(router(state.clone()))
        .subscribe(handlers(state))
        .task(webhooks)
        .task(sweeper)
        .task(keys)
        .task(events)
        .with_outbox())
}
