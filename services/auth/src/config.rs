//! `AuthConfig`: every tunable of the auth service, loaded by the composer from
//! `SHOP_AUTH__<FIELD>` (e.g. `SHOP_AUTH__ACCESS_TOKEN_TTL_SECS=600`) with `kit::config::load`.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Configuration of the auth service. Every field has a default (`#[serde(default)]`), so a
/// partial configuration is valid.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Lifetime of access tokens (JWT `exp - iat`), in seconds. Default 900 (15 min).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds; every rotation issues a new token with a fresh
    /// lifetime, never beyond the session's `session_max_lifetime_secs`. Default 2,592,000
    /// (30 days).
    pub refresh_token_ttl_secs: u64,
    /// `iss` claim of issued access tokens. Default `shop-auth` (what verifiers expect).
    pub issuer: String,
    /// `aud` claim of issued access tokens. Default `shop-api`.
    pub audience: String,
    /// Current signing key: an Ed25519 private key as a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    /// When absent (embedded mode), a key is generated on first start and persisted in the
    /// auth database (`signing_keys`), then reused across restarts.
    /// Env: `SHOP_AUTH__JWT_SIGNING_KEY`.
    #[serde(serialize_with = "ser_opt_secret")]
    pub jwt_signing_key: Option<SecretString>,
    /// Previous keys still published in the JWKS so that tokens they signed keep verifying
    /// until they expire (rotation without downtime). Each entry is an Ed25519 PKCS#8 private
    /// key PEM, an SPKI public key PEM (`-----BEGIN PUBLIC KEY-----`) or a JWK (JSON object).
    /// They are never used to sign. Env: `SHOP_AUTH__JWT_PREVIOUS_KEYS='["-----BEGIN …"]'`.
    #[serde(serialize_with = "ser_vec_secret")]
    pub jwt_previous_keys: Vec<SecretString>,
    /// Argon2id memory cost in KiB. Default 19,456 (19 MiB, OWASP recommendation).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (time cost). Default 2 (OWASP).
    pub argon2_iterations: u32,
    /// Argon2id lanes (parallelism). Default 1 (OWASP).
    pub argon2_parallelism: u32,
    /// Argon2id computations allowed at once; 0 (default): one per CPU. With the memory cost this
    /// bounds the memory argon2 can take (`permits × ARGON2_MEMORY_KIB`).
    pub argon2_max_concurrent: u32,
    /// How long a request waits for an argon2 permit before it gets 503 with `Retry-After`.
    /// Default 1,000 ms.
    pub argon2_queue_timeout_ms: u64,
    /// Failed logins per (account, client address) that cost nothing; after them every failure
    /// doubles the wait before that pair's next attempt (`LOGIN_DELAY_BASE_MS`, capped at
    /// `LOGIN_DELAY_MAX_SECS`). Default 5; 0 disables.
    pub login_free_failures: u32,
    /// The first wait after the free failures, in ms. Default 1,000.
    pub login_delay_base_ms: u64,
    /// The longest wait of one (account, client address), in seconds. Default 900 (15 min).
    pub login_delay_max_secs: u64,
    /// Failed logins per account, from every address together, that cost nothing (a
    /// distributed guess); after them every attempt on the account waits, doubling from
    /// `LOGIN_DELAY_BASE_MS` up to `LOGIN_ACCOUNT_DELAY_MAX_SECS`. Default 100; 0 disables.
    pub login_account_free_failures: u32,
    /// The longest wait of an account under a distributed guess. Default 60 (never a lock-out).
    pub login_account_delay_max_secs: u64,
    /// Failure counters are forgotten after this long without a failure. Default 900.
    pub login_failure_window_secs: u64,
    /// Login attempts (successful or not; registrations, password resets and changes count too)
    /// allowed per client IP within `login_ip_window_secs`. Default 20; 0 disables.
    pub login_max_attempts_per_ip: u32,
    /// Sliding window of the per-IP attempt count, in seconds. Default 60.
    pub login_ip_window_secs: u64,
    /// Keys each in-memory throttle keeps at most (least recently used go first). Default 100,000.
    pub login_throttle_max_keys: usize,
    /// Redis shared by every auth replica for the failure counters (`SHOP_REDIS_URL` unless set
    /// here); unset: each process counts for itself.
    #[serde(skip_serializing)]
    pub redis_url: Option<SecretString>,
    /// CA certificates (PEM) that verify a `rediss://` `redis_url` instead of the web PKI roots
    /// (`SHOP_REDIS_CA_FILE` when the platform's Redis is used).
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// Prefix of the auth service's Redis keys.
    pub redis_prefix: String,
    /// Longest life of a session from its sign-in, whatever the refreshes; then the user signs
    /// in again. Default 7,776,000 (90 days).
    pub session_max_lifetime_secs: u64,
    /// Life of a mailed password-reset token. Default 1,800 (30 min).
    pub password_reset_ttl_secs: u64,
    /// Life of a mailed email-verification token. Default 172,800 (48 h).
    pub email_verification_ttl_secs: u64,
    /// Security emails (reset links, verification links, "someone tried to register") per address
    /// per hour; further requests answer the same but send nothing. Default 5.
    pub mails_per_address_per_hour: u32,
    /// Unverified accounts cannot sign in (they get the same 401 as a wrong password, and a new
    /// verification link when the password was right). Default false: they may sign in, browse
    /// and fill a cart, but not check out.
    pub login_requires_verified_email: bool,
    /// How many proxies of our own append to `X-Forwarded-For` in front of this service.
    /// 0 (default): the client IP is the TCP peer address (`ConnectInfo`), or, when that is
    /// unknown, the first `X-Forwarded-For` entry. N > 0: the client IP is the N-th entry
    /// from the right of `X-Forwarded-For` (entries further left are client-controlled and
    /// ignored), falling back to the peer address. Set 1 when this service runs in its own
    /// process behind the gateway (which appends its peer's address), 2 with an ingress
    /// controller in front of the gateway, and so on.
    pub trusted_proxy_hops: u32,
    /// How often every process that verifies tokens pulls the revocation feed, in ms (the auth
    /// service pulls its own database). A revoked token is refused within about this long.
    /// Default 2,000.
    pub revocation_poll_ms: u64,
    /// The credential that reads the revocation feed (`x-internal-token`); the composer gives
    /// the platform's (`SHOP_INTERNAL_TOKEN`). Unset: the feed answers nobody.
    #[serde(skip_serializing)]
    pub internal_token: Option<SecretString>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            issuer: kit::contract::DEFAULT_JWT_ISSUER.to_string(),
            audience: kit::contract::DEFAULT_JWT_AUDIENCE.to_string(),
            jwt_signing_key: None,
            jwt_previous_keys: Vec::new(),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            argon2_max_concurrent: 0,
            argon2_queue_timeout_ms: 1000,
            login_free_failures: 5,
            login_delay_base_ms: 1000,
            login_delay_max_secs: 15 * 60,
            login_account_free_failures: 100,
            login_account_delay_max_secs: 60,
            login_failure_window_secs: 15 * 60,
            login_max_attempts_per_ip: 20,
            login_ip_window_secs: 60,
            login_throttle_max_keys: 100_000,
            redis_url: None,
            redis_ca_file: None,
            redis_prefix: "shop:auth:".into(),
            session_max_lifetime_secs: 90 * 24 * 3600,
            password_reset_ttl_secs: 30 * 60,
            email_verification_ttl_secs: 48 * 3600,
            mails_per_address_per_hour: 5,
            login_requires_verified_email: false,
            trusted_proxy_hops: 0,
            revocation_poll_ms: 2000,
            internal_token: None,
        }
    }
}

impl AuthConfig {
    /// Argon2 permits: the configured number, or one per CPU.
    pub fn argon2_permits(&self) -> usize {
        match self.argon2_max_concurrent {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n as usize,
        }
    }

    /// How long access tokens issued now may still be presented (lifetime + the verifiers'
    /// 30 s leeway + a margin): the revocation feed's window.
    pub fn revocation_window_ms(&self) -> i64 {
        i64::try_from(self.access_token_ttl_secs.saturating_add(90).saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Cheap argon2 parameters for tests (m = 1 MiB, t = 1, p = 1). Never use in production.
    pub fn for_tests() -> Self {
        AuthConfig {
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            ..Default::default()
        }
    }
}

// Secrets are serialised in clear so that a serialised configuration round-trips (e.g. as
// figment defaults); their `Debug` output stays `[REDACTED]`. Never log a serialised `AuthConfig`.
fn ser_opt_secret<S: serde::Serializer>(s: &Option<SecretString>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.expose_secret()),
        None => ser.serialize_none(),
    }
}

fn ser_vec_secret<S: serde::Serializer>(v: &[SecretString], ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_seq(v.iter().map(|s| s.expose_secret()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_redact() {
        let mut c =
            AuthConfig { jwt_signing_key: Some(SecretString::from("pem-secret")), ..Default::default() };
        c.jwt_previous_keys.push(SecretString::from("old-secret"));
        assert!(!format!("{c:?}").contains("secret\""), "Debug redacts secrets");
        let json = serde_json::to_string(&c).unwrap();
        let back: AuthConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.jwt_signing_key.unwrap().expose_secret(), "pem-secret");
        assert_eq!(back.jwt_previous_keys[0].expose_secret(), "old-secret");
        let partial: AuthConfig = serde_json::from_str(r#"{"access_token_ttl_secs": 60}"#).unwrap();
        assert_eq!(partial.access_token_ttl_secs, 60);
        assert_eq!(partial.argon2_memory_kib, 19_456);
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;
    use kit::auth::SigningKey;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Composer {
        auth: AuthConfig,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's signature
    fn pem_keys_load_from_the_environment() {
        let current = SigningKey::generate().to_pem();
        let previous = SigningKey::generate();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SHOP_AUTH__JWT_SIGNING_KEY", &current);
            let list = format!(
                "[{:?}, {:?}]",
                previous.to_pem(),
                serde_json::to_string(&previous.public_jwk()).unwrap()
            );
            jail.set_env("SHOP_AUTH__JWT_PREVIOUS_KEYS", &list);
            jail.set_env("SHOP_AUTH__ACCESS_TOKEN_TTL_SECS", "600");
            jail.set_env("SHOP_AUTH__TRUSTED_PROXY_HOPS", "1");
            let c: Composer = kit::config::load().unwrap();
            assert_eq!(c.auth.access_token_ttl_secs, 600);
            assert_eq!(c.auth.trusted_proxy_hops, 1);
            assert_eq!(c.auth.argon2_memory_kib, 19_456);
            let key = SigningKey::from_pem(c.auth.jwt_signing_key.as_ref().unwrap().expose_secret()).unwrap();
            assert_eq!(key.kid(), SigningKey::from_pem(&current).unwrap().kid());
            assert_eq!(c.auth.jwt_previous_keys.len(), 2);
            for k in &c.auth.jwt_previous_keys {
                assert_eq!(crate::keys::parse_public(k.expose_secret()).unwrap(), previous.public_jwk());
            }
            Ok(())
        });
    }
}
