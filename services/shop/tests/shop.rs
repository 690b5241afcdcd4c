//! The shop as a user meets it: through the gateway, over real HTTP, in both modes.

use std::time::Duration;

use serde_json::{json, Value};
use shop::compose;

mod support;
use support::*;

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
