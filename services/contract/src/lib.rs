//! `contract`: the names shared by the services, the gateway and the operator — services, ports,
//! routes, who calls whom, who reads which topic, environment keys, topics and event types. The
//! operator must never drift from the services, so every name that crosses that boundary lives
//! here. Dependency-light on purpose (serde only): the operator depends on this crate, never on
//! the services' runtime kit (`shop-kit` re-exports it as `kit::contract` and
//! `kit::events::contract`).
//!
//! - the crate root: [`ServiceName`] (names, ports, public routes, [`ServiceName::peers`],
//!   [`ServiceName::subscriptions`], [`ServiceName::publishes`]), [`env`] keys, JWT defaults;
//! - [`events`]: topics, event types, sources, the type → topic table, topic naming, headers and
//!   the event bus's env keys;
//! - [`metrics`]: every Prometheus metric of the services and the operator.

use serde::{Deserialize, Serialize};

pub mod events;
pub mod metrics;

/// Every service of the platform, in start-up order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    Auth,
    Catalog,
    Cart,
    Inventory,
    Order,
    Payment,
    Notification,
    Gateway,
}

impl ServiceName {
    /// Every service of the platform, in start-up order.
    pub const ALL: [ServiceName; 8] = [
        ServiceName::Auth,
        ServiceName::Catalog,
        ServiceName::Cart,
        ServiceName::Inventory,
        ServiceName::Order,
        ServiceName::Payment,
        ServiceName::Notification,
        ServiceName::Gateway,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceName::Auth => "auth",
            ServiceName::Catalog => "catalog",
            ServiceName::Cart => "cart",
            ServiceName::Inventory => "inventory",
            ServiceName::Order => "order",
            ServiceName::Payment => "payment",
            ServiceName::Notification => "notification",
            ServiceName::Gateway => "gateway",
        }
    }

    /// Default port when services run as separate local processes.
    /// In Kubernetes every pod listens on [`KUBERNETES_PORT`].
    pub fn default_port(self) -> u16 {
        match self {
            ServiceName::Gateway => 3000,
            ServiceName::Auth => 3001,
            ServiceName::Catalog => 3002,
            ServiceName::Order => 3003,
            ServiceName::Payment => 3005,
            ServiceName::Cart => 3006,
            ServiceName::Inventory => 3007,
            ServiceName::Notification => 3008,
        }
    }

    /// Whether the service owns a database (and so has migrations). The cart keeps carts in
    /// Redis in production and in its SQL database when no Redis is configured.
    pub fn has_database(self) -> bool {
        !matches!(self, ServiceName::Gateway)
    }

    /// Environment key through which the gateway (and other services) find this service
    /// when it runs in its own process, e.g. `SHOP_CATALOG_URL`.
    pub fn url_env_key(self) -> String {
        format!("SHOP_{}_URL", self.as_str().to_ascii_uppercase())
    }

    /// The public API path prefixes (below `/api/v1`) this service answers.
    pub fn public_prefixes(self) -> &'static [&'static str] {
        match self {
            ServiceName::Auth => &["/api/v1/auth", "/api/v1/users", "/.well-known/jwks.json"],
            ServiceName::Catalog => &["/api/v1/products", "/api/v1/categories", "/api/v1/brands"],
            ServiceName::Cart => &["/api/v1/cart"],
            ServiceName::Inventory => &["/api/v1/inventory"],
            ServiceName::Order => &["/api/v1/orders"],
            ServiceName::Payment => &["/api/v1/payments", "/api/v1/webhooks/stripe"],
            ServiceName::Notification => &["/api/v1/notifications"],
            ServiceName::Gateway => &[],
        }
    }

    /// The services this one calls over HTTP (besides the auth service's JWKS, which every
    /// service reads from [`env::JWKS_URL`]); each is found through its
    /// [`url_env_key`](Self::url_env_key). The gateway calls every other service. Callers present
    /// [`env::INTERNAL_TOKEN`] on these calls.
    pub fn peers(self) -> &'static [ServiceName] {
        use ServiceName::*;
        match self {
            Gateway => &[Auth, Catalog, Cart, Inventory, Order, Payment, Notification],
            // Product snapshots and prices of cart lines.
            Cart => &[Catalog],
            // Checkout: products and prices, stock reservations (reserve, commit, release), the
            // buyer's cart.
            Order => &[Catalog, Inventory, Cart],
            // The order a payment is for (amount, owner, status).
            Payment => &[Order],
            // Security emails (password reset and email verification links, notices): never
            // through events, so the single-use tokens stay off the bus (ADR 0016).
            Auth => &[Notification],
            Catalog | Inventory | Notification => &[],
        }
    }

    /// The logical topics ([`events::topics`]) this service's consumer group reads. The consumer
    /// group (and inbox group) is the service's name ([`consumer_group`](Self::consumer_group));
    /// every pair has a dead-letter topic ([`events::dead_letter_topic`]), which must exist
    /// before the consumer can dead-letter into it (the operator creates them from this table).
    pub const fn subscriptions(self) -> &'static [&'static str] {
        use events::topics::*;
        match self {
            // The saga's reactions to payments.
            ServiceName::Order => &[PAYMENTS],
            // Reserve, commit and release stock.
            ServiceName::Inventory => &[ORDERS, PAYMENTS],
            // Capture, void and refund.
            ServiceName::Payment => &[ORDERS],
            // Customer and admin notifications.
            ServiceName::Notification => &[ORDERS, PAYMENTS, INVENTORY, SHIPMENTS],
            ServiceName::Auth | ServiceName::Catalog | ServiceName::Cart | ServiceName::Gateway => &[],
        }
    }

    /// The consumer group of the service: its name, when it subscribes to any topic.
    pub fn consumer_group(self) -> Option<&'static str> {
        (!self.subscriptions().is_empty()).then(|| self.as_str())
    }

    /// The logical topics this service publishes to, through its transactional outbox (a
    /// service with any owns an `outbox` table and runs a relay).
    pub const fn publishes(self) -> &'static [&'static str] {
        use events::topics::*;
        match self {
            // Order lifecycle and the shipments the order service records.
            ServiceName::Order => &[ORDERS, SHIPMENTS],
            ServiceName::Payment => &[PAYMENTS],
            ServiceName::Inventory => &[INVENTORY],
            // What was sent and what was given up (audit; nobody in the platform consumes it).
            ServiceName::Notification => &[NOTIFICATIONS],
            ServiceName::Auth | ServiceName::Catalog | ServiceName::Cart | ServiceName::Gateway => &[],
        }
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL.into_iter().find(|n| n.as_str() == s).ok_or_else(|| {
            let known: Vec<_> = ServiceName::ALL.iter().map(|n| n.as_str()).collect();
            format!("unknown service `{s}` (known: {})", known.join(", "))
        })
    }
}

/// Every (consumer group, logical topic) pair of the platform, from
/// [`ServiceName::subscriptions`]: each needs its dead-letter topic
/// ([`events::dead_letter_topic`]).
pub fn consumer_subscriptions() -> impl Iterator<Item = (&'static str, &'static str)> {
    ServiceName::ALL.into_iter().flat_map(|s| s.subscriptions().iter().map(move |t| (s.as_str(), *t)))
}

/// Port every pod listens on in Kubernetes.
pub const KUBERNETES_PORT: u16 = 8080;
/// In Kubernetes the operations endpoints (`SHOP_OPS_ADDR`) listen on this port.
pub const KUBERNETES_OPS_PORT: u16 = 9090;

/// Environment keys understood by every service (see `docs/configuration.md`).
pub mod env {
    /// Prefix of every ShopPlatform key; nested keys use `__` (e.g. `SHOP_HTTP__ADDR`).
    pub const PREFIX: &str = "SHOP_";
    /// Optional TOML configuration file.
    pub const CONFIG_FILE: &str = "SHOP_CONFIG";
    /// Database URL (`postgres://…` or `sqlite://…`). `DATABASE_URL` is accepted too.
    pub const DATABASE_URL: &str = "SHOP_DATABASE_URL";
    pub const DATABASE_URL_PLAIN: &str = "DATABASE_URL";
    /// Listen address, e.g. `0.0.0.0:8080`.
    pub const HTTP_ADDR: &str = "SHOP_HTTP_ADDR";
    /// `text` (default) or `json`.
    pub const LOG_FORMAT: &str = "SHOP_LOG_FORMAT";
    /// `tracing` filter directives, e.g. `info,sqlx=warn`.
    pub const LOG: &str = "SHOP_LOG";
    /// JWKS URL services use to verify access tokens.
    pub const JWKS_URL: &str = "SHOP_JWKS_URL";
    /// Issuer and audience of access tokens (set by, and expected from, the auth service).
    pub const JWT_ISSUER: &str = "SHOP_AUTH__ISSUER";
    pub const JWT_AUDIENCE: &str = "SHOP_AUTH__AUDIENCE";
    /// The auth service's current Ed25519 signing key (PKCS#8 PEM).
    pub const JWT_SIGNING_KEY: &str = "SHOP_AUTH__JWT_SIGNING_KEY";
    /// Redis URL (the cart's store in production).
    pub const REDIS_URL: &str = "SHOP_REDIS_URL";
    /// Shared secret services present in `x-internal-token` on service-to-service calls.
    pub const INTERNAL_TOKEN: &str = "SHOP_INTERNAL_TOKEN";
    /// Where the embedded SQLite databases live.
    pub const DATA_DIR: &str = "SHOP_DATA_DIR";
    /// Whether services apply their migrations on start.
    pub const MIGRATE_ON_START: &str = "SHOP_MIGRATE_ON_START";
    /// The payment service's provider, required outside `shop up`: [`PAYMENT_PROVIDER_SIMULATED`] or
    /// [`PAYMENT_PROVIDER_STRIPE`] (`shop_payment::PaymentConfig::provider`).
    pub const PAYMENT_PROVIDER: &str = "SHOP_PAYMENT__PROVIDER";
    pub const PAYMENT_PROVIDER_SIMULATED: &str = "simulated";
    pub const PAYMENT_PROVIDER_STRIPE: &str = "stripe";
    /// The payment service's Stripe secret API key (`sk_live_…`).
    pub const STRIPE_SECRET_KEY: &str = "SHOP_PAYMENT__STRIPE__SECRET_KEY";
    /// Base URL of the Stripe API (a Stripe-compatible server in tests).
    pub const STRIPE_API_BASE: &str = "SHOP_PAYMENT__STRIPE__API_BASE";
    /// The payment service's webhook signing secret (`whsec_…`).
    pub const PAYMENT_WEBHOOK_SECRET: &str = "SHOP_PAYMENT__WEBHOOK_SECRET";
    /// Listener of the operations endpoints (`/healthz`, `/readyz`, `/metrics`, `/info`), e.g.
    /// `0.0.0.0:9090`; the API listener then serves none of `/readyz`, `/metrics`.
    pub const OPS_ADDR: &str = "SHOP_OPS_ADDR";
    /// Seconds a stopping process keeps serving with `/readyz` answering `draining`.
    pub const SHUTDOWN_DELAY_SECS: &str = "SHOP_SHUTDOWN_DELAY_SECS";
    /// `Strict-Transport-Security` max-age (set when the shop is served over TLS).
    pub const HSTS_MAX_AGE_SECS: &str = "SHOP_HSTS_MAX_AGE_SECS";
    /// Proxies of our own in front of the gateway: the client address is the N-th
    /// `X-Forwarded-For` entry from the right (0: the TCP peer).
    pub const GATEWAY_TRUSTED_PROXY_HOPS: &str = "SHOP_GATEWAY__RATE_LIMIT__TRUSTED_PROXY_HOPS";
    /// The same for the auth service's throttle (it sits behind the gateway: one more hop).
    pub const AUTH_TRUSTED_PROXY_HOPS: &str = "SHOP_AUTH__TRUSTED_PROXY_HOPS";
    /// CA certificates (PEM) that verify PostgreSQL servers.
    pub const DATABASE_CA_FILE: &str = "SHOP_DATABASE_CA_FILE";
    /// CA certificates (PEM) that verify a `rediss://` Redis.
    pub const REDIS_CA_FILE: &str = "SHOP_REDIS_CA_FILE";
    /// Values of [`LOG_FORMAT`].
    pub const LOG_FORMAT_TEXT: &str = "text";
    pub const LOG_FORMAT_JSON: &str = "json";
}

/// Issuer and audience of platform access tokens unless configured otherwise.
pub const DEFAULT_JWT_ISSUER: &str = "shop-auth";
pub const DEFAULT_JWT_AUDIENCE: &str = "shop-api";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in ServiceName::ALL {
            assert_eq!(n.as_str().parse::<ServiceName>().unwrap(), n);
        }
        assert!("nope".parse::<ServiceName>().unwrap_err().contains("catalog"));
    }

    #[test]
    fn ports_are_distinct() {
        let mut ports: Vec<_> = ServiceName::ALL.iter().map(|n| n.default_port()).collect();
        ports.push(KUBERNETES_PORT);
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), ServiceName::ALL.len() + 1);
    }

    #[test]
    fn serde_names_are_the_display_names() {
        for n in ServiceName::ALL {
            assert_eq!(serde_json::to_value(n).unwrap(), serde_json::json!(n.as_str()));
            assert_eq!(n.to_string(), n.as_str());
        }
    }

    #[test]
    fn peers_are_other_services_once_and_the_gateway_calls_all_others() {
        for s in ServiceName::ALL {
            let peers = s.peers();
            assert!(!peers.contains(&s), "{s} calls itself");
            assert!(!peers.contains(&ServiceName::Gateway), "{s} calls the gateway");
            let mut unique = peers.to_vec();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), peers.len(), "{s}: {peers:?}");
        }
        let others: Vec<_> = ServiceName::ALL.into_iter().filter(|s| *s != ServiceName::Gateway).collect();
        assert_eq!(ServiceName::Gateway.peers(), others.as_slice());
        assert_eq!(ServiceName::Payment.peers(), &[ServiceName::Order]);
        assert_eq!(ServiceName::Cart.peers(), &[ServiceName::Catalog]);
    }

    #[test]
    fn subscriptions_and_publications_name_contract_topics() {
        for s in ServiceName::ALL {
            for t in s.subscriptions().iter().chain(s.publishes()) {
                assert!(events::topics::ALL.contains(t), "{s}: unknown topic {t}");
            }
            let mut unique = s.subscriptions().to_vec();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), s.subscriptions().len(), "{s} reads a topic twice");
            assert_eq!(s.consumer_group(), (!s.subscriptions().is_empty()).then(|| s.as_str()));
            // Only services with a database can keep an inbox or an outbox.
            if !s.subscriptions().is_empty() || !s.publishes().is_empty() {
                assert!(s.has_database(), "{s}");
            }
        }
        // The services' real subscriptions (`services/*/src/events.rs`).
        use events::topics::*;
        assert_eq!(ServiceName::Order.subscriptions(), &[PAYMENTS]);
        assert_eq!(ServiceName::Inventory.subscriptions(), &[ORDERS, PAYMENTS]);
        assert_eq!(ServiceName::Payment.subscriptions(), &[ORDERS]);
        assert_eq!(ServiceName::Notification.subscriptions(), &[ORDERS, PAYMENTS, INVENTORY, SHIPMENTS]);
        assert_eq!(ServiceName::Gateway.consumer_group(), None);
        assert_eq!(consumer_subscriptions().count(), 8);
        assert!(consumer_subscriptions().any(|pair| pair == ("payment", ORDERS)));
        // Every topic someone reads has a producer.
        for s in ServiceName::ALL {
            for t in s.subscriptions() {
                assert!(ServiceName::ALL.iter().any(|p| p.publishes().contains(t)), "nobody publishes {t}");
            }
        }
    }

    #[test]
    fn env_keys_are_distinct_and_prefixed() {
        let keys = [
            env::CONFIG_FILE,
            env::DATABASE_URL,
            env::HTTP_ADDR,
            env::LOG_FORMAT,
            env::LOG,
            env::JWKS_URL,
            env::JWT_ISSUER,
            env::JWT_AUDIENCE,
            env::JWT_SIGNING_KEY,
            env::REDIS_URL,
            env::INTERNAL_TOKEN,
            env::DATA_DIR,
            env::MIGRATE_ON_START,
            env::PAYMENT_PROVIDER,
            env::STRIPE_SECRET_KEY,
            env::STRIPE_API_BASE,
            env::PAYMENT_WEBHOOK_SECRET,
            events::env::BUS,
            events::env::BROKERS,
            events::env::TOPIC_PREFIX,
        ];
        let mut unique = keys.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
        assert!(keys.iter().all(|k| k.starts_with(env::PREFIX)));
        assert_eq!(ServiceName::Catalog.url_env_key(), "SHOP_CATALOG_URL");
    }
}
