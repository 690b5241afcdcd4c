//! Names the operator gives to what it creates, and its labels. Everything it shares with the
//! services — service names, peers, topics, consumer groups, env keys — comes from the
//! `shop-contract` crate (`contract`); nothing of it is copied here.

use std::collections::BTreeMap;

use contract::ServiceName;
use kube::ResourceExt;

use crate::crd::ShopPlatform;

/// The one server-side-apply field manager of the operator.
pub const FIELD_MANAGER: &str = "shop-operator";
/// Finalizer that runs the deletion policy.
pub const FINALIZER: &str = "platform.shop/cleanup";
/// Annotation on pod templates with a hash of the service's configuration, so a configuration
/// change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "platform.shop/config-hash";
/// Annotation on pod templates with a hash of the Secret values the pods read, so a rotated
/// Secret rolls the pods.
pub const SECRETS_HASH_ANNOTATION: &str = "platform.shop/secrets-hash";
/// Annotation on migration Jobs with a hash of their pod template (a Job's template is
/// immutable: a failed Job whose template changed is replaced, a succeeded one is kept).
pub const TEMPLATE_HASH_ANNOTATION: &str = "platform.shop/template-hash";

/// Keys of the Secret named by `spec.stripe.secretName`.
pub const STRIPE_API_KEY_KEY: &str = "apiKey";
pub const STRIPE_WEBHOOK_SECRET_KEY: &str = "webhookSecret";

/// The platform prefix of every topic name (`SHOP_EVENTS__TOPIC_PREFIX`, `contract::events::full_topic`):
/// `<platform>-`, so `shop` gets `shop-orders`.
pub fn topic_prefix(sp: &ShopPlatform) -> String {
    format!("{}-", sp.name_any())
}

/// Embedded mode: the single-node Kafka broker (StatefulSet and Service).
pub fn kafka(sp: &ShopPlatform) -> String {
    format!("{}-kafka", sp.name_any())
}

/// Embedded mode: the Redis pod (Deployment and Service).
pub fn redis(sp: &ShopPlatform) -> String {
    format!("{}-redis", sp.name_any())
}

/// Named container port of every service pod.
pub const HTTP_PORT_NAME: &str = "http";
/// Port of every service's Service.
pub const SERVICE_PORT: i32 = 80;
/// Named container and Service port of the operations endpoints (`SHOP_OPS_ADDR`).
pub const OPS_PORT_NAME: &str = "ops";
/// Seconds a stopping service keeps serving while `/readyz` says `draining`
/// (`SHOP_SHUTDOWN_DELAY_SECS`), and the `preStop` sleep before its SIGTERM.
pub const SHUTDOWN_DELAY_SECS: i64 = 5;
/// Grace period of a service pod: above the preStop sleep, the drain delay and the gateway's
/// request timeout (30 s).
pub const TERMINATION_GRACE_SECS: i64 = 45;
/// `Strict-Transport-Security` max-age when the Ingress serves TLS: one year.
pub const HSTS_MAX_AGE_SECS: u64 = 31_536_000;
/// Where the CA certificates of the backing services are mounted (`<dir>/ca.crt`).
pub const POSTGRES_CA_DIR: &str = "/etc/shop/ca/postgres";
pub const REDIS_CA_DIR: &str = "/etc/shop/ca/redis";
pub const KAFKA_CA_DIR: &str = "/etc/shop/ca/kafka";
/// File name of a mounted CA.
pub const CA_FILE: &str = "ca.crt";

/// Key of the auth signing key in its Secret.
pub const SIGNING_KEY_KEY: &str = "private-key.pem";
/// Key of the internal credential in its Secret.
pub const INTERNAL_CREDENTIAL_KEY: &str = "credential";
/// Key of a generated password.
pub const PASSWORD_KEY: &str = "password";
/// Key of a database URL in a service's connection Secret.
pub const DATABASE_URL_KEY: &str = "DATABASE_URL";

pub fn namespace(sp: &ShopPlatform) -> String {
    sp.namespace().unwrap_or_else(|| "default".to_string())
}

pub fn service_object(sp: &ShopPlatform, service: ServiceName) -> String {
    format!("{}-{}", sp.name_any(), service.as_str())
}

pub fn config_map(sp: &ShopPlatform, service: ServiceName) -> String {
    format!("{}-{}-config", sp.name_any(), service.as_str())
}

pub fn signing_key_secret(sp: &ShopPlatform) -> String {
    format!("{}-jwt-signing-key", sp.name_any())
}

pub fn internal_credential_secret(sp: &ShopPlatform) -> String {
    format!("{}-internal-credential", sp.name_any())
}

/// Generated once: the password of the service's database role.
pub fn db_password_secret(sp: &ShopPlatform, service: ServiceName) -> String {
    format!("{}-{}-db-password", sp.name_any(), service.as_str())
}

/// Written after provisioning: the service's `DATABASE_URL`.
pub fn db_connection_secret(sp: &ShopPlatform, service: ServiceName) -> String {
    format!("{}-{}-db", sp.name_any(), service.as_str())
}

/// Generated once (embedded mode): the `postgres` superuser's password.
pub fn postgres_admin_secret(sp: &ShopPlatform) -> String {
    format!("{}-postgres-admin", sp.name_any())
}

pub fn postgres(sp: &ShopPlatform) -> String {
    format!("{}-postgres", sp.name_any())
}

/// The CloudNativePG `Cluster`; CloudNativePG names its superuser Secret `<cluster>-superuser`.
pub fn cnpg_cluster(sp: &ShopPlatform) -> String {
    format!("{}-db", sp.name_any())
}

pub fn cnpg_superuser_secret(sp: &ShopPlatform) -> String {
    format!("{}-superuser", cnpg_cluster(sp))
}

/// CloudNativePG mode with backups: the `ScheduledBackup`.
pub fn cnpg_scheduled_backup(sp: &ShopPlatform) -> String {
    format!("{}-db-backup", sp.name_any())
}

/// The `ServiceMonitor` of the shop services.
pub fn service_monitor(sp: &ShopPlatform) -> String {
    format!("{}-services", sp.name_any())
}

/// A NetworkPolicy of the platform: `<platform>-<what>`.
pub fn network_policy(sp: &ShopPlatform, what: &str) -> String {
    format!("{}-{what}", sp.name_any())
}

pub fn ingress(sp: &ShopPlatform) -> String {
    format!("{}-gateway", sp.name_any())
}

/// The migration Job of `service` at the platform's version: a new version gets a new Job.
pub fn migration_job(sp: &ShopPlatform, service: ServiceName) -> String {
    let version: String = sp
        .spec
        .version
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    bounded(&format!("{}-{}-migrate-{}", sp.name_any(), service.as_str(), version.trim_matches('-')), 63, '-')
}

/// In-cluster base URL of a service, e.g. `http://shop-auth.prod.svc`.
pub fn service_url(sp: &ShopPlatform, service: ServiceName) -> String {
    format!("http://{}.{}.svc", service_object(sp, service), namespace(sp))
}

/// PostgreSQL identifier (database and role name) of a service: namespace, platform and service,
/// lower case, `[a-z0-9_]`, at most 63 bytes (a hash keeps long names distinct).
pub fn db_identifier(sp: &ShopPlatform, service: ServiceName) -> String {
    let raw = format!("{}_{}_{}", namespace(sp), sp.name_any(), service.as_str());
    let clean: String =
        raw.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    bounded(&clean, 63, '_')
}

/// `s` itself when short enough, else a prefix plus a stable hash of the whole.
fn bounded(s: &str, max: usize, sep: char) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    // FNV-1a: stable across releases and platforms (unlike `DefaultHasher`).
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    let suffix = format!("{sep}{:08x}", hash as u32);
    let prefix: String = s.chars().take(max - suffix.len()).collect();
    format!("{}{suffix}", prefix.trim_end_matches(sep))
}

/// Standard labels of everything the operator creates for `component`.
pub fn labels(sp: &ShopPlatform, name: &str, component: &str) -> BTreeMap<String, String> {
    let mut l = selector(sp, name, component);
    l.insert("app.kubernetes.io/part-of".into(), "shop-platform".into());
    l.insert("app.kubernetes.io/managed-by".into(), "shop-operator".into());
    l.insert("app.kubernetes.io/version".into(), label_value(&sp.spec.version));
    l
}

/// The stable subset of [`labels`] used in selectors (never includes the version).
pub fn selector(sp: &ShopPlatform, name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), name.to_string()),
        ("app.kubernetes.io/instance".to_string(), sp.name_any()),
        ("app.kubernetes.io/component".to_string(), component.to_string()),
    ])
}

fn label_value(v: &str) -> String {
    let s: String =
        v.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    s.chars().take(63).collect::<String>().trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ShopPlatformSpec;

    fn sp(name: &str, version: &str) -> ShopPlatform {
        let mut sp: ShopPlatform = ShopPlatform::new(
            name,
            serde_json::from_value(
                serde_json::json!({"version": version, "payment": {"provider": "simulated"}}),
            )
            .unwrap(),
        );
        sp.metadata.namespace = Some("prod".into());
        let _: &ShopPlatformSpec = &sp.spec;
        sp
    }

    #[test]
    fn db_identifiers_are_valid_postgres_names() {
        assert_eq!(db_identifier(&sp("shop", "1"), ServiceName::Catalog), "prod_shop_catalog");
        let long = db_identifier(&sp(&"x".repeat(80), "1"), ServiceName::Catalog);
        assert_eq!(long.len(), 63);
        assert_ne!(long, db_identifier(&sp(&"x".repeat(81), "1"), ServiceName::Catalog));
    }

    #[test]
    fn migration_job_names_follow_the_version() {
        assert_eq!(migration_job(&sp("shop", "0.1.0"), ServiceName::Auth), "shop-auth-migrate-0-1-0");
        assert_ne!(
            migration_job(&sp("shop", "0.1.0"), ServiceName::Auth),
            migration_job(&sp("shop", "0.2.0"), ServiceName::Auth)
        );
        assert!(migration_job(&sp(&"y".repeat(60), "0.1.0"), ServiceName::Auth).len() <= 63);
    }
}
