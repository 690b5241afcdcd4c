//! The `shop` binary's configuration: every key is optional (`SHOP_*`, see
//! `docs/configuration.md`); defaults give the embedded mode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use kit::config::LogFormat;
use kit::contract::ServiceName;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `SHOP_HTTP_ADDR`: listen address (default `127.0.0.1:<service port>`).
    pub http_addr: Option<SocketAddr>,
    /// `SHOP_OPS_ADDR`: a second listener for `/healthz`, `/readyz`, `/metrics` and `/info`
    /// (the operator sets `0.0.0.0:9090`); then the API listener answers none of `/readyz`,
    /// `/metrics` (and, on the gateway, `/info`). Unset: everything on `SHOP_HTTP_ADDR`.
    pub ops_addr: Option<SocketAddr>,
    /// `SHOP_SHUTDOWN_DELAY_SECS`: after SIGTERM, how long the process keeps serving while
    /// `/readyz` answers `draining`, before it stops accepting (default 0; the operator sets 5).
    pub shutdown_delay_secs: u64,
    /// `SHOP_HSTS_MAX_AGE_SECS`: send `Strict-Transport-Security` with this max-age (set when
    /// the shop is served over TLS).
    pub hsts_max_age_secs: Option<u64>,
    /// `SHOP_DATA_DIR`: where embedded SQLite databases live (default `.shop-data`).
    pub data_dir: PathBuf,
    /// `SHOP_DATABASE_URL` or `DATABASE_URL`: the database of the one service a command runs.
    pub database_url: Option<SecretString>,
    /// `SHOP_DATABASES__<SERVICE>`: per-service database URLs when several services share a
    /// command (`serve all`, `migrate all`, `seed`).
    pub databases: BTreeMap<String, SecretString>,
    /// `SHOP_DATABASE_CA_FILE`: CA certificates (PEM) that verify PostgreSQL servers (every
    /// PostgreSQL URL without `sslrootcert`; without `sslmode` such a URL gets `verify-full`).
    pub database_ca_file: Option<PathBuf>,
    /// `SHOP_DB_MAX_CONNECTIONS`: pool size per service.
    pub db_max_connections: u32,
    /// `SHOP_MIGRATE_ON_START`: apply migrations when a service starts (default true).
    pub migrate_on_start: bool,
    /// `SHOP_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `SHOP_JWKS_URL`: where services that run apart fetch the auth service's public keys.
    pub jwks_url: Option<String>,
    /// `SHOP_<SERVICE>_URL`: where the gateway (and other services) find services that run apart.
    pub auth_url: Option<url::Url>,
    pub catalog_url: Option<url::Url>,
    pub cart_url: Option<url::Url>,
    pub inventory_url: Option<url::Url>,
    pub order_url: Option<url::Url>,
    pub payment_url: Option<url::Url>,
    pub notification_url: Option<url::Url>,
    /// `SHOP_REDIS_URL`: Redis for the cart (when unset, carts live in the cart's SQL database).
    pub redis_url: Option<SecretString>,
    /// `SHOP_REDIS_CA_FILE`: CA certificates (PEM) that verify a `rediss://` Redis.
    pub redis_ca_file: Option<PathBuf>,
    /// `SHOP_INTERNAL_TOKEN`: the credential services present to each other.
    pub internal_token: Option<SecretString>,
    /// `SHOP_EVENTS__*`: the event bus (in-process by default, Kafka with `SHOP_EVENTS__BUS=kafka`).
    pub events: kit::events::EventsConfig,
    /// `SHOP_AUTH__*`: the auth service's settings.
    pub auth: shop_auth::AuthConfig,
    /// `SHOP_CART__*`, `SHOP_INVENTORY__*`, `SHOP_NOTIFICATION__*`: those services' settings.
    pub cart: shop_cart::CartConfig,
    pub inventory: shop_inventory::InventoryConfig,
    pub notification: shop_notification::NotificationConfig,
    /// `SHOP_ORDER__*`, `SHOP_PAYMENT__*`: the order and payment services' settings.
    pub order: shop_order::OrderConfig,
    pub payment: shop_payment::PaymentConfig,
    /// `SHOP_GATEWAY__*`: the gateway's settings.
    pub gateway: shop_gateway::GatewayConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            http_addr: None,
            ops_addr: None,
            shutdown_delay_secs: 0,
            hsts_max_age_secs: None,
            data_dir: PathBuf::from(".shop-data"),
            database_url: None,
            databases: BTreeMap::new(),
            database_ca_file: None,
            db_max_connections: 10,
            migrate_on_start: true,
            log_format: LogFormat::Text,
            jwks_url: None,
            auth_url: None,
            catalog_url: None,
            cart_url: None,
            inventory_url: None,
            order_url: None,
            payment_url: None,
            notification_url: None,
            redis_url: None,
            redis_ca_file: None,
            internal_token: None,
            events: kit::events::EventsConfig::default(),
            auth: shop_auth::AuthConfig::default(),
            cart: shop_cart::CartConfig::default(),
            inventory: shop_inventory::InventoryConfig::default(),
            notification: shop_notification::NotificationConfig::default(),
            order: shop_order::OrderConfig::default(),
            payment: shop_payment::PaymentConfig::default(),
            gateway: shop_gateway::GatewayConfig::default(),
        }
    }
}

/// Where a service's database comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbScope {
    /// The command runs this one service: `SHOP_DATABASE_URL` applies.
    Single,
    /// The command runs several services: only `SHOP_DATABASES__<SERVICE>` applies.
    Shared,
}

impl Settings {
    /// The database URL of `service`: `SHOP_DATABASES__<SERVICE>`, then (for a single-service
    /// command) `SHOP_DATABASE_URL`, then an embedded SQLite file in the data directory.
    pub fn database_url(&self, service: ServiceName, scope: DbScope) -> String {
        if let Some(url) = self.databases.get(service.as_str()) {
            return url.expose_secret().to_string();
        }
        if scope == DbScope::Single {
            if let Some(url) = &self.database_url {
                return url.expose_secret().to_string();
            }
        }
        format!("sqlite://{}", self.data_dir.join(format!("{service}.db")).display())
    }

    /// The configuration key [`Settings::database_url`] takes `service`'s URL from (for errors).
    pub fn database_url_key(&self, service: ServiceName, scope: DbScope) -> String {
        if self.databases.contains_key(service.as_str()) {
            format!("SHOP_DATABASES__{}", service.as_str().to_ascii_uppercase())
        } else if scope == DbScope::Single && self.database_url.is_some() {
            "SHOP_DATABASE_URL".to_string()
        } else {
            "SHOP_DATA_DIR".to_string()
        }
    }

    /// The listen address of `service` (the gateway for `serve all`).
    pub fn addr(&self, service: ServiceName) -> SocketAddr {
        self.http_addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], service.default_port())))
    }

    /// The base URL of a service that runs apart.
    pub fn service_url(&self, service: ServiceName) -> url::Url {
        let configured = match service {
            ServiceName::Auth => self.auth_url.clone(),
            ServiceName::Catalog => self.catalog_url.clone(),
            ServiceName::Cart => self.cart_url.clone(),
            ServiceName::Inventory => self.inventory_url.clone(),
            ServiceName::Order => self.order_url.clone(),
            ServiceName::Payment => self.payment_url.clone(),
            ServiceName::Notification => self.notification_url.clone(),
            ServiceName::Gateway => None,
        };
        configured.unwrap_or_else(|| {
            format!("http://127.0.0.1:{}", service.default_port()).parse().expect("valid default URL")
        })
    }

    pub fn jwks_url(&self) -> String {
        self.jwks_url.clone().unwrap_or_else(|| {
            let mut u = self.service_url(ServiceName::Auth);
            u.set_path("/.well-known/jwks.json");
            u.to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_resolution_order() {
        let mut s = Settings { data_dir: "/data".into(), ..Default::default() };
        assert_eq!(s.database_url(ServiceName::Catalog, DbScope::Single), "sqlite:///data/catalog.db");
        s.database_url = Some(SecretString::from("postgres://db/one"));
        assert_eq!(s.database_url(ServiceName::Catalog, DbScope::Single), "postgres://db/one");
        assert_eq!(s.database_url(ServiceName::Catalog, DbScope::Shared), "sqlite:///data/catalog.db");
        s.databases.insert("catalog".into(), SecretString::from("postgres://db/catalog"));
        assert_eq!(s.database_url(ServiceName::Catalog, DbScope::Shared), "postgres://db/catalog");
        assert_eq!(s.database_url(ServiceName::Auth, DbScope::Shared), "sqlite:///data/auth.db");
        assert_eq!(s.database_url_key(ServiceName::Catalog, DbScope::Single), "SHOP_DATABASES__CATALOG");
        assert_eq!(s.database_url_key(ServiceName::Auth, DbScope::Single), "SHOP_DATABASE_URL");
        assert_eq!(s.database_url_key(ServiceName::Auth, DbScope::Shared), "SHOP_DATA_DIR");
    }

    #[test]
    fn default_addresses_follow_the_port_layout() {
        let s = Settings::default();
        assert_eq!(s.addr(ServiceName::Gateway).port(), 3000);
        assert_eq!(s.addr(ServiceName::Catalog).port(), 3002);
        assert_eq!(s.jwks_url(), "http://127.0.0.1:3001/.well-known/jwks.json");
    }
}
