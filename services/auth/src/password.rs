//! Passwords: policy and argon2id hashing, never more at once than the hasher has permits (one
//! per CPU by default): each computation holds `m` KiB, so the permits bound argon2's memory
//! (`permits × m`), whatever the number of concurrent logins. A request waits at most the queue
//! timeout for a permit, then gets [`Busy`].
//!
//! The computations run on the hasher's own threads, one per permit, never on tokio's blocking
//! pool: the allocator keeps a freed 19 MiB block in the arena of the thread that used it, so
//! argon2 spread over the pool's many threads kept one block per thread resident (100
//! concurrent logins: +420 MiB of peak RSS with two permits), while a fixed set of threads reuses
//! its blocks (`cargo bench -p shop-auth --bench login_memory`).

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// No argon2 permit became free within the queue timeout: answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated; retry shortly")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// Starts `n` threads that run jobs until every sender is gone.
fn start_threads(n: usize) -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || loop {
            let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            // A panicking job answers nobody (its caller gets `Busy`); the thread lives on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "an argon2 thread could not be started");
        }
    }
    tx
}

/// Hashes and verifies passwords with argon2id and the configured parameters.
#[derive(Clone)]
pub struct Hasher {
    argon: Arc<Argon2<'static>>,
    /// A hash of a random password with the current parameters: verifying against it makes a
    /// login for an unknown account cost the same as one for a known account.
    dummy: Arc<String>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Jobs for the hasher's threads (as many as permits).
    jobs: std::sync::mpsc::Sender<Job>,
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
            jobs: start_threads(max_permits),
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

    /// Runs `work` on the hasher's threads once a permit is free (waiting at most the queue
    /// timeout).
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let permit =
            match tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    metrics::counter!(kit::contract::metrics::AUTH_HASHING_BUSY.name).increment(1);
                    return Err(Busy);
                }
            };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = work();
            drop(permit);
            let _ = tx.send(out);
        });
        self.jobs.send(job).map_err(|_| Busy)?;
        rx.await.map_err(|_| Busy)
    }

    /// Hashes synchronously (call from a blocking context), in this thread's reusable memory.
    pub fn hash_blocking(&self, password: &str) -> anyhow::Result<String> {
        let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("argon2 hashing failed: {e}");
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(|e| fail(&e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2_into(&self.argon, password.as_bytes(), salt_bytes, &mut out).map_err(|e| fail(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon.params()).map_err(|e| fail(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
        };
        Ok(phc.to_string())
    }

    /// Hashes on the hasher's threads (within the permits).
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
                Ok(parsed) => verify_phc(password.as_bytes(), &parsed),
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

thread_local! {
    /// argon2's working memory for this thread, reused from one computation to the next (the
    /// hasher's threads each keep one block of `m` KiB; nothing is freed and allocated again).
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `argon` over `password` and `salt` into `out`, in this thread's reusable memory. Every block
/// is written before it is read, so what a previous computation left there does not matter.
fn argon2_into(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        let needed = argon.params().block_count();
        if blocks.len() != needed {
            blocks.clear();
            blocks.shrink_to_fit();
            blocks.resize(needed, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..])
    })
}

/// Whether `password` matches the PHC hash, with the hash's own algorithm, version and
/// parameters; the comparison is constant-time (`Output`'s equality).
fn verify_phc(password: &[u8], parsed: &PasswordHash<'_>) -> bool {
    let check = || -> Option<bool> {
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let mut out = vec![0u8; expected.len()];
        argon2_into(&Argon2::new(algorithm, version, params), password, salt, &mut out).ok()?;
        Some(Output::new(&out).ok()? == expected)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_memory_hashes_are_standard_phc_strings() {
        use argon2::password_hash::PasswordVerifier as _;
        let h = Hasher::new(&AuthConfig::for_tests()).unwrap();
        let a = h.hash_blocking("Secret123").unwrap();
        let b = h.hash_blocking("Other1234").unwrap();
        // The argon2 crate's own verifier accepts them …
        for (phc, pw) in [(&a, "Secret123"), (&b, "Other1234")] {
            Argon2::default().verify_password(pw.as_bytes(), &PasswordHash::new(phc).unwrap()).unwrap();
        }
        // … and hashes made by it (other parameters too) verify here; wrong ones do not.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default().hash_password(b"Theirs123", &salt).unwrap().to_string();
        let parsed = PasswordHash::new(&theirs).unwrap();
        assert!(verify_phc(b"Theirs123", &parsed));
        assert!(!verify_phc(b"Theirs124", &parsed));
        assert!(verify_phc(b"Secret123", &PasswordHash::new(&a).unwrap()), "after a larger block set");
    }

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
