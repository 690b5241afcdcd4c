//! Idempotent seed accounts (the same accounts the demo data and docs refer to).

use std::time::{Duration, Instant};

use kit::auth::roles;
use kit::db::Db;
use serde::Serialize;

use crate::config::AuthConfig;
use crate::password::Hasher;
use crate::store::{NewUser, Store};

/// Number of generated customers `customer001@example.com` … `customer125@example.com`.
pub const GENERATED_CUSTOMERS: usize = 125;

/// What [`seed`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    /// Accounts created by this run.
    pub created: usize,
    /// Seed accounts that already existed (left untouched).
    pub existing: usize,
    /// Time spent hashing passwords.
    #[serde(with = "millis")]
    pub hashing: Duration,
    /// Total time.
    #[serde(with = "millis")]
    pub elapsed: Duration,
}

mod millis {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

struct SeedAccount {
    email: String,
    password: &'static str,
    first_name: String,
    last_name: String,
    role: &'static str,
}

fn accounts() -> Vec<SeedAccount> {
    let mut v = vec![
        SeedAccount {
            email: "admin@example.com".into(),
            password: "Admin123!",
            first_name: "Ada".into(),
            last_name: "Admin".into(),
            role: roles::ADMIN,
        },
        SeedAccount {
            email: "vendor@example.com".into(),
            password: "Vendor123!",
            first_name: "Victor".into(),
            last_name: "Vendor".into(),
            role: roles::VENDOR,
        },
        SeedAccount {
            email: "customer@example.com".into(),
            password: "Customer123!",
            first_name: "Casey".into(),
            last_name: "Customer".into(),
            role: roles::CUSTOMER,
        },
    ];
    v.extend((1..=GENERATED_CUSTOMERS).map(|i| SeedAccount {
        email: format!("customer{i:03}@example.com"),
        password: "Customer123!",
        first_name: "Customer".into(),
        last_name: format!("{i:03}"),
        role: roles::CUSTOMER,
    }));
    v
}

/// Creates the seed accounts that do not exist yet; existing accounts (even with changed
/// passwords or roles) are left alone, so running it again changes nothing.
///
/// Every hash has its own random salt; hashing runs on as many blocking threads as there are
/// CPUs (bounded, so argon2's memory cost is not multiplied by 128).
pub async fn seed(db: &Db, config: &AuthConfig) -> anyhow::Result<SeedReport> {
    let start = Instant::now();
    let store = Store::new(db.clone());
    let all = accounts();
    let emails: Vec<String> = all.iter().map(|a| a.email.clone()).collect();
    let existing = store.existing_emails(&emails).await?;
    let missing: Vec<SeedAccount> = all.into_iter().filter(|a| !existing.contains(&a.email)).collect();
    let mut report = SeedReport { existing: existing.len(), ..Default::default() };
    if missing.is_empty() {
        report.elapsed = start.elapsed();
        return Ok(report);
    }

    let hasher = Hasher::new(config)?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(missing.len());
    let passwords: Vec<&'static str> = missing.iter().map(|a| a.password).collect();
    let chunk = passwords.len().div_ceil(threads);
    let hash_start = Instant::now();
    let jobs: Vec<_> = passwords
        .chunks(chunk)
        .map(|c| {
            let c = c.to_vec();
            let hasher = hasher.clone();
            tokio::task::spawn_blocking(move || {
                c.iter().map(|p| hasher.hash_blocking(p)).collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    let mut hashes = Vec::with_capacity(passwords.len());
    for job in jobs {
        hashes.extend(job.await??);
    }
    report.hashing = hash_start.elapsed();

    for (a, hash) in missing.into_iter().zip(hashes) {
        let new = NewUser {
            email: a.email,
            password_hash: hash,
            first_name: Some(a.first_name),
            last_name: Some(a.last_name),
            roles: vec![a.role.to_string()],
            // Demo accounts have published passwords and addresses nobody reads: verified.
            email_verified: true,
        };
        if store.insert_user_if_absent(&new).await? {
            report.created += 1;
        } else {
            report.existing += 1; // created concurrently by another seeder
        }
    }
    report.elapsed = start.elapsed();
    tracing::info!(
        created = report.created,
        existing = report.existing,
        hashing_ms = report.hashing.as_millis() as u64,
        "auth seed done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    kit::db_tests! { crate::MIGRATIONS;
        async fn seeding_is_idempotent(db) {
            let config = AuthConfig::for_tests();
            let first = seed(&db, &config).await.unwrap();
            assert_eq!((first.created, first.existing), (128, 0));
            let again = seed(&db, &config).await.unwrap();
            assert_eq!((again.created, again.existing), (0, 128));

            let store = Store::new(db.clone());
            let admin = store.user_by_email("admin@example.com").await.unwrap().unwrap();
            assert_eq!(admin.roles(), vec!["admin"]);
            let vendor = store.user_by_email("vendor@example.com").await.unwrap().unwrap();
            assert_eq!(vendor.roles(), vec!["vendor"]);
            let c1 = store.user_by_email("customer001@example.com").await.unwrap().unwrap();
            let c125 = store.user_by_email("customer125@example.com").await.unwrap().unwrap();
            assert_eq!(c125.roles(), vec!["customer"]);
            assert_ne!(c1.password_hash, c125.password_hash, "unique salts");
            assert!(store.user_by_email("customer126@example.com").await.unwrap().is_none());
            let hasher = Hasher::new(&config).unwrap();
            assert!(hasher.verify("Customer123!".into(), Some(c125.password_hash)).await.unwrap());
            assert!(hasher.verify("Admin123!".into(), Some(admin.password_hash)).await.unwrap());
            let (_, total) = store.list_users(&Default::default(), 1, 0).await.unwrap();
            assert_eq!(total, 128);
        }
    }

    /// Measures seeding with the production argon2 parameters:
    /// `cargo test -p shop-auth seed_timing -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread")]
    #[ignore]
    async fn seed_timing_with_default_params() {
        let t = kit::testing::sqlite(&crate::MIGRATIONS).await;
        let config = AuthConfig::default();
        let h = Hasher::new(&config).unwrap();
        let one = Instant::now();
        h.hash_blocking("Customer123!").unwrap();
        let one = one.elapsed();
        let r = seed(&t.db, &config).await.unwrap();
        println!("one hash: {one:?}; seed: {r:?}");
        assert_eq!(r.created, 128);
    }
}
