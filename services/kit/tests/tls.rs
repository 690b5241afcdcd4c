//! TLS to PostgreSQL against the TLS-only server of `scripts/tls-test-servers` (`hostssl` only,
//! `hostnossl … reject`), with the CA that signed its certificate and an unrelated "wrong" CA.
//! Like every real-dependency test, these fail (not skip) without the servers: `scripts/test`
//! starts them; by hand, `scripts/tls-test-servers start` and export its `env` lines.

use std::path::PathBuf;

use kit::db::{Db, DbError, PoolSettings};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the TLS tests need scripts/tls-test-servers. Run \
             `scripts/tls-test-servers start` and export the lines of `scripts/tls-test-servers env`"
        )
    })
}

/// The TLS-only server's URL with a password (which trust authentication never asks for), so
/// that every error can be checked for not showing it.
fn pg_url(query: &str) -> String {
    let base = url::Url::parse(&env("SHOP_TEST_TLS_POSTGRES_URL")).expect("SHOP_TEST_TLS_POSTGRES_URL");
    let mut url = base.clone();
    url.set_password(Some("hunter2")).unwrap();
    if !query.is_empty() {
        url.set_query(Some(query));
    }
    url.to_string()
}

/// `localhost:<port>` of the TLS-only server: what errors must name.
fn server() -> String {
    let url = url::Url::parse(&env("SHOP_TEST_TLS_POSTGRES_URL")).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

fn ca() -> String {
    env("SHOP_TEST_TLS_CA_FILE")
}

fn wrong_ca() -> String {
    env("SHOP_TEST_TLS_WRONG_CA_FILE")
}

fn settings(ca_file: Option<String>) -> PoolSettings {
    PoolSettings { max_connections: 2, ca_file: ca_file.map(PathBuf::from), ..Default::default() }
}

async fn connect(url: &str, ca_file: Option<String>) -> Result<Db, DbError> {
    Db::connect(url, &settings(ca_file)).await
}

fn assert_names_server_not_password(msg: &str) {
    assert!(msg.contains(&server()), "names the server {}: {msg}", server());
    assert!(!msg.contains("hunter2"), "never the password: {msg}");
}

#[tokio::test]
async fn verify_full_with_the_right_ca_is_encrypted() {
    let db = connect(&pg_url(&format!("sslmode=verify-full&sslrootcert={}", ca())), None).await.unwrap();
    assert_eq!(db.encrypted().await.unwrap(), Some(true), "pg_stat_ssl.ssl for our own backend");
    db.close().await;
}

#[tokio::test]
async fn verify_full_with_the_wrong_ca_fails_naming_the_key_and_the_server() {
    let err = connect(&pg_url(&format!("sslmode=verify-full&sslrootcert={}", wrong_ca())), None)
        .await
        .expect_err("a certificate from another CA is refused");
    let msg = err.to_string();
    assert_names_server_not_password(&msg);
    assert!(msg.contains("sslmode=verify-full"), "{msg}");
    assert!(msg.contains("sslrootcert") && msg.contains(&wrong_ca()), "names the key and the file: {msg}");
    assert!(msg.to_lowercase().contains("certificate"), "says what failed: {msg}");
}

#[tokio::test]
async fn the_ca_file_setting_alone_verifies_the_server() {
    // No sslmode in the URL: SHOP_DATABASE_CA_FILE makes it verify-full (libpq would `prefer`,
    // which does not verify and would accept the wrong CA below).
    let db = connect(&pg_url(""), Some(ca())).await.unwrap();
    assert_eq!(db.encrypted().await.unwrap(), Some(true));
    db.close().await;

    let err = connect(&pg_url(""), Some(wrong_ca())).await.expect_err("the wrong CA is refused");
    let msg = err.to_string();
    assert_names_server_not_password(&msg);
    assert!(msg.contains("sslmode=verify-full"), "{msg}");
    assert!(msg.contains("SHOP_DATABASE_CA_FILE") && msg.contains(&wrong_ca()), "{msg}");
}

#[tokio::test]
async fn the_url_sslmode_wins_over_the_ca_file_default() {
    // An explicit sslmode is kept: `require` encrypts without verifying, whatever the CA file.
    let db = connect(&pg_url("sslmode=require"), Some(wrong_ca())).await.unwrap();
    assert_eq!(db.encrypted().await.unwrap(), Some(true));
    db.close().await;
}

#[tokio::test]
async fn require_connects_encrypted_without_a_ca() {
    let db = connect(&pg_url("sslmode=require"), None).await.unwrap();
    assert_eq!(db.encrypted().await.unwrap(), Some(true));
    db.close().await;
}

#[tokio::test]
async fn prefer_encrypts_when_the_server_offers_tls() {
    // The default mode (no sslmode, no CA): before TLS was built in, `prefer` silently connected
    // in cleartext, which this server refuses.
    let db = connect(&pg_url(""), None).await.unwrap();
    assert_eq!(db.encrypted().await.unwrap(), Some(true));
    db.close().await;
}

#[tokio::test]
async fn verify_full_without_a_ca_uses_the_web_pki_roots_and_refuses_a_private_ca() {
    let err = connect(&pg_url("sslmode=verify-full"), None).await.expect_err("test CA is not a web PKI root");
    let msg = err.to_string();
    assert_names_server_not_password(&msg);
    assert!(msg.contains("web PKI roots"), "{msg}");
}

#[tokio::test]
async fn disable_is_refused_by_a_tls_only_server() {
    let err = connect(&pg_url("sslmode=disable"), None).await.expect_err("cleartext is rejected (hostnossl)");
    let msg = err.to_string();
    assert_names_server_not_password(&msg);
    assert!(msg.contains("sslmode=disable"), "{msg}");
    assert!(msg.contains("no encryption"), "the server's pg_hba refusal: {msg}");
}

#[tokio::test]
async fn an_unreadable_ca_file_fails_before_connecting_naming_the_key() {
    let err = connect(&pg_url(""), Some("/nonexistent/ca.pem".into())).await.expect_err("missing CA file");
    let msg = err.to_string();
    assert!(msg.contains("SHOP_DATABASE_CA_FILE") && msg.contains("/nonexistent/ca.pem"), "{msg}");

    let not_pem = std::env::temp_dir().join(format!("shop-not-a-ca-{}.txt", uuid::Uuid::new_v4().simple()));
    std::fs::write(&not_pem, "hello").unwrap();
    let err = connect(&pg_url("sslmode=verify-ca"), Some(not_pem.display().to_string()))
        .await
        .expect_err("a file without a certificate");
    let _ = std::fs::remove_file(&not_pem);
    let msg = err.to_string();
    assert!(msg.contains("SHOP_DATABASE_CA_FILE") && msg.contains("no PEM certificate"), "{msg}");

    let err = connect(&pg_url("sslmode=verify-full&sslrootcert=/nonexistent/root.crt"), None)
        .await
        .expect_err("missing sslrootcert");
    let msg = err.to_string();
    assert!(msg.contains("sslrootcert") && msg.contains("/nonexistent/root.crt"), "{msg}");
}

#[tokio::test]
async fn the_plain_test_server_and_sqlite_answer_too() {
    // The machine's PostgreSQL (SHOP_TEST_POSTGRES_URL) answers the same query; SQLite says None.
    let sqlite = Db::connect("sqlite::memory:", &PoolSettings::default()).await.unwrap();
    assert_eq!(sqlite.encrypted().await.unwrap(), None);
    sqlite.close().await;
    let admin = Db::connect(&kit::testing::postgres_admin_url(), &PoolSettings::default()).await.unwrap();
    assert!(admin.encrypted().await.unwrap().is_some());
    admin.close().await;
}
