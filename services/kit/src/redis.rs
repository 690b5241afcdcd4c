//! A Redis connection for state shared across replicas (the gateway's rate limits, the auth
//! service's login counters): a connection manager with short timeouts, connected at start-up
//! so that an unreachable Redis is a start-up error naming the key and the server. A
//! `rediss://` server is verified against the web PKI roots, or against the CA file given
//! (`SHOP_REDIS_CA_FILE` for the platform's Redis), as the cart's Redis is.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// The CA certificates (PEM) that verify a `rediss://` server, and the key that named them.
#[derive(Debug, Clone, Copy)]
pub struct Ca<'a> {
    pub file: &'a Path,
    pub key: &'a str,
}

/// Connects to `url` (named by `key` in errors); `what` says what the Redis is for ("the
/// rate-limit Redis"); `ca` verifies a `rediss://` server instead of the web PKI roots (a CA
/// with a `redis://` URL is refused: it would silently not be used). Returns the connection
/// and the URL with its password redacted.
pub async fn connect(
    url: &SecretString,
    key: &str,
    what: &str,
    ca: Option<Ca<'_>>,
) -> anyhow::Result<(redis::aio::ConnectionManager, String)> {
    let url = url.expose_secret();
    let shown = crate::config::redact_url(url);
    let tls = url.starts_with("rediss://");
    let client = match ca {
        Some(ca) if !tls => anyhow::bail!(
            "{} is set but {key} ({shown}) is not a rediss:// URL: use rediss:// for TLS",
            ca.key
        ),
        Some(ca) => {
            let pem = crate::db::read_ca_file(ca.file, ca.key).map_err(|e| anyhow::anyhow!("{e}"))?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem) },
            )
        }
        None => redis::Client::open(url),
    }
    .map_err(|e| anyhow::anyhow!("{key} ({shown}): {e}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(1);
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        redis::aio::ConnectionManager::new_with_config(client, config),
    )
    .await
    .map_err(|_| anyhow::anyhow!("{what} at {shown} did not answer within 10s"))?
    .map_err(|e| anyhow::anyhow!("cannot connect to {what} at {shown}: {e}"))?;
    Ok((conn, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the TLS tests need scripts/tls-test-servers. Run \
                 `scripts/tls-test-servers start` and export the lines of `scripts/tls-test-servers env`"
            )
        })
    }

    /// The TLS-only test Redis (`scripts/tls-test-servers`, started by `scripts/test`) signed by
    /// a private CA: verified with the CA file, refused without it.
    #[tokio::test]
    async fn a_private_ca_verifies_a_tls_redis() {
        let (url, ca) = (env("SHOP_TEST_TLS_REDIS_URL"), env("SHOP_TEST_TLS_CA_FILE"));
        let url = SecretString::from(url);
        let ca = Ca { file: Path::new(&ca), key: "SHOP_REDIS_CA_FILE" };
        let (mut conn, _) = connect(&url, "SHOP_REDIS_URL", "the test Redis", Some(ca)).await.unwrap();
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        assert_eq!(pong, "PONG");
        let refused = connect(&url, "SHOP_REDIS_URL", "the test Redis", None).await.map(|_| ()).unwrap_err();
        assert!(refused.to_string().contains("cannot connect"), "{refused}");
        let plain = SecretString::from("redis://127.0.0.1:6379");
        let err =
            connect(&plain, "SHOP_REDIS_URL", "the test Redis", Some(ca)).await.map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("not a rediss:// URL"), "{err}");
    }
}
