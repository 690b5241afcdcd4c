//! Provisioning outside Kubernetes: per-service PostgreSQL databases and roles (real, through
//! `sqlx`), and Kafka topics (modelled; no implementation in this release). Both sit behind
//! traits so the reconcile tests can script them.

use async_trait::async_trait;
use kube::ResourceExt;
use sqlx::{Connection, Executor, PgConnection};

use crate::crd::ShopPlatform;
use crate::names::KAFKA_TOPICS;

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

/// The platform's topic names (`<platform>.<topic>`), plus nothing else yet (dead-letter topics
/// are per consumer group and come with the first consumer).
pub fn topic_names(sp: &ShopPlatform) -> Vec<String> {
    KAFKA_TOPICS.iter().map(|t| format!("{}.{t}", sp.name_any())).collect()
}

/// One topic to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub retention_ms: i64,
}

/// Creates topics through the Kafka admin API (mode `external`/`embedded`). Strimzi mode uses
/// `KafkaTopic` objects instead ([`crate::builders::strimzi_topics`]). No implementation in this
/// release: no service uses Kafka yet, and CI has no broker.
#[async_trait]
pub trait TopicProvisioner: Send + Sync {
    async fn ensure_topics(&self, bootstrap_servers: &str, topics: &[TopicSpec]) -> Result<(), String>;
}

/// The topics of `sp` with their settings.
pub fn topics(sp: &ShopPlatform) -> Vec<TopicSpec> {
    let t = &sp.spec.kafka.topics;
    topic_names(sp)
        .into_iter()
        .map(|name| TopicSpec {
            name,
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            retention_ms: i64::from(t.retention_hours) * 3_600_000,
        })
        .collect()
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
}
