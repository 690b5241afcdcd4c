//! Passwords: policy and argon2id hashing (on the blocking thread pool).

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use kit::problem::FieldError;

use crate::config::AuthConfig;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// Checks the password policy: 8..=128 characters with an upper-case letter, a lower-case
/// letter and a digit. Returns one field error per broken rule.
pub fn policy_errors(field: &str, password: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |m: &str| errors.push(FieldError { field: field.to_string(), message: m.to_string() });
    let len = password.chars().count();
    if len < MIN_LEN {
        err("must be at least 8 characters long");
    }
    if len > MAX_LEN {
        err("must be at most 128 characters long");
    }
    if !password.chars().any(|c| c.is_ascii_uppercase()) {
        err("must contain an upper-case letter (A-Z)");
    }
    if !password.chars().any(|c| c.is_ascii_lowercase()) {
        err("must contain a lower-case letter (a-z)");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        err("must contain a digit");
    }
    errors
}

/// Hashes and verifies passwords with argon2id and the configured parameters.
#[derive(Clone)]
pub struct Hasher {
    argon: Arc<Argon2<'static>>,
    /// A hash of a random password with the current parameters: verifying against it makes a
    /// login for an unknown account cost the same as one for a known account.
    dummy: Arc<String>,
}

impl Hasher {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let params =
            Params::new(config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism, None)
                .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_password = uuid::Uuid::new_v4().to_string();
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon
            .hash_password(dummy_password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?
            .to_string();
        Ok(Hasher { argon: Arc::new(argon), dummy: Arc::new(dummy) })
    }

    /// Hashes synchronously (call from a blocking context).
    pub fn hash_blocking(&self, password: &str) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    }

    /// Hashes on the blocking thread pool.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_blocking(&password)).await?
    }

    /// Verifies `password` against `hash` (a PHC string; its own parameters apply), or against
    /// the dummy hash when `hash` is `None` — always doing the argon2 work, always `false` then.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let real = hash.is_some();
            let phc = hash.unwrap_or_else(|| this.dummy.to_string());
            let ok = match PasswordHash::new(&phc) {
                Ok(parsed) => this.argon.verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(e) => {
                    tracing::error!(error = %e, "stored password hash is not a PHC string");
                    false
                }
            };
            ok && real
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(policy_errors("password", "Secret123").is_empty());
        assert_eq!(policy_errors("password", "short1A").len(), 1);
        assert_eq!(policy_errors("password", "alllowercase").len(), 2);
        assert_eq!(policy_errors("password", &format!("Aa1{}", "x".repeat(126))).len(), 1);
        assert_eq!(policy_errors("password", "").len(), 4);
    }

    #[tokio::test]
    async fn hashes_with_unique_salts_and_verifies() {
        let h = Hasher::new(&AuthConfig::for_tests()).unwrap();
        let a = h.hash("Secret123".into()).await.unwrap();
        let b = h.hash("Secret123".into()).await.unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        assert!(h.verify("Secret123".into(), Some(a.clone())).await);
        assert!(!h.verify("Secret124".into(), Some(a)).await);
        assert!(!h.verify("anything".into(), None).await);
        assert!(!h.verify("anything".into(), Some("garbage".into())).await);
    }

    #[test]
    fn rejects_bad_params() {
        let c = AuthConfig { argon2_memory_kib: 1, ..AuthConfig::for_tests() };
        assert!(Hasher::new(&c).is_err());
    }
}
