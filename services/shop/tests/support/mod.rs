//! What the end-to-end tests share: serving an app on a free port, settings, logins, and
//! PostgreSQL databases for services that run apart.
#![allow(dead_code)]

use std::net::SocketAddr;

use serde_json::{json, Value};
use shop::settings::Settings;

pub mod smtp;

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
    }
}

pub async fn spawn(app: axum::Router) -> Running {
    spawn_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), app).await
}

/// [`spawn`] on a listener bound earlier (a peer that must know the address before it starts).
pub async fn spawn_on(listener: tokio::net::TcpListener, app: axum::Router) -> Running {
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kit::http::serve_on(listener, app, async {
        let _ = rx.await;
    }));
    Running { addr, stop: Some(tx), task }
}

pub fn test_settings(data_dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        data_dir: data_dir.to_path_buf(),
        auth: shop_auth::AuthConfig::for_tests(),
        ..Default::default()
    };
    s.notification.admin_emails = vec!["ops@example.com".into()];
    // Mail goes to the binary's SMTP test server: sign-ups read their verification link there.
    s.notification.smtp = Some(smtp::smtp_config());
    // Every client of these tests is 127.0.0.1: the per-address budgets (their own tests are in
    // the auth and gateway crates) would otherwise throttle the flows.
    s.auth.login_max_attempts_per_ip = 10_000;
    s.gateway.rate_limit.auth_per_minute = 10_000;
    s.gateway.rate_limit.failed_auth_per_minute = 10_000;
    s.payment.provider = Some(shop_payment::ProviderKind::Simulated);
    s
}

pub fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("shop-e2e-{}", uuid_like()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

pub async fn login(c: &reqwest::Client, base: &Running, email: &str, password: &str) -> String {
    let res = c
        .post(base.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login as {email}");
    let v: Value = res.json().await.unwrap();
    v["accessToken"].as_str().unwrap().to_string()
}

/// A fresh PostgreSQL database for a service running apart; dropped by the guard.
pub struct PgDb {
    admin: String,
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create() -> PgDb {
        use sqlx::Connection;
        let admin = kit::testing::postgres_admin_url();
        let name = format!("shop_test_{}", uuid_like());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL test server");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        PgDb { admin, name, url: url.to_string() }
    }
    pub async fn drop_now(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}
