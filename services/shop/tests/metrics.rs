//! The business metrics move as the shop is used: a paid checkout, a declined card and a
//! reservation that expires unpaid, read from
//! `/metrics` over HTTP in `shop up`. Its own test binary: the metrics recorder is per process,
//! so no other test's checkouts count here.

use std::collections::BTreeMap;
use std::time::Duration;

use shop::compose;

mod flow;
mod support;

use flow::*;
use support::*;

/// The value of every series of the exposition `text` (`name{labels}` → value).
fn series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(base: &str) -> BTreeMap<String, f64> {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    series(&text)
}

fn value(s: &BTreeMap<String, f64>, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(0.0)
}

/// Waits until `key` has grown by at least `by` since `before`; `exact`: by exactly `by`.
async fn grows(
    base: &str,
    before: &BTreeMap<String, f64>,
    key: &str,
    by: f64,
    exact: bool,
) -> BTreeMap<String, f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = scrape(base).await;
        let delta = value(&now, key) - value(before, key);
        if delta >= by {
            assert!(!exact || delta == by, "{key} grew by {delta}, not {by}");
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "{key} grew by {delta}, not {by}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn business_metrics_follow_checkouts_payments_reservations_and_notifications() {
    let dir = temp_dir();
    let mut settings = test_settings(&dir);
    settings.inventory.reservation_ttl_secs = 2;
    settings.inventory.sweep_interval_secs = 1;
    settings.order.saga_interval_secs = 1;
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let base = shop.url("");
    let api = Api::new(base.clone());
    let (user, _) = api.register().await;
    let product = api.product_with_stock(10).await;
    let m0 = scrape(&base).await;

    // A checkout paid with a good card: started, completed, authorised and captured, a
    // reservation created and committed, the time to PAID observed.
    let (status, order) = api.order_items(&user, product, 1).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_string();
    let (_, (status, body)) = api.pay(&user, &id, "pm_card_visa").await;
    assert_eq!(status, 200, "{body}");
    api.wait_order(&user, &id, "PAID").await;
    let m1 =
        grows(&base, &m0, r#"shop_payments_total{outcome="captured",provider="simulated"}"#, 1.0, true).await;
    for (key, by) in [
        ("shop_checkouts_started_total", 1.0),
        ("shop_checkouts_completed_total", 1.0),
        (r#"shop_payments_total{outcome="authorized",provider="simulated"}"#, 1.0),
        (r#"shop_reservations_total{outcome="created"}"#, 1.0),
        (r#"shop_reservations_total{outcome="committed"}"#, 1.0),
        (r#"shop_order_transitions_total{to="PAID"}"#, 1.0),
        (r#"shop_order_time_to_status_seconds_count{status="PAID"}"#, 1.0),
    ] {
        assert_eq!(value(&m1, key) - value(&m0, key), by, "{key}");
    }

    // A declined card: a failed checkout (payment_failed), a declined payment, the stock released.
    let (_, order) = api.order_items(&user, product, 1).await;
    let id = order["id"].as_str().unwrap().to_string();
    let (_, (status, body)) = api.pay(&user, &id, "pm_card_chargeDeclined").await;
    assert_eq!(status, 402, "{body}");
    api.wait_order(&user, &id, "FAILED").await;
    let m2 = grows(&base, &m1, r#"shop_reservations_total{outcome="released"}"#, 1.0, true).await;
    assert_eq!(
        value(&m2, r#"shop_checkouts_failed_total{reason="payment_failed"}"#)
            - value(&m1, r#"shop_checkouts_failed_total{reason="payment_failed"}"#),
        1.0
    );
    assert_eq!(
        value(&m2, r#"shop_payments_total{outcome="declined",provider="simulated"}"#)
            - value(&m1, r#"shop_payments_total{outcome="declined",provider="simulated"}"#),
        1.0
    );
    assert_eq!(value(&m2, "shop_checkouts_completed_total"), value(&m1, "shop_checkouts_completed_total"));

    // Nobody pays: the reservation expires, the checkout fails as expired.
    let (_, order) = api.order_items(&user, product, 1).await;
    let id = order["id"].as_str().unwrap().to_string();
    api.wait_order(&user, &id, "CANCELLED").await;
    let m3 = grows(&base, &m2, r#"shop_checkouts_failed_total{reason="expired"}"#, 1.0, true).await;
    assert!(
        value(&m3, r#"shop_reservations_total{outcome="expired"}"#)
            - value(&m2, r#"shop_reservations_total{outcome="expired"}"#)
            <= 1.0
    );

    // HELP lines come from the one description of each metric.
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        text.contains(&format!(
            "# HELP shop_checkouts_started_total {}",
            kit::contract::metrics::CHECKOUTS_STARTED.help
        )),
        "{text}"
    );

    shop.stop().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
