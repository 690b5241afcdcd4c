//! Checkout throughput on PostgreSQL: every service in one process (`shop serve all`) with each
//! service's database on the PostgreSQL test server, the in-process event bus and the simulated
//! payment provider. Concurrent customers each run, through the gateway over HTTP:
//! add to cart → checkout → payment intent → confirm → wait until the order is PAID.
//! Prints checkouts/s and the cart → PAID latency.
//!
//! Needs the PostgreSQL test server (`SHOP_TEST_POSTGRES_URL`). Run:
//! `cargo bench -p shop --bench checkout` (`CHECKOUT_BENCH_N`, `CHECKOUT_BENCH_CUSTOMERS`).

use std::time::{Duration, Instant};

use kit::contract::ServiceName;
use shop::compose;

#[path = "../tests/flow/mod.rs"]
mod flow;
#[path = "../tests/support/mod.rs"]
mod support;

use flow::Api;
use support::*;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let n = env_or("CHECKOUT_BENCH_N", 400);
    let customers = env_or("CHECKOUT_BENCH_CUSTOMERS", 16);
    let dir = temp_dir();
    let mut settings = test_settings(&dir);
    settings.gateway.rate_limit.enabled = false;
    settings.auth.login_max_attempts_per_ip = 100_000;
    settings.db_max_connections = 10;
    let mut dbs = Vec::new();
    for s in ServiceName::ALL.into_iter().filter(|s| s.has_database()) {
        let db = PgDb::create().await;
        settings.databases.insert(s.as_str().to_string(), db.url.clone().into());
        dbs.push(db);
    }
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let api = Api::new(shop.url(""));
    let product = api.product_with_stock(1).await;
    // Enough stock for every checkout.
    let admin = api.admin().await;
    let (status, body) = api
        .post(
            &admin,
            &format!("/api/v1/inventory/{product}/adjust"),
            &serde_json::json!({ "type": "PURCHASE", "quantity": n as i64 + 10, "reason": "bench" }),
        )
        .await;
    assert!(status < 300, "{body}");

    let mut users = Vec::new();
    for _ in 0..customers {
        users.push(api.register().await.0);
    }
    println!("checkout bench: {n} checkouts by {customers} concurrent customers, PostgreSQL, in-process bus, simulated payments");
    let started = Instant::now();
    let per = n / customers;
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    api.add_to_cart(&user, product, 1).await;
                    let (status, order) = api.checkout(&user, &uuid::Uuid::now_v7().to_string()).await;
                    assert_eq!(status, 201, "{order}");
                    let id = order["id"].as_str().unwrap().to_string();
                    let (_, (status, confirmed)) = api.pay(&user, &id, "pm_card_visa").await;
                    assert_eq!(status, 200, "{confirmed}");
                    loop {
                        let (_, o) = api.get(&user, &format!("/api/v1/orders/{id}")).await;
                        if o["status"] == "PAID" {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "  {} checkouts in {:.2} s: {:.1} checkouts/s (cart → PAID); latency p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.95).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
    );
    let s = api.stock(product).await;
    println!(
        "  stock after: available {}, reserved {}, total {}",
        s["availableQuantity"], s["reservedQuantity"], s["totalQuantity"]
    );

    shop.stop().await;
    running.stop().await;
    for db in dbs {
        db.drop_now().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
