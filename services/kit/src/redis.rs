//! A Redis connection for state shared across replicas (the gateway's rate limits, the auth
//! service's login counters): a connection manager with short timeouts, connected at start-up
//! so that an unreachable Redis is a start-up error naming the key and the server.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Connects to `url` (named by `key` in errors); `what` says what the Redis is for ("the
/// rate-limit Redis"). Returns the connection and the URL with its password redacted.
pub async fn connect(
    url: &SecretString,
    key: &str,
    what: &str,
) -> anyhow::Result<(redis::aio::ConnectionManager, String)> {
    let url = url.expose_secret();
    let shown = crate::config::redact_url(url);
    let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("{key} ({shown}): {e}"))?;
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
