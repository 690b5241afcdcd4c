//! The shop as a user meets it: through the gateway, over real HTTP, in both modes.

use std::net::SocketAddr;
use std::time::Duration;

use kit::contract::ServiceName;
use serde_json::{json, Value};
use shop::compose;
use shop::settings::{DbScope, Settings};

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
    }
}

async fn spawn(app: axum::Router) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kit::http::serve_on(listener, app, async {
        let _ = rx.await;
    }));
    Running { addr, stop: Some(tx), task }
}

fn test_settings(data_dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        data_dir: data_dir.to_path_buf(),
        auth: shop_auth::AuthConfig::for_tests(),
        ..Default::default()
    };
    s.notification.admin_emails = vec!["ops@example.com".into()];
    s
}

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("shop-e2e-{}", uuid_like()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

async fn login(c: &reqwest::Client, base: &Running, email: &str, password: &str) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_serves_the_seeded_shop() {
    let dir = temp_dir();
    let settings = test_settings(&dir);
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let c = reqwest::Client::new();

    let res = c.get(shop.url("/api/v1/products?pageSize=5")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    // Every 60th seeded product is inactive and hidden from the public list.
    assert_eq!(page["total"], 590);
    let first = &page["items"][0];
    assert!(first["price"]["amount"].is_i64() && first["price"]["currency"] == "USD");

    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/docs/"] {
        let res = c.get(shop.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let doc: Value = c.get(shop.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    for p in ["/api/v1/products", "/api/v1/products/{id}", "/api/v1/auth/login", "/api/v1/auth/register"] {
        assert!(doc["paths"].get(p).is_some(), "OpenAPI documents {p}");
    }
    let metrics = c.get(shop.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"route="/api/v1/products""#), "metrics by route");

    // The seeded admin manages the catalog through the gateway; a customer may not.
    let admin = login(&c, &shop, "admin@example.com", "Admin123!").await;
    let customer = login(&c, &shop, "customer@example.com", "Customer123!").await;
    let category = page["items"][0]["category"]["id"].clone();
    let new_product = json!({
        "name": "Gateway Test Lamp", "sku": "GW-LAMP-1", "description": "A lamp",
        "price": { "amount": 4999, "currency": "USD" }, "categoryId": category,
    });
    let res =
        c.post(shop.url("/api/v1/products")).bearer_auth(&customer).json(&new_product).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = c.post(shop.url("/api/v1/products")).json(&new_product).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res =
        c.post(shop.url("/api/v1/products")).bearer_auth(&admin).json(&new_product).send().await.unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let created: Value =
        c.get(shop.url("/api/v1/products/gateway-test-lamp")).send().await.unwrap().json().await.unwrap();
    assert_eq!(created["sku"], "GW-LAMP-1");

    // Bad input is a problem document, never a 500.
    let res = c
        .post(shop.url("/api/v1/products"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = c.get(shop.url("/api/v1/products?pageSize=abc")).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let res = c.get(shop.url("/api/v1/products/00000000-0000-0000-0000-000000000000")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // Events cross services in one process: an admin writes stock off below its reorder level;
    // inventory's outbox relay publishes `inventory.low_stock` on the in-process bus, and the
    // notification service sends the admins an alert.
    let stock: Value = c
        .get(shop.url("/api/v1/inventory?pageSize=50"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let above = stock["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["availableQuantity"].as_i64() > s["reorderLevel"].as_i64())
        .unwrap_or_else(|| panic!("a product above its reorder level: {stock}"));
    let product = above["productId"].as_str().unwrap().to_string();
    let available = above["availableQuantity"].as_i64().unwrap();
    let res = c
        .post(shop.url(&format!("/api/v1/inventory/{product}/adjust")))
        .bearer_auth(&admin)
        .json(&json!({ "type": "DAMAGE", "quantity": available, "reason": "water damage" }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
    let mut alerts = Value::Null;
    for _ in 0..100 {
        alerts = c
            .get(shop.url("/api/v1/notifications/admin/all?type=LOW_STOCK_ALERT"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if alerts["items"].as_array().is_some_and(|a| a.iter().any(|n| n["status"] == "SENT")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = alerts["items"].as_array().unwrap().iter().find(|n| n["status"] == "SENT");
    assert!(sent.is_some(), "a low-stock alert reached the admins: {alerts}");

    shop.stop().await;
    running.stop().await;

    // A restart on the same data directory keeps the data and seeds nothing twice.
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let page: Value =
        c.get(shop.url("/api/v1/products?pageSize=1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["total"], 591);
    let again = login(&c, &shop, "admin@example.com", "Admin123!").await;
    assert!(!again.is_empty());
    shop.stop().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A fresh PostgreSQL database for a service running apart; dropped by the guard.
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create() -> PgDb {
        use sqlx::Connection;
        let admin = kit::testing::postgres_admin_url();
        let name = format!("shop_test_{}", uuid_like());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL test server");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        PgDb { admin, name, url: url.to_string() }
    }
    async fn drop_now(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_on_postgres_behind_the_gateway() {
    let dir = temp_dir();
    let (auth_db, catalog_db) = (PgDb::create().await, PgDb::create().await);

    let mut auth_settings = test_settings(&dir);
    auth_settings.database_url = Some(auth_db.url.clone().into());
    let auth = spawn(compose::single(&auth_settings, ServiceName::Auth).await.unwrap().app).await;

    let mut catalog_settings = test_settings(&dir);
    catalog_settings.database_url = Some(catalog_db.url.clone().into());
    catalog_settings.auth_url = Some(format!("http://{}", auth.addr).parse().unwrap());
    let catalog = spawn(compose::single(&catalog_settings, ServiceName::Catalog).await.unwrap().app).await;

    // Cart, inventory and notifications apart too, on SQLite files in the data directory.
    let mut others = Vec::new();
    for service in [ServiceName::Cart, ServiceName::Inventory, ServiceName::Notification] {
        let mut s = test_settings(&dir);
        s.auth_url = Some(format!("http://{}", auth.addr).parse().unwrap());
        s.catalog_url = Some(format!("http://{}", catalog.addr).parse().unwrap());
        let running = compose::single(&s, service).await.unwrap();
        others.push((service, spawn(running.app.clone()).await, running));
    }

    let mut gw_settings = test_settings(&dir);
    gw_settings.auth_url = Some(format!("http://{}", auth.addr).parse().unwrap());
    gw_settings.catalog_url = Some(format!("http://{}", catalog.addr).parse().unwrap());
    for (service, r, _) in &others {
        let url = Some(format!("http://{}", r.addr).parse().unwrap());
        match service {
            ServiceName::Cart => gw_settings.cart_url = url,
            ServiceName::Inventory => gw_settings.inventory_url = url,
            _ => gw_settings.notification_url = url,
        }
    }
    let gateway = spawn(compose::single(&gw_settings, ServiceName::Gateway).await.unwrap().app).await;

    // Seed both databases the way `shop seed` does.
    let s = {
        let mut s = test_settings(&dir);
        s.databases.insert("auth".into(), auth_db.url.clone().into());
        s.databases.insert("catalog".into(), catalog_db.url.clone().into());
        s
    };
    let a = compose::open_db(&s, ServiceName::Auth, DbScope::Shared).await.unwrap();
    let k = compose::open_db(&s, ServiceName::Catalog, DbScope::Shared).await.unwrap();
    let i = compose::open_db(&s, ServiceName::Inventory, DbScope::Single).await.unwrap();
    assert_eq!(a.backend(), kit::db::Backend::Postgres);
    compose::seed_all(&s, &a, &k, &i).await.unwrap();

    let c = reqwest::Client::new();
    let page: Value =
        c.get(gateway.url("/api/v1/products?pageSize=3")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["total"], 590);
    assert_eq!(c.get(gateway.url("/readyz")).send().await.unwrap().status(), 200);

    // The catalog verifies the token over the auth service's JWKS, through HTTP.
    let admin = login(&c, &gateway, "admin@example.com", "Admin123!").await;
    let category = page["items"][0]["category"]["id"].clone();
    let res = c
        .post(gateway.url("/api/v1/products"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "Remote Lamp", "sku": "RM-LAMP-1", "price": {"amount": 100, "currency": "USD"}, "categoryId": category }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);

    // A guest cart across processes: gateway → cart → catalog over HTTP.
    let res = c
        .post(gateway.url("/api/v1/cart/items"))
        .json(&json!({ "productId": page["items"][0]["id"], "quantity": 2 }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
    let token = res.headers()["x-cart-token"].to_str().unwrap().to_string();
    let cart: Value = c
        .get(gateway.url("/api/v1/cart"))
        .header("x-cart-token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cart["items"][0]["quantity"], 2, "{cart}");

    // The catalog goes down: the gateway answers 503 problems and readiness names it.
    catalog.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = c.get(gateway.url("/api/v1/products")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let ready: Value = c.get(gateway.url("/readyz")).send().await.unwrap().json().await.unwrap();
    let down: Vec<_> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "down")
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(down, vec![json!("catalog")]);

    // A guest cart through the gateway: the cart service asks the catalog over HTTP.
    let res = c
        .post(gateway.url("/api/v1/cart/items"))
        .json(&json!({ "productId": page["items"][0]["id"], "quantity": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "the catalog is down: a cart write refuses rather than trusting nothing");

    gateway.stop().await;
    for (_, r, running) in others {
        r.stop().await;
        running.stop().await;
    }
    auth.stop().await;
    a.close().await;
    i.close().await;
    k.close().await;
    auth_db.drop_now().await;
    catalog_db.drop_now().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_binary_explains_itself_and_names_bad_config_keys() {
    let bin = env!("CARGO_BIN_EXE_shop");
    let out = std::process::Command::new(bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("shop "));
    let out = std::process::Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["up", "serve", "migrate", "seed"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = std::process::Command::new(bin)
        .args(["migrate", "all"])
        .env("SHOP_DB_MAX_CONNECTIONS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHOP_DB_MAX_CONNECTIONS"), "{err}");
}
