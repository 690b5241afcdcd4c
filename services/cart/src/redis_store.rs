//! The Redis cart store: one hash per cart at `<prefix><cart id>`, two fields per line
//! (`q:<product id>` → quantity, `s:<product id>` → the JSON snapshot), a key TTL refreshed on
//! every write. Every read-modify-write is one Lua script, so Redis runs it atomically: no
//! lost update however many requests change one cart at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use uuid::Uuid;

use crate::store::*;

/// KEYS[1] cart; ARGV: product id, quantity, max quantity, max lines, ttl ms, snapshot JSON.
/// Returns {quantity, created} or {-1, 0} when the cart is full.
const ADD: &str = r#"
local qf = 'q:' .. ARGV[1]
local q = redis.call('HGET', KEYS[1], qf)
local created = 0
if not q then
  if redis.call('HLEN', KEYS[1]) / 2 >= tonumber(ARGV[4]) then
    return {-1, 0}
  end
  redis.call('HSET', KEYS[1], 's:' .. ARGV[1], ARGV[6])
  q = 0
  created = 1
end
local n = math.min(tonumber(q) + tonumber(ARGV[2]), tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], qf, n)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {n, created}
"#;

/// KEYS[1] cart; ARGV: product id, quantity, ttl ms. Returns 1 when the line existed.
const SET: &str = r#"
local qf = 'q:' .. ARGV[1]
if redis.call('HEXISTS', KEYS[1], qf) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], qf, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// KEYS[1] cart; ARGV: product id, ttl ms. Returns 1 when the line existed.
const REMOVE: &str = r#"
local n = redis.call('HDEL', KEYS[1], 'q:' .. ARGV[1], 's:' .. ARGV[1])
if n > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n > 0 then return 1 end
return 0
"#;

/// KEYS[1] from, KEYS[2] into; ARGV: max quantity, max lines, ttl ms. Lines of `from` are
/// taken in product-id order (deterministic when the target fills up); quantities are summed
/// and capped; new lines beyond the line limit are dropped; `from` is deleted.
/// Returns {merged, dropped}.
const MERGE: &str = r#"
local src = redis.call('HGETALL', KEYS[1])
local maxq = tonumber(ARGV[1])
local maxl = tonumber(ARGV[2])
local lines = {}
local snaps = {}
for i = 1, #src, 2 do
  local f = src[i]
  local kind = string.sub(f, 1, 2)
  local id = string.sub(f, 3)
  if kind == 'q:' then lines[#lines + 1] = {id, tonumber(src[i + 1])} end
  if kind == 's:' then snaps[id] = src[i + 1] end
end
table.sort(lines, function(a, b) return a[1] < b[1] end)
local merged, dropped = 0, 0
local count = redis.call('HLEN', KEYS[2]) / 2
for _, l in ipairs(lines) do
  local qf = 'q:' .. l[1]
  local cur = redis.call('HGET', KEYS[2], qf)
  if cur then
    redis.call('HSET', KEYS[2], qf, math.min(tonumber(cur) + l[2], maxq))
    merged = merged + 1
  elseif count < maxl and snaps[l[1]] then
    redis.call('HSET', KEYS[2], qf, math.min(l[2], maxq), 's:' .. l[1], snaps[l[1]])
    count = count + 1
    merged = merged + 1
  else
    dropped = dropped + 1
  end
end
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return {merged, dropped}
"#;

/// The Redis implementation of [`CartStore`].
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    add: Script,
    set: Script,
    remove: Script,
    merge: Script,
}

/// Where the cart's Redis is and which CA verifies it, with the configuration keys both came
/// from, so that every error names them ([`crate::CartConfig::redis_target`]).
#[derive(Clone, Debug)]
pub struct RedisTarget {
    /// `redis://…` (cleartext) or `rediss://…` (TLS).
    pub url: secrecy::SecretString,
    /// The key that set `url`: `SHOP_CART__REDIS_URL` or `SHOP_REDIS_URL`.
    pub url_key: String,
    /// CA certificates (PEM) that verify the server instead of the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// The key that set `ca_file`: `SHOP_CART__REDIS_CA_FILE` or `SHOP_REDIS_CA_FILE`.
    pub ca_key: String,
}

impl RedisTarget {
    /// A target without a CA file (the web PKI roots verify `rediss://` servers).
    pub fn url(url: &str, url_key: &str) -> RedisTarget {
        RedisTarget { url: url.into(), url_key: url_key.into(), ca_file: None, ca_key: String::new() }
    }
}

/// `host:port` of a Redis URL, for messages (never the password).
fn server_of(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    format!("{host}:{}", url.port().unwrap_or(6379))
}

impl RedisStore {
    /// Connects to `url` (`redis://…` or `rediss://…`); every key starts with `prefix` (e.g.
    /// `shop:cart:`). `rediss://` servers are verified against the web PKI roots.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisStore> {
        Self::connect_to(&RedisTarget::url(url, "the Redis URL"), prefix).await
    }

    /// Connects to `target`; errors name its keys and the server, never the password.
    pub async fn connect_to(target: &RedisTarget, prefix: &str) -> anyhow::Result<RedisStore> {
        use secrecy::ExposeSecret;
        let raw = target.url.expose_secret();
        let key = &target.url_key;
        let parsed = url::Url::parse(raw)
            .map_err(|e| anyhow::anyhow!("{key}: invalid Redis URL {}: {e}", kit::config::redact_url(raw)))?;
        let server = server_of(&parsed);
        let tls = match parsed.scheme() {
            "rediss" => true,
            "redis" => false,
            other => anyhow::bail!(
                "{key}: unsupported Redis URL scheme `{other}` (expected redis:// or rediss://)"
            ),
        };
        if parsed.fragment().is_some() {
            anyhow::bail!(
                "{key}: Redis URL fragments (`#insecure`) are not supported: TLS is always verified"
            );
        }
        let client = match (&target.ca_file, tls) {
            (Some(_), false) => anyhow::bail!(
                "{} is set but {key} ({server}) is not a rediss:// URL: use rediss:// for TLS",
                target.ca_key
            ),
            (Some(file), true) => {
                let pem = read_ca(file, &target.ca_key)?;
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
                redis::Client::build_with_tls(raw, certs)
            }
            (None, _) => redis::Client::open(raw),
        }
        .map_err(|e| anyhow::anyhow!("{key}: invalid Redis URL {}: {e}", kit::config::redact_url(raw)))?;
        let how = match (&target.ca_file, tls) {
            (_, false) => "in cleartext".to_string(),
            (Some(file), true) => format!("over TLS, CA from {} {}", target.ca_key, file.display()),
            (None, true) => "over TLS, CA from the built-in web PKI roots".to_string(),
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn =
            tokio::time::timeout(Duration::from_secs(10), ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|_| anyhow::anyhow!("Redis at {server} ({key}, {how}) did not answer within 10s"))?
                .map_err(|e| anyhow::anyhow!("cannot connect to Redis at {server} ({key}, {how}): {e}"))?;
        let host = parsed.host_str().unwrap_or_default();
        if tls {
            tracing::info!(%server, "Redis connection encrypted (TLS)");
        } else if kit::db::is_loopback_host(host) {
            tracing::info!(%server, "Redis connection in cleartext (loopback)");
        } else {
            tracing::warn!(
                %server,
                "Redis connection is NOT ENCRYPTED: carts and the password cross the network in \
                 cleartext. Use a rediss:// URL in {key} (and a CA file for a private CA)"
            );
        }
        Ok(RedisStore {
            conn,
            prefix: prefix.to_string(),
            add: Script::new(ADD),
            set: Script::new(SET),
            remove: Script::new(REMOVE),
            merge: Script::new(MERGE),
        })
    }

    fn key(&self, cart: &str) -> String {
        format!("{}{cart}", self.prefix)
    }
}

/// Reads a PEM file of CA certificates; the error names `key` and the path.
fn read_ca(path: &Path, key: &str) -> anyhow::Result<Vec<u8>> {
    kit::db::read_ca_file(path, key).map_err(|e| anyhow::anyhow!("{e}"))
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[async_trait::async_trait]
impl CartStore for RedisStore {
    async fn lines(&self, cart: &str) -> StoreResult<Vec<StoredLine>> {
        let mut conn = self.conn.clone();
        let all: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.key(cart)).query_async(&mut conn).await?;
        let mut lines = Vec::new();
        for (field, value) in &all {
            let Some(id) = field.strip_prefix("q:") else { continue };
            let (Ok(product_id), Ok(quantity)) = (Uuid::parse_str(id), value.parse::<i64>()) else {
                continue;
            };
            let Some(snapshot) = all.get(&format!("s:{id}")).and_then(|s| serde_json::from_str(s).ok())
            else {
                tracing::warn!(cart, product_id = %id, "cart line without a readable snapshot ignored");
                continue;
            };
            lines.push(StoredLine { product_id, quantity, snapshot });
        }
        lines.sort_by_key(|l| (l.snapshot.added_at, l.product_id));
        Ok(lines)
    }

    async fn add(
        &self,
        cart: &str,
        product_id: Uuid,
        quantity: i64,
        snapshot: &LineSnapshot,
        limits: Limits,
        ttl: Duration,
    ) -> StoreResult<AddOutcome> {
        let mut conn = self.conn.clone();
        let snap = serde_json::to_string(snapshot).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (n, created): (i64, i64) = self
            .add
            .key(self.key(cart))
            .arg(product_id.to_string())
            .arg(quantity)
            .arg(limits.max_quantity)
            .arg(limits.max_lines)
            .arg(ttl_ms(ttl))
            .arg(snap)
            .invoke_async(&mut conn)
            .await?;
        Ok(if n < 0 {
            AddOutcome::TooManyLines
        } else {
            AddOutcome::Added { quantity: n, created: created == 1 }
        })
    }

    async fn set_quantity(
        &self,
        cart: &str,
        product_id: Uuid,
        quantity: i64,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .set
            .key(self.key(cart))
            .arg(product_id.to_string())
            .arg(quantity)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    async fn remove(&self, cart: &str, product_id: Uuid, ttl: Duration) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .remove
            .key(self.key(cart))
            .arg(product_id.to_string())
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    async fn clear(&self, cart: &str) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL").arg(self.key(cart)).query_async(&mut conn).await?;
        Ok(())
    }

    async fn merge(
        &self,
        from: &str,
        into: &str,
        limits: Limits,
        ttl: Duration,
    ) -> StoreResult<MergeOutcome> {
        if from == into {
            return Ok(MergeOutcome::default());
        }
        let mut conn = self.conn.clone();
        let (merged, dropped): (i64, i64) = self
            .merge
            .key(self.key(from))
            .key(self.key(into))
            .arg(limits.max_quantity)
            .arg(limits.max_lines)
            .arg(ttl_ms(ttl))
            .invoke_async(&mut conn)
            .await?;
        Ok(MergeOutcome { merged: merged as usize, dropped: dropped as usize })
    }

    async fn ttl(&self, cart: &str) -> StoreResult<Option<Duration>> {
        let mut conn = self.conn.clone();
        let ms: i64 = redis::cmd("PTTL").arg(self.key(cart)).query_async(&mut conn).await?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }

    async fn purge_expired(&self) -> StoreResult<u64> {
        Ok(0)
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
