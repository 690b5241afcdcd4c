//! The checkout saga as a customer and an admin meet it: through the gateway, over real HTTP,
//! with every service in one process (`shop up`). The same flow runs against services in
//! separate processes in `checkout_apart.rs`.

use std::time::Duration;

use serde_json::json;
use shop::compose;

mod flow;
mod support;

use flow::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_self_service_revocation_and_the_edge_in_one_process() {
    let dir = temp_dir();
    let mut settings = test_settings(&dir);
    settings.internal_token = Some("e2e-internal-token".to_string().into());
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let api = Api::new(shop.url(""));
    identity_flow(&api, "e2e-internal-token").await;
    made_up_methods_create_no_series(&api).await;
    unpaid_orders_are_capped(&api).await;
    shop.stop().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_saga_in_one_process() {
    let dir = temp_dir();
    let settings = test_settings(&dir);
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let api = Api::new(shop.url(""));

    full_flow(&api).await;
    every_service_reports_its_info(&api).await;
    let (_, info) = api.get("", "/info").await;
    assert_eq!((info["name"].as_str(), info["mode"].as_str()), (Some("gateway"), Some("embedded")), "{info}");

    // Idempotency: 50 parallel checkouts replaying one key make one order.
    let (user, _) = api.register().await;
    let product = api.product_with_stock(5).await;
    api.add_to_cart(&user, product, 1).await;
    let key = uuid::Uuid::now_v7().to_string();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (api, user, key) = (api.clone(), user.clone(), key.clone());
        tasks.push(tokio::spawn(async move { api.checkout(&user, &key).await }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 201 || status == 200, "{status} {body}");
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "one order for one Idempotency-Key: {ids:?}");
    let mine = api.get(&user, "/api/v1/orders").await.1;
    assert_eq!(mine["total"], 1, "{mine}");
    // The same key with another body is refused.
    let (status, body) = api
        .post_idem(
            &user,
            "/api/v1/orders/checkout",
            &key,
            &json!({ "shippingAddress": address(), "shippingMethod": "express" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // Two customers race for the last unit: one order, one clean refusal.
    let last = api.new_product_with_stock(1).await;
    let (a, _) = api.register().await;
    let (b, _) = api.register().await;
    let (ra, rb) = tokio::join!(api.order_items(&a, last, 1), api.order_items(&b, last, 1));
    let mut statuses = [ra.0, rb.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{ra:?} {rb:?}");
    let refused = if ra.0 == 409 { &ra.1 } else { &rb.1 };
    assert_eq!(refused["code"], "insufficient_stock", "{refused}");
    assert_eq!(api.stock(last).await["availableQuantity"], 0);

    shop.stop().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpaid_orders_are_cancelled_when_the_reservation_expires_and_sagas_resume_after_a_restart() {
    let dir = temp_dir();
    let mut settings = test_settings(&dir);
    settings.inventory.reservation_ttl_secs = 2;
    settings.inventory.sweep_interval_secs = 1;
    settings.order.saga_interval_secs = 1;
    settings.order.resume_after_secs = 1;
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let api = Api::new(shop.url(""));
    let (user, _) = api.register().await;
    let product = api.product_with_stock(3).await;
    let before = api.stock(product).await["availableQuantity"].as_i64().unwrap();
    let (status, order) = api.order_items(&user, product, 2).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "AWAITING_PAYMENT");
    assert!(order["reservationExpiresAt"].is_string());
    assert_eq!(api.stock(product).await["availableQuantity"].as_i64().unwrap(), before - 2);
    let id = order["id"].as_str().unwrap().to_string();

    // Nobody pays: the saga cancels the order, the stock comes back.
    let cancelled = api.wait_order(&user, &id, "CANCELLED").await;
    assert!(cancelled["failureReason"].as_str().unwrap().contains("expired"), "{cancelled}");
    api.wait_stock(product, before).await;
    // Paying now is refused: the order is no longer payable.
    let (status, body) = api
        .post_idem(
            &user,
            "/api/v1/payments/intent",
            &uuid::Uuid::now_v7().to_string(),
            &json!({ "orderId": id }),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    shop.stop().await;
    running.stop().await;

    // A restart on the same data resumes: the order service's worker runs at once.
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let api = Api::new(shop.url(""));
    let user = api.login("customer@example.com", "Customer123!").await;
    let (status, order) = api.order_items(&user, product, 1).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_string();
    let customer_id: uuid::Uuid = order["userId"].as_str().unwrap().parse().unwrap();
    let price = order["items"][0]["unitPrice"].clone();
    shop.stop().await;
    running.stop().await;

    // A crash right after an order was stored, before its stock was reserved: the order is
    // PENDING in the database and nothing else knows of it.
    let db = compose::open_db(&settings, kit::contract::ServiceName::Order, shop::settings::DbScope::Shared)
        .await
        .unwrap();
    let store = shop_order::Store::new(db.clone());
    let unit: kit::money::Money = serde_json::from_value(price).unwrap();
    let stalled = store
        .insert(&shop_order::store::NewOrder {
            id: uuid::Uuid::now_v7(),
            user_id: customer_id,
            items: vec![shop_order::model::OrderItem {
                product_id: product,
                sku: "SKU".into(),
                name: "stalled".into(),
                quantity: 1,
                line_total: unit.clone(),
                unit_price: unit.clone(),
            }],
            subtotal: unit.clone(),
            shipping_cost: kit::money::Money::new(0, &unit.currency),
            tax: kit::money::Money::new(0, &unit.currency),
            total: unit.clone(),
            shipping_method: "standard".into(),
            shipping_address: serde_json::from_value(flow::address()).unwrap(),
            customer_email: None,
            notes: None,
            idempotency_key: None,
        })
        .await
        .unwrap()
        .unwrap();
    db.close().await;

    // Down for longer than the reservation: on restart the sweepers expire the unpaid order's
    // reservation and the saga cancels it; the stalled order is resumed (its stock reserved).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let api = Api::new(shop.url(""));
    let user = api.login("customer@example.com", "Customer123!").await;
    api.wait_order(&user, &id, "CANCELLED").await;
    let resumed = api.wait_order(&user, &stalled.id.to_string(), "AWAITING_PAYMENT").await;
    assert_eq!(resumed["history"][1]["actor"], "system:saga", "{resumed}");
    // Nobody pays for that one either: cancelled in turn, and all the stock is back.
    api.wait_order(&user, &stalled.id.to_string(), "CANCELLED").await;
    api.wait_stock(product, before).await;
    shop.stop().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
