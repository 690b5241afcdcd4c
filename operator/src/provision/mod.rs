//! Provisioning outside Kubernetes: per-service PostgreSQL databases and roles (through `sqlx`)
//! and Kafka topics (through rdkafka's `AdminClient`). Both sit behind traits so the reconcile
//! tests can script them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kit::events::contract;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, OwnedResourceSpecifier,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use sqlx::{Connection, Executor, PgConnection};

use crate::crd::{KafkaMode, ShopPlatform};
use crate::names;

/// One service's database: a database owned by a login role of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseGrant {
    /// Database and role name (a valid PostgreSQL identifier, `[a-z0-9_]`).
    pub name: String,
    /// The role's password.
    pub password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("invalid admin DSN: {0}")]
    InvalidDsn(String),
    #[error("invalid identifier `{0}` (only [a-z0-9_] allowed)")]
    InvalidIdentifier(String),
    #[error("database server: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Creates and drops per-service databases with an admin connection.
#[async_trait]
pub trait DatabaseProvisioner: Send + Sync {
    /// Idempotently ensures the role (LOGIN, with this password) and its database exist, and
    /// returns the service's connection URL.
    async fn ensure(&self, admin_dsn: &str, grant: &DatabaseGrant) -> Result<String, ProvisionError>;
    /// Drops the database and role if they exist.
    async fn drop_database(&self, admin_dsn: &str, name: &str) -> Result<(), ProvisionError>;
}

/// The real provisioner: plain SQL over one admin connection per call.
#[derive(Debug, Default, Clone)]
pub struct PgProvisioner;

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
    async fn ensure(&self, admin_dsn: &str, grant: &DatabaseGrant) -> Result<String, ProvisionError> {
        let role = ident(&grant.name)?;
        let url = service_url(admin_dsn, grant)?;
        let mut admin = PgConnection::connect(admin_dsn).await?;
        let role_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&grant.name)
                .fetch_one(&mut admin)
                .await?;
        // Least privilege: a plain login role; it owns its database and nothing else.
        let attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
        let verb = if role_exists { "ALTER" } else { "CREATE" };
        admin
            .execute(
                format!("{verb} ROLE {role} WITH {attrs} PASSWORD {}", literal(&grant.password)).as_str(),
            )
            .await?;
        // An admin without superuser (PostgreSQL ≥ 16 CREATEROLE) must be a member of the role
        // to hand it a database; harmless for a superuser.
        let _ = admin.execute(format!("GRANT {role} TO CURRENT_USER").as_str()).await;
        let db_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&grant.name)
                .fetch_one(&mut admin)
                .await?;
        if !db_exists {
            admin.execute(format!("CREATE DATABASE {role} OWNER {role}").as_str()).await?;
        } else {
            admin.execute(format!("ALTER DATABASE {role} OWNER TO {role}").as_str()).await?;
        }
        admin.execute(format!("REVOKE ALL ON DATABASE {role} FROM PUBLIC").as_str()).await?;
        admin.execute(format!("GRANT CONNECT, TEMPORARY ON DATABASE {role} TO {role}").as_str()).await?;
        admin.close().await?;
        // Inside the database: the role owns the `public` schema, nobody else may create in it.
        let mut db = PgConnection::connect(&with_database(admin_dsn, &grant.name)?).await?;
        db.execute(format!("ALTER SCHEMA public OWNER TO {role}").as_str()).await?;
        db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC").await?;
        db.close().await?;
        Ok(url)
    }

    async fn drop_database(&self, admin_dsn: &str, name: &str) -> Result<(), ProvisionError> {
        let role = ident(name)?;
        let mut admin = PgConnection::connect(admin_dsn).await?;
        admin.execute(format!("DROP DATABASE IF EXISTS {role} WITH (FORCE)").as_str()).await?;
        admin.execute(format!("DROP ROLE IF EXISTS {role}").as_str()).await?;
        admin.close().await?;
        Ok(())
    }
}

/// The platform's topics: every topic of the kit's event contract (`kit::events::contract`),
/// prefixed with [`names::topic_prefix`], then one dead-letter topic per consumer group and topic
/// it reads ([`names::CONSUMER_GROUPS`], named by `contract::dead_letter_topic`).
pub fn topic_names(sp: &ShopPlatform) -> Vec<String> {
    let prefix = names::topic_prefix(sp);
    let mut out: Vec<String> =
        contract::topics::ALL.iter().map(|t| contract::full_topic(&prefix, t)).collect();
    for (group, topics) in names::CONSUMER_GROUPS {
        for t in *topics {
            out.push(contract::dead_letter_topic(&contract::full_topic(&prefix, t), group));
        }
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

/// Creates topics through the Kafka admin API (modes `external` and `embedded`). Strimzi mode
/// uses `KafkaTopic` objects instead ([`crate::builders::strimzi_topics`]).
#[async_trait]
pub trait TopicProvisioner: Send + Sync {
    /// Idempotently ensures every topic exists with at least its partitions and with its
    /// retention; raises partition counts, never lowers them.
    async fn ensure_topics(
        &self,
        bootstrap_servers: &str,
        topics: &[TopicSpec],
    ) -> Result<TopicReport, String>;
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

/// The real topic provisioner: rdkafka's `AdminClient`, one client per call.
#[derive(Debug, Clone)]
pub struct KafkaTopicProvisioner {
    /// Timeout of each admin request and of the metadata request.
    pub timeout: Duration,
    /// Extra librdkafka properties (e.g. `security.protocol`), applied last.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaTopicProvisioner {
    fn default() -> Self {
        KafkaTopicProvisioner { timeout: Duration::from_secs(15), properties: BTreeMap::new() }
    }
}

/// Partition and replica count of an existing topic, from the cluster metadata.
#[derive(Debug, Clone, Copy)]
struct Existing {
    partitions: i32,
    replication_factor: i32,
}

impl KafkaTopicProvisioner {
    fn admin(&self, bootstrap_servers: &str) -> Result<AdminClient<DefaultClientContext>, String> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", bootstrap_servers)
            .set("client.id", "shop-operator")
            .set("socket.timeout.ms", self.timeout.as_millis().to_string());
        for (k, v) in &self.properties {
            cc.set(k, v);
        }
        cc.create().map_err(|e| format!("kafka admin client: {e}"))
    }

    /// Every topic of the cluster with its partition and replica count.
    async fn existing(
        &self,
        admin: &Arc<AdminClient<DefaultClientContext>>,
    ) -> Result<HashMap<String, Existing>, String> {
        let admin = admin.clone();
        let timeout = self.timeout;
        let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
            .await
            .map_err(|e| format!("metadata task: {e}"))?
            .map_err(|e| format!("kafka metadata: {e}"))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let replication_factor =
                    t.partitions().first().map(|p| p.replicas().len() as i32).unwrap_or(0);
                (
                    t.name().to_string(),
                    Existing { partitions: t.partitions().len() as i32, replication_factor },
                )
            })
            .collect())
    }
}

#[async_trait]
impl TopicProvisioner for KafkaTopicProvisioner {
    async fn ensure_topics(
        &self,
        bootstrap_servers: &str,
        topics: &[TopicSpec],
    ) -> Result<TopicReport, String> {
        let admin = Arc::new(self.admin(bootstrap_servers)?);
        let opts =
            AdminOptions::new().request_timeout(Some(self.timeout)).operation_timeout(Some(self.timeout));
        let existing = self.existing(&admin).await?;
        let mut report = TopicReport::default();

        // 1. Create what is missing ("already exists" is success: a concurrent creator, or
        //    metadata that lagged behind).
        let retention: Vec<String> = topics.iter().map(|t| t.retention_ms.to_string()).collect();
        let missing: Vec<(usize, &TopicSpec)> =
            topics.iter().enumerate().filter(|(_, t)| !existing.contains_key(&t.name)).collect();
        if !missing.is_empty() {
            let new: Vec<NewTopic<'_>> = missing
                .iter()
                .map(|(i, t)| {
                    NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication_factor))
                        .set("retention.ms", &retention[*i])
                        .set("cleanup.policy", "delete")
                })
                .collect();
            for r in admin.create_topics(&new, &opts).await.map_err(|e| format!("create topics: {e}"))? {
                match r {
                    Ok(name) => report.created.push(name),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => return Err(format!("create topic {name}: {code}")),
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
            let new: Vec<NewPartitions<'_>> =
                grow.iter().map(|(t, _)| NewPartitions::new(&t.name, t.partitions as usize)).collect();
            let results =
                admin.create_partitions(&new, &opts).await.map_err(|e| format!("create partitions: {e}"))?;
            for (r, (t, from)) in results.into_iter().zip(&grow) {
                match r {
                    Ok(_) => report.partitions_increased.push((t.name.clone(), *from, t.partitions)),
                    Err((name, code)) => return Err(format!("increase partitions of {name}: {code}")),
                }
            }
        }

        // 3. Retention of existing topics: read, and set only when it differs.
        let present: Vec<&TopicSpec> = topics.iter().filter(|t| existing.contains_key(&t.name)).collect();
        if !present.is_empty() {
            let specs: Vec<ResourceSpecifier<'_>> =
                present.iter().map(|t| ResourceSpecifier::Topic(&t.name)).collect();
            let described =
                admin.describe_configs(&specs, &opts).await.map_err(|e| format!("describe configs: {e}"))?;
            let mut stale = Vec::new();
            for (r, t) in described.into_iter().zip(&present) {
                let resource = r.map_err(|code| format!("describe configs of {}: {code}", t.name))?;
                let current = resource.get("retention.ms").and_then(|e| e.value.clone());
                if current.as_deref() != Some(t.retention_ms.to_string().as_str()) {
                    stale.push((*t, t.retention_ms.to_string()));
                }
            }
            if !stale.is_empty() {
                // AlterConfigs replaces the topic's dynamic configuration: state all of it.
                let alter: Vec<AlterConfig<'_>> = stale
                    .iter()
                    .map(|(t, ms)| {
                        AlterConfig::new(ResourceSpecifier::Topic(&t.name))
                            .set("retention.ms", ms)
                            .set("cleanup.policy", "delete")
                    })
                    .collect();
                for r in
                    admin.alter_configs(&alter, &opts).await.map_err(|e| format!("alter configs: {e}"))?
                {
                    match r {
                        Ok(OwnedResourceSpecifier::Topic(name)) => report.retention_updated.push(name),
                        Ok(other) => report.retention_updated.push(format!("{other:?}")),
                        Err((spec, code)) => return Err(format!("set retention of {spec:?}: {code}")),
                    }
                }
            }
        }
        Ok(report)
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
        let g = DatabaseGrant { name: "prod_shop_auth".into(), password: "pw123".into() };
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
            "spec": {"version": "1", "kafka": {"topics": {"replicationFactor": 3, "partitions": 2}}},
        }))
        .unwrap();
        let names = topic_names(&sp);
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no topic twice");
        for t in contract::topics::ALL {
            assert!(names.contains(&format!("shop-{t}")), "{t}");
        }
        for (group, topics) in names::CONSUMER_GROUPS {
            for t in *topics {
                assert!(contract::topics::ALL.contains(t), "{group} reads unknown topic {t}");
                assert!(names.contains(&format!("shop-{t}.dlq.{group}")));
            }
        }
        // Every logical topic once, plus one dead-letter topic per (group, topic) pair.
        let dead_letters: usize = names::CONSUMER_GROUPS.iter().map(|(_, topics)| topics.len()).sum();
        assert_eq!(names.len(), contract::topics::ALL.len() + dead_letters);
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
