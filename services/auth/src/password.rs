//! Passwords: policy and argon2id hashing, on the blocking thread pool and never more at once
//! than the hasher has permits (one per CPU by default): each computation holds `m` KiB, so the
//! permits bound argon2's memory (`permits × m`), whatever the number of concurrent logins. A
//! request waits at most the queue timeout for a permit, then gets [`Busy`].

use std::sync::Arc;
use std::time::Duration;

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
    if !password.chars().any(|c| c.is_uppercase()) {
        err("must contain an upper-case letter");
    }
    if !password.chars().any(|c| c.is_lowercase()) {
        err("must contain a lower-case letter");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        err("must contain a digit");
    }
    errors
}

/// No argon2 permit became free within the queue timeout: answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated; retry shortly")]
pub struct Busy;

/// Hashes and verifies passwords with argon2id and the configured parameters.
#[derive(Clone)]
pub struct Hasher {
    argon: Arc<Argon2<'static>>,
    /// A hash of a random password with the current parameters: verifying against it makes a
    /// login for an unknown account cost the same as one for a known account.
    dummy: Arc<String>,
    permits: Arc<tokio::sync::Semaphore>,
    max_permits: usize,
    queue_timeout: Duration,
    memory_kib: u32,
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
        let max_permits = config.argon2_permits().max(1);
        Ok(Hasher {
            argon: Arc::new(argon),
            dummy: Arc::new(dummy),
            permits: Arc::new(tokio::sync::Semaphore::new(max_permits)),
            max_permits,
            queue_timeout: Duration::from_millis(config.argon2_queue_timeout_ms),
            memory_kib: config.argon2_memory_kib,
        })
    }

    /// How many computations may run at once.
    pub fn permits(&self) -> usize {
        self.max_permits
    }

    /// The most memory argon2 can hold at once, in bytes (`permits × m`).
    pub fn memory_bound_bytes(&self) -> u64 {
        self.max_permits as u64 * u64::from(self.memory_kib) * 1024
    }

    /// Runs `work` on the blocking pool once a permit is free (waiting at most the queue
    /// timeout).
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let permit =
            match tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    metrics::counter!("auth_password_hashing_busy_total").increment(1);
                    return Err(Busy);
                }
            };
        let out = tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await;
        out.map_err(|_| Busy)
    }

    /// Hashes synchronously (call from a blocking context).
    pub fn hash_blocking(&self, password: &str) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    }

    /// Hashes on the blocking thread pool (within the permits).
    pub async fn hash(&self, password: String) -> Result<anyhow::Result<String>, Busy> {
        let this = self.clone();
        self.run(move || this.hash_blocking(&password)).await
    }

    /// Verifies `password` against `hash` (a PHC string; its own parameters apply), or against
    /// the dummy hash when `hash` is `None` — always doing the argon2 work, always `false` then.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Busy> {
        let this = self.clone();
        self.run(move || {
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
        let a = h.hash("Secret123".into()).await.unwrap().unwrap();
        let b = h.hash("Secret123".into()).await.unwrap().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{a}");
        assert!(h.verify("Secret123".into(), Some(a.clone())).await.unwrap());
        assert!(!h.verify("Secret124".into(), Some(a)).await.unwrap());
        assert!(!h.verify("anything".into(), None).await.unwrap());
        assert!(!h.verify("anything".into(), Some("garbage".into())).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permits_bound_concurrency_and_the_queue_times_out() {
        let c =
            AuthConfig { argon2_max_concurrent: 2, argon2_queue_timeout_ms: 50, ..AuthConfig::for_tests() };
        let h = Hasher::new(&c).unwrap();
        assert_eq!(h.permits(), 2);
        assert_eq!(h.memory_bound_bytes(), 2 * 1024 * 1024);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (h, running, peak, gate) = (h.clone(), running.clone(), peak.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                h.run(move || {
                    let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    let _ = gate.lock().unwrap().recv();
                    running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
                .await
            }));
        }
        while running.load(std::sync::atomic::Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Both permits are (being) taken: a third caller gives up after the queue timeout.
        let third = h.verify("x".into(), None).await;
        assert_eq!(third, Err(Busy));
        release.send(()).unwrap();
        release.send(()).unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 2);
        assert!(h.verify("x".into(), None).await.is_ok(), "permits come back");
    }

    #[test]
    fn rejects_bad_params() {
        let c = AuthConfig { argon2_memory_kib: 1, ..AuthConfig::for_tests() };
        assert!(Hasher::new(&c).is_err());
    }
}
