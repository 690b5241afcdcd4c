//! Provisioning outside Kubernetes: per-service PostgreSQL databases and roles (through
//! `tokio-postgres`, TLS by the admin DSN's `sslmode`: [`postgres`]) and Kafka topics (through the
//! operator's own Kafka admin client, [`crate::kafka`]). Both sit behind traits so the reconcile
//! tests can script them.

pub mod postgres;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use contract::events;

use crate::crd::{KafkaMode, ShopPlatform};
use crate::kafka::{self, AdminClient, ConnectionConfig, KafkaError};
use crate::names;
use kafka_protocol::ResponseError;

/// One service's database: a database owned by a login role of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseGrant {
    /// Database and role name (a valid PostgreSQL identifier, `[a-z0-9_]`).
    pub name: String,
    /// The role's password.
    pub password: String,
    /// The role is known to have this password already: the service's connection Secret, written
    /// only after a successful `ensure`, holds it. Then `ensure` only reads the catalogs and
    /// changes nothing when everything is in place (a steady state runs no DDL).
    pub password_current: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("invalid admin DSN: {0}")]
    InvalidDsn(String),
    #[error("invalid identifier `{0}` (only [a-z0-9_] allowed)")]
    InvalidIdentifier(String),
    #[error("database server: {}", describe_pg(.0))]
    Sql(#[from] tokio_postgres::Error),
    #[error("database TLS: {0}")]
    Tls(String),
}

/// A PostgreSQL error with what the server or the connection said (`tokio_postgres::Error`
/// displays only "db error" or "error connecting to server").
fn describe_pg(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// Creates and drops per-service databases with an admin connection.
#[async_trait]
pub trait DatabaseProvisioner: Send + Sync {
    /// Idempotently ensures the role (LOGIN, with this password) and its database exist, and
    /// returns the service's connection URL. When the grant's password is current and the
    /// catalogs show everything in place, nothing is changed.
    async fn ensure(&self, admin_dsn: &str, grant: &DatabaseGrant) -> Result<String, ProvisionError>;
    /// Drops the database and role if they exist.
    async fn drop_database(&self, admin_dsn: &str, name: &str) -> Result<(), ProvisionError>;
    /// [`ensure`](Self::ensure) with the platform's CA (`spec.database.tls.ca`), which replaces
    /// the operator-wide one for this call.
    async fn ensure_with_ca(
        &self,
        admin_dsn: &str,
        _ca_pem: Option<&[u8]>,
        grant: &DatabaseGrant,
    ) -> Result<String, ProvisionError> {
        self.ensure(admin_dsn, grant).await
    }
    /// [`drop_database`](Self::drop_database) with the platform's CA.
    async fn drop_database_with_ca(
        &self,
        admin_dsn: &str,
        _ca_pem: Option<&[u8]>,
        name: &str,
    ) -> Result<(), ProvisionError> {
        self.drop_database(admin_dsn, name).await
    }
}

/// The real provisioner: plain SQL over one admin connection per call (`tokio-postgres`; TLS as
/// the admin DSN's `sslmode` asks, see [`postgres`]).
#[derive(Debug, Default, Clone)]
pub struct PgProvisioner {
    /// PEM bundle of the CA that signed the server's certificate (`sslmode` `verify-ca` and
    /// `verify-full`, and `require`, which then verifies like `verify-ca`). Without it the
    /// verifying modes use the Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Addresses to connect to instead of the DSN's `host:port` (`--connect-override`).
    pub overrides: crate::overrides::ConnectOverrides,
}

impl PgProvisioner {
    async fn connect(&self, dsn: &str) -> Result<tokio_postgres::Client, ProvisionError> {
        postgres::connect(dsn, self.ca_pem.as_deref(), &self.overrides).await
    }

    /// Whether the role, its database and its `public` schema are as [`DatabaseProvisioner::ensure`]
    /// leaves them. Read-only.
    async fn in_place(
        &self,
        admin: &tokio_postgres::Client,
        admin_dsn: &str,
        name: &str,
    ) -> Result<bool, ProvisionError> {
        let row = admin
            .query_opt(
                "SELECT r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolcreatedb AND NOT r.rolcreaterole \
                        AND NOT r.rolreplication AND NOT r.rolbypassrls \
                    AND d.datdba = r.oid \
                    AND NOT has_database_privilege('public', d.datname, 'CONNECT') \
                    AND NOT has_database_privilege('public', d.datname, 'TEMPORARY') \
                    AND pg_has_role(current_user, r.oid, 'MEMBER') \
                 FROM pg_roles r JOIN pg_database d ON d.datname = r.rolname WHERE r.rolname = $1",
                &[&name],
            )
            .await?;
        if !row.is_some_and(|r| r.get::<_, bool>(0)) {
            return Ok(false);
        }
        let db = self.connect(&with_database(admin_dsn, name)?).await?;
        let schema_ok: Option<bool> = db
            .query_opt(
                "SELECT n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = $1) \
                    AND NOT has_schema_privilege('public', n.oid, 'CREATE') \
                 FROM pg_namespace n WHERE n.nspname = 'public'",
                &[&name],
            )
            .await?
            .map(|r| r.get(0));
        Ok(schema_ok == Some(true))
    }
}

fn ident(name: &str) -> Result<String, ProvisionError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(ProvisionError::InvalidIdentifier(name.to_string()))
    }
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The admin DSN with another database and credentials: the service's connection URL.
pub fn service_url(admin_dsn: &str, grant: &DatabaseGrant) -> Result<String, ProvisionError> {
    let mut url = url::Url::parse(admin_dsn).map_err(|e| ProvisionError::InvalidDsn(e.to_string()))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") || url.host_str().is_none() {
        return Err(ProvisionError::InvalidDsn("expected postgres://user@host[:port]/db".into()));
    }
    let bad = |_| ProvisionError::InvalidDsn("cannot set credentials".into());
    url.set_username(&grant.name).map_err(bad)?;
    url.set_password(Some(&grant.password)).map_err(bad)?;
    url.set_path(&format!("/{}", grant.name));
    Ok(url.to_string())
}

fn with_database(admin_dsn: &str, db: &str) -> Result<String, ProvisionError> {
    let mut url = url::Url::parse(admin_dsn).map_err(|e| ProvisionError::InvalidDsn(e.to_string()))?;
    url.set_path(&format!("/{db}"));
    Ok(url.to_string())
}

#[async_trait]
impl DatabaseProvisioner for PgProvisioner {
    async fn ensure_with_ca(
        &self,
        admin_dsn: &str,
        ca_pem: Option<&[u8]>,
        grant: &DatabaseGrant,
    ) -> Result<String, ProvisionError> {
        match ca_pem {
            Some(ca) => {
                PgProvisioner { ca_pem: Some(ca.to_vec()), ..self.clone() }.ensure(admin_dsn, grant).await
            }
            None => self.ensure(admin_dsn, grant).await,
        }
    }

    async fn drop_database_with_ca(
        &self,
        admin_dsn: &str,
        ca_pem: Option<&[u8]>,
        name: &str,
    ) -> Result<(), ProvisionError> {
        match ca_pem {
            Some(ca) => {
                PgProvisioner { ca_pem: Some(ca.to_vec()), ..self.clone() }
                    .drop_database(admin_dsn, name)
                    .await
            }
            None => self.drop_database(admin_dsn, name).await,
        }
    }

    async fn ensure(&self, admin_dsn: &str, grant: &DatabaseGrant) -> Result<String, ProvisionError> {
        let role = ident(&grant.name)?;
        let url = service_url(admin_dsn, grant)?;
        let admin = self.connect(admin_dsn).await?;
        if grant.password_current && self.in_place(&admin, admin_dsn, &grant.name).await? {
            return Ok(url);
        }
        let role_exists: bool = admin
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[&grant.name])
            .await?
            .get(0);
        // Least privilege: a plain login role; it owns its database and nothing else.
        let attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
        let verb = if role_exists { "ALTER" } else { "CREATE" };
        admin
            .batch_execute(&format!("{verb} ROLE {role} WITH {attrs} PASSWORD {}", literal(&grant.password)))
            .await?;
        // An admin without superuser (PostgreSQL ≥ 16 CREATEROLE) must be a member of the role
        // to hand it a database; harmless for a superuser.
        let _ = admin.batch_execute(&format!("GRANT {role} TO CURRENT_USER")).await;
        let db_exists: bool = admin
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", &[&grant.name])
            .await?
            .get(0);
        if !db_exists {
            admin.batch_execute(&format!("CREATE DATABASE {role} OWNER {role}")).await?;
        } else {
            admin.batch_execute(&format!("ALTER DATABASE {role} OWNER TO {role}")).await?;
        }
        admin.batch_execute(&format!("REVOKE ALL ON DATABASE {role} FROM PUBLIC")).await?;
        admin.batch_execute(&format!("GRANT CONNECT, TEMPORARY ON DATABASE {role} TO {role}")).await?;
        drop(admin);
        // Inside the database: the role owns the `public` schema, nobody else may create in it.
        let db = self.connect(&with_database(admin_dsn, &grant.name)?).await?;
        db.batch_execute(&format!("ALTER SCHEMA public OWNER TO {role}")).await?;
        db.batch_execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC").await?;
        Ok(url)
    }

    async fn drop_database(&self, admin_dsn: &str, name: &str) -> Result<(), ProvisionError> {
        let role = ident(name)?;
        let admin = self.connect(admin_dsn).await?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {role} WITH (FORCE)")).await?;
        admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await?;
        Ok(())
    }
}

/// The platform's topics: every topic of the event contract (`contract::events::topics::ALL`),
/// prefixed with [`names::topic_prefix`], then one dead-letter topic per consumer group and topic
/// it reads (`contract::consumer_subscriptions`, named by `dead_letter_topic`). Every service's
/// pairs, enabled or not: a service enabled later finds its dead-letter topics in place.
pub fn topic_names(sp: &ShopPlatform) -> Vec<String> {
    let prefix = names::topic_prefix(sp);
    let mut out: Vec<String> = events::topics::ALL.iter().map(|t| events::full_topic(&prefix, t)).collect();
    for (group, topic) in contract::consumer_subscriptions() {
        out.push(events::dead_letter_topic(&events::full_topic(&prefix, topic), group));
    }
    out
}

/// One topic to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub retention_ms: i64,
}

/// What [`TopicProvisioner::ensure_topics`] did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicReport {
    /// Topics created by this call.
    pub created: Vec<String>,
    /// Topics whose partition count was raised: `(topic, from, to)`.
    pub partitions_increased: Vec<(String, i32, i32)>,
    /// Existing topics whose `retention.ms` was set to the spec's.
    pub retention_updated: Vec<String>,
    /// Topics with more partitions than the spec asks for: `(topic, actual, desired)`. Partitions
    /// are never decreased (Kafka cannot, and keys would move to other partitions).
    pub not_decreased: Vec<(String, i32, i32)>,
    /// Differences the operator does not change (e.g. the replication factor of an existing
    /// topic, which needs a partition reassignment).
    pub warnings: Vec<String>,
}

impl TopicReport {
    /// A one-line summary for the `KafkaReady` message.
    pub fn summary(&self, total: usize) -> String {
        let mut parts = vec![format!("{total} topics present")];
        if !self.created.is_empty() {
            parts.push(format!("created {}", self.created.len()));
        }
        if !self.partitions_increased.is_empty() {
            let l: Vec<_> =
                self.partitions_increased.iter().map(|(t, a, b)| format!("{t} {a}→{b}")).collect();
            parts.push(format!("partitions increased: {}", l.join(", ")));
        }
        if !self.retention_updated.is_empty() {
            parts.push(format!("retention updated: {}", self.retention_updated.join(", ")));
        }
        if !self.not_decreased.is_empty() {
            let l: Vec<_> =
                self.not_decreased.iter().map(|(t, a, b)| format!("{t} has {a}, spec asks {b}")).collect();
            parts.push(format!("partitions are never decreased: {}", l.join(", ")));
        }
        parts.extend(self.warnings.iter().cloned());
        parts.join("; ")
    }
}

/// Where the admin API is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTarget {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// Whether the operator's Kafka security settings (TLS, SASL) apply: brokers of mode
    /// `external`. The embedded development broker is plaintext.
    pub secured: bool,
    /// The platform's own settings (`spec.kafka.security`): they replace the operator-wide
    /// ones for this target.
    pub security: Option<TargetSecurity>,
}

/// TLS and SASL of one platform's brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSecurity {
    pub tls: Option<kafka::TlsConfig>,
    pub sasl: Option<kafka::SaslConfig>,
}

/// Creates and deletes topics through the Kafka admin API (modes `external` and `embedded`).
/// Strimzi mode uses `KafkaTopic` objects instead ([`crate::builders::strimzi_topics`]).
#[async_trait]
pub trait TopicProvisioner: Send + Sync {
    /// Idempotently ensures every topic exists with at least its partitions and with its
    /// retention; raises partition counts, never lowers them.
    async fn ensure_topics(&self, target: &KafkaTarget, topics: &[TopicSpec]) -> Result<TopicReport, String>;
    /// Deletes the topics that exist (the deletion policy `Delete`); returns those deleted.
    async fn delete_topics(&self, target: &KafkaTarget, names: &[String]) -> Result<Vec<String>, String>;
}

/// The topics of `sp` with their settings.
pub fn topics(sp: &ShopPlatform) -> Vec<TopicSpec> {
    let t = &sp.spec.kafka.topics;
    // The embedded broker is a single node: a higher replication factor could not be placed.
    let replication_factor = if sp.spec.kafka.mode == KafkaMode::Embedded { 1 } else { t.replication_factor };
    topic_names(sp)
        .into_iter()
        .map(|name| TopicSpec {
            name,
            partitions: t.partitions,
            replication_factor,
            retention_ms: i64::from(t.retention_hours) * 3_600_000,
        })
        .collect()
}

/// The real topic provisioner: the operator's Kafka admin client ([`crate::kafka`]), one client
/// per call.
#[derive(Debug, Clone, Default)]
pub struct KafkaTopicProvisioner {
    /// Timeouts of connecting and of each request; TLS and SASL for [`KafkaTarget::secured`]
    /// brokers.
    pub connection: ConnectionConfig,
}

impl KafkaTopicProvisioner {
    /// With a timeout of connecting and of each request (plaintext, no SASL).
    pub fn with_timeout(timeout: Duration) -> Self {
        KafkaTopicProvisioner { connection: ConnectionConfig { timeout, ..ConnectionConfig::default() } }
    }

    async fn admin(&self, target: &KafkaTarget) -> Result<AdminClient, String> {
        let config = if let Some(sec) = &target.security {
            ConnectionConfig { tls: sec.tls.clone(), sasl: sec.sasl.clone(), ..self.connection.clone() }
        } else if target.secured {
            self.connection.clone()
        } else {
            ConnectionConfig { tls: None, sasl: None, ..self.connection.clone() }
        };
        AdminClient::connect(&target.bootstrap_servers, config)
            .await
            .map_err(|e| format!("kafka metadata: {e}"))
    }
}

/// `op: error` for a failed exchange (e.g. "create partitions: the broker does not offer
/// CreatePartitions …").
fn failed(op: &str) -> impl Fn(KafkaError) -> String + '_ {
    move |e| format!("{op}: {e}")
}

#[async_trait]
impl TopicProvisioner for KafkaTopicProvisioner {
    async fn ensure_topics(&self, target: &KafkaTarget, topics: &[TopicSpec]) -> Result<TopicReport, String> {
        let mut admin = self.admin(target).await?;
        let existing: HashMap<String, kafka::TopicMetadata> =
            admin.metadata(None).await.map_err(failed("kafka metadata"))?.topics.into_iter().collect();
        let mut report = TopicReport::default();

        // 1. Create what is missing ("already exists" is success: a concurrent creator, or
        //    metadata that lagged behind).
        let missing: Vec<kafka::NewTopic> = topics
            .iter()
            .filter(|t| !existing.contains_key(&t.name))
            .map(|t| kafka::NewTopic {
                name: t.name.clone(),
                partitions: t.partitions,
                replication_factor: i16::try_from(t.replication_factor).unwrap_or(i16::MAX),
                configs: vec![
                    ("retention.ms".into(), t.retention_ms.to_string()),
                    ("cleanup.policy".into(), "delete".into()),
                ],
            })
            .collect();
        if !missing.is_empty() {
            for (name, result) in admin.create_topics(&missing).await.map_err(failed("create topics"))? {
                match result {
                    Ok(()) => report.created.push(name),
                    Err(e) if e.code == ResponseError::TopicAlreadyExists => {}
                    Err(e) => return Err(format!("create topic {name}: {e}")),
                }
            }
        }

        // 2. Partitions: raise, never lower.
        let mut grow = Vec::new();
        for t in topics {
            let Some(e) = existing.get(&t.name) else { continue };
            if e.partitions < t.partitions {
                grow.push((t, e.partitions));
            } else if e.partitions > t.partitions {
                report.not_decreased.push((t.name.clone(), e.partitions, t.partitions));
            }
            if e.replication_factor != t.replication_factor && e.replication_factor > 0 {
                report.warnings.push(format!(
                    "{} has replication factor {}, spec asks {} (not changed: needs a partition reassignment)",
                    t.name, e.replication_factor, t.replication_factor
                ));
            }
        }
        if !grow.is_empty() {
            let totals: Vec<(String, i32)> =
                grow.iter().map(|(t, _)| (t.name.clone(), t.partitions)).collect();
            let results = admin.create_partitions(&totals).await.map_err(failed("create partitions"))?;
            for (name, result) in results {
                result.map_err(|e| format!("increase partitions of {name}: {e}"))?;
                if let Some((t, from)) = grow.iter().find(|(t, _)| t.name == name) {
                    report.partitions_increased.push((name, *from, t.partitions));
                }
            }
        }

        // 3. Retention of existing topics: read, and set only when it differs.
        let present: Vec<&TopicSpec> = topics.iter().filter(|t| existing.contains_key(&t.name)).collect();
        if !present.is_empty() {
            let names: Vec<String> = present.iter().map(|t| t.name.clone()).collect();
            // Every config of the topics (`keys: None`): tansu 0.6.0 cannot decode a
            // DescribeConfigs request that names keys.
            let described =
                admin.describe_topic_configs(&names, None).await.map_err(failed("describe configs"))?;
            let mut stale = Vec::new();
            for (name, configs) in described {
                let configs = configs.map_err(|e| format!("describe configs of {name}: {e}"))?;
                let Some(t) = present.iter().find(|t| t.name == name) else { continue };
                let current = configs.get("retention.ms").cloned().flatten();
                if current.as_deref() != Some(t.retention_ms.to_string().as_str()) {
                    // Every key the operator manages, so AlterConfigs (which replaces the dynamic
                    // configuration) loses nothing of ours either.
                    stale.push((
                        t.name.clone(),
                        vec![
                            ("retention.ms".to_string(), t.retention_ms.to_string()),
                            ("cleanup.policy".to_string(), "delete".to_string()),
                        ],
                    ));
                }
            }
            if !stale.is_empty() {
                for (name, result) in
                    admin.alter_topic_configs(&stale).await.map_err(failed("alter configs"))?
                {
                    result.map_err(|e| format!("set retention of {name}: {e}"))?;
                    report.retention_updated.push(name);
                }
            }
        }
        Ok(report)
    }

    async fn delete_topics(&self, target: &KafkaTarget, names: &[String]) -> Result<Vec<String>, String> {
        let mut admin = self.admin(target).await?;
        let existing = admin.metadata(None).await.map_err(failed("kafka metadata"))?.topics;
        let present: Vec<String> = names.iter().filter(|n| existing.contains_key(*n)).cloned().collect();
        if present.is_empty() {
            return Ok(Vec::new());
        }
        let mut deleted = Vec::new();
        for (name, result) in admin.delete_topics(&present).await.map_err(failed("delete topics"))? {
            match result {
                Ok(()) => deleted.push(name),
                Err(e) if e.code == ResponseError::UnknownTopicOrPartition => {}
                Err(e) => return Err(format!("delete topic {name}: {e}")),
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert_eq!(ident("prod_shop_auth").unwrap(), "\"prod_shop_auth\"");
        for bad in ["", "x\"; drop", "Upper", "1abc", &"a".repeat(64)] {
            assert!(ident(bad).is_err(), "{bad}");
        }
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn service_url_keeps_host_and_options() {
        let g = DatabaseGrant {
            name: "prod_shop_auth".into(),
            password: "pw123".into(),
            password_current: false,
        };
        assert_eq!(
            service_url("postgres://admin:secret@db.example:6432/postgres?sslmode=require", &g).unwrap(),
            "postgres://prod_shop_auth:pw123@db.example:6432/prod_shop_auth?sslmode=require"
        );
        assert!(service_url("mysql://x@y/z", &g).is_err());
        assert!(service_url("not a url", &g).is_err());
    }

    #[test]
    fn topics_come_from_the_kit_contract_with_the_platform_prefix() {
        let sp: ShopPlatform = serde_json::from_value(serde_json::json!({
            "apiVersion": "platform.shop/v1alpha1", "kind": "ShopPlatform",
            "metadata": {"name": "shop", "namespace": "ns"},
            "spec": {"version": "1", "payment": {"provider": "simulated"}, "kafka": {"topics": {"replicationFactor": 3, "partitions": 2}}},
        }))
        .unwrap();
        let names = topic_names(&sp);
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no topic twice");
        for t in events::topics::ALL {
            assert!(names.contains(&format!("shop-{t}")), "{t}");
        }
        for s in contract::ServiceName::ALL {
            for t in s.subscriptions() {
                assert!(names.contains(&format!("shop-{t}.dlq.{s}")), "{s} reads {t}");
            }
        }
        // Every logical topic once, plus one dead-letter topic per (group, topic) pair: 5 + 8.
        assert_eq!(names.len(), events::topics::ALL.len() + contract::consumer_subscriptions().count());
        assert_eq!(names.len(), 13);
        assert!(!names.iter().any(|n| n.ends_with(".dlq.shipment")), "no shipment service");
        // Spot checks, spelled out.
        for name in [
            "shop-orders",
            "shop-shipments",
            "shop-orders.dlq.payment",
            "shop-payments.dlq.inventory",
            "shop-payments.dlq.order",
            "shop-shipments.dlq.notification",
        ] {
            assert!(names.contains(&name.to_string()), "{name} in {names:?}");
        }
        // Embedded (the default mode) is one node: replication factor 1 whatever the spec says.
        assert!(topics(&sp).iter().all(|t| t.replication_factor == 1 && t.partitions == 2));
    }

    #[test]
    fn the_report_summary_names_what_happened() {
        let r = TopicReport {
            created: vec!["a".into()],
            partitions_increased: vec![("b".into(), 2, 4)],
            not_decreased: vec![("c".into(), 6, 3)],
            ..Default::default()
        };
        assert_eq!(
            r.summary(3),
            "3 topics present; created 1; partitions increased: b 2→4; partitions are never decreased: c has 6, spec asks 3"
        );
    }
}
