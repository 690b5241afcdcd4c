//! Test helpers: a fresh, migrated database per test on each backend.
//!
//! PostgreSQL tests create a new database `shop_test_<uuid>` through the admin URL in
//! `SHOP_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and drop
//! it afterwards; SQLite tests use a temporary file. Use [`db_tests!`](crate::db_tests) to run
//! one test body on both.

use std::path::PathBuf;

use sqlx::Connection;

use crate::db::{Db, Migrations, PoolSettings};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A migrated database that is removed when dropped. Use it on a multi-threaded runtime
/// (as [`db_tests!`](crate::db_tests) does): dropping it closes the pool from another thread,
/// which needs the test's runtime to keep running.
pub struct TestDb {
    pub db: Db,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite { path: PathBuf },
}

pub fn postgres_admin_url() -> String {
    std::env::var("SHOP_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// A fresh SQLite database in a temporary file.
pub async fn sqlite(migrations: &Migrations) -> TestDb {
    let path = std::env::temp_dir().join(format!("shop-test-{}.db", uuid::Uuid::new_v4().simple()));
    let db = Db::connect(&format!("sqlite://{}", path.display()), &PoolSettings::default())
        .await
        .expect("open SQLite test database");
    db.migrate(migrations).await.expect("migrate SQLite test database");
    TestDb { db, cleanup: Cleanup::Sqlite { path } }
}

/// A fresh PostgreSQL database on the test server.
pub async fn postgres(migrations: &Migrations) -> TestDb {
    let admin_url = postgres_admin_url();
    let name = format!("shop_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL test server unreachable at {admin_url} (set SHOP_TEST_POSTGRES_URL): {e}")
    });
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create test database");
    let _ = admin.close().await;
    let mut url = url::Url::parse(&admin_url).expect("admin URL");
    url.set_path(&name);
    let db = Db::connect(url.as_str(), &PoolSettings { max_connections: 20, ..Default::default() })
        .await
        .expect("connect to test database");
    db.migrate(migrations).await.expect("migrate PostgreSQL test database");
    TestDb { db, cleanup: Cleanup::Postgres { admin_url, name } }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let db = self.db.clone();
        match &self.cleanup {
            Cleanup::Sqlite { path } => {
                let path = path.clone();
                std::thread::spawn(move || {
                    run_blocking(async move { db.close().await });
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                    }
                })
                .join()
                .ok();
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                std::thread::spawn(move || {
                    run_blocking(async move {
                        db.close().await;
                        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut admin)
                                .await;
                        }
                    })
                })
                .join()
                .ok();
            }
        }
    }
}

fn run_blocking<F: std::future::Future<Output = ()>>(f: F) {
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
        rt.block_on(f);
    }
}

/// Runs each test body on SQLite and on PostgreSQL, as `name::sqlite` and `name::postgres`.
///
/// ```ignore
/// kit::db_tests! { MIGRATIONS;
///     async fn creates_product(db) { let store = Store::new(db); … }
/// }
/// ```
#[macro_export]
macro_rules! db_tests {
    ($migrations:expr; $( $(#[$meta:meta])* async fn $name:ident($db:ident) $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($db: $crate::db::Db) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let t = $crate::testing::sqlite(&$migrations).await;
                    run(t.db.clone()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let t = $crate::testing::postgres(&$migrations).await;
                    run(t.db.clone()).await;
                }
            }
        )*
    };
}
