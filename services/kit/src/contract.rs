//! Names shared by the services, the gateway and the operator. The operator must never drift
//! from the services, so every name that crosses that boundary lives here.

use serde::{Deserialize, Serialize};

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

    pub fn as_str(self) -> &'static str {
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

    /// The services this one calls over HTTP (the gateway calls every other one).
    pub fn peers(self) -> &'static [ServiceName] {
        use ServiceName::*;
        match self {
            Gateway => &[Auth, Catalog, Cart, Inventory, Order, Payment, Notification],
            Cart => &[Catalog],
            Order => &[Catalog, Inventory, Cart],
            Payment => &[Order],
            Auth | Catalog | Inventory | Notification => &[],
        }
    }

    /// The logical topics this service's consumer group (named after the service) reads.
    pub fn subscriptions(self) -> &'static [&'static str] {
        use crate::events::contract::topics::*;
        match self {
            ServiceName::Order => &[PAYMENTS],
            ServiceName::Inventory => &[ORDERS, PAYMENTS],
            ServiceName::Payment => &[ORDERS],
            ServiceName::Notification => &[ORDERS, PAYMENTS, INVENTORY, SHIPMENTS],
            _ => &[],
        }
    }

    /// The logical topics this service publishes to (through the outbox in its database).
    pub fn publishes(self) -> &'static [&'static str] {
        use crate::events::contract::topics::*;
        match self {
            ServiceName::Order => &[ORDERS, SHIPMENTS],
            ServiceName::Inventory => &[INVENTORY],
            ServiceName::Payment => &[PAYMENTS],
            _ => &[],
        }
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

/// Port every pod listens on in Kubernetes.
pub const KUBERNETES_PORT: u16 = 8080;

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
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), ServiceName::ALL.len());
    }
}
