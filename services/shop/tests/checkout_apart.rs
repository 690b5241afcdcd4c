//! The same checkout flow as `checkout.rs`, with every service on its own listener as in
//! production: PostgreSQL databases, the cart in Redis, events over a real Kafka-protocol
//! broker, calls between services over HTTP. Then the catalog goes down: cart reads answer from
//! their snapshot, checkout refuses with a 503, readiness names the catalog.

use kit::contract::ServiceName;
use serde_json::json;
use shop::compose;
use shop::settings::{DbScope, Settings};

mod flow;
mod support;

use flow::*;
use support::*;

fn kafka_brokers() -> String {
    std::env::var("SHOP_TEST_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!("SHOP_TEST_KAFKA_BROKERS is not set: this test needs a Kafka-protocol broker (scripts/test starts one)")
    })
}

fn url(r: &Running) -> Option<url::Url> {
    Some(format!("http://{}", r.addr).parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_saga_with_services_apart_on_postgres_redis_and_kafka() {
    let dir = temp_dir();
    let run = uuid_like();
    let mut dbs = std::collections::BTreeMap::new();
    for s in ServiceName::ALL.into_iter().filter(|s| s.has_database() && *s != ServiceName::Cart) {
        dbs.insert(s, PgDb::create().await);
    }
    let base = |service: Option<ServiceName>| -> Settings {
        let mut s = test_settings(&dir);
        if let Some(db) = service.and_then(|x| dbs.get(&x)) {
            s.database_url = Some(db.url.clone().into());
        }
        s.internal_token = Some("e2e-internal-token".to_string().into());
        s.events.bus = kit::events::BusKind::Kafka;
        s.events.brokers = kafka_brokers();
        s.events.topic_prefix = format!("e2e{run}-");
        s.events.create_topics = true;
        s.redis_url = Some(
            std::env::var("SHOP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()).into(),
        );
        s.cart.redis_prefix = format!("e2e{run}:");
        s.gateway.rate_limit.redis_prefix = format!("e2e{run}:ratelimit:");
        s.auth.redis_prefix = format!("e2e{run}:auth:");
        s
    };

    // Seed the way `shop seed` does (schemas come from each service's own start).
    {
        let mut s = base(None);
        for (svc, db) in &dbs {
            s.databases.insert(svc.as_str().to_string(), db.url.clone().into());
        }
        let a = compose::open_db(&s, ServiceName::Auth, DbScope::Shared).await.unwrap();
        let k = compose::open_db(&s, ServiceName::Catalog, DbScope::Shared).await.unwrap();
        let i = compose::open_db(&s, ServiceName::Inventory, DbScope::Shared).await.unwrap();
        shop::seed::all(&s, &a, &k, &i, true).await.unwrap();
        for db in [a, k, i] {
            db.close().await;
        }
    }

    let mut procs: Vec<(ServiceName, Running, Option<compose::Running>)> = Vec::new();
    let start = |settings: Settings, service: ServiceName| async move {
        let running = compose::single(&settings, service).await.unwrap();
        (service, spawn(running.app.clone()).await, Some(running))
    };
    // The auth service mails through the notification service, which starts after it: its
    // address is taken now.
    let notification_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut auth_settings = base(Some(ServiceName::Auth));
    auth_settings.notification_url =
        Some(format!("http://{}", notification_listener.local_addr().unwrap()).parse().unwrap());
    let auth = start(auth_settings, ServiceName::Auth).await;
    let with_auth = |svc: ServiceName| {
        let mut s = base(Some(svc));
        s.auth_url = url(&auth.1);
        s
    };
    let catalog = start(with_auth(ServiceName::Catalog), ServiceName::Catalog).await;
    let inventory = start(with_auth(ServiceName::Inventory), ServiceName::Inventory).await;
    let mut cart_settings = with_auth(ServiceName::Cart);
    cart_settings.catalog_url = url(&catalog.1);
    let cart = start(cart_settings, ServiceName::Cart).await;
    let mut order_settings = with_auth(ServiceName::Order);
    order_settings.catalog_url = url(&catalog.1);
    order_settings.inventory_url = url(&inventory.1);
    order_settings.cart_url = url(&cart.1);
    let order = start(order_settings, ServiceName::Order).await;
    let mut payment_settings = with_auth(ServiceName::Payment);
    payment_settings.order_url = url(&order.1);
    let payment = start(payment_settings, ServiceName::Payment).await;
    let notification = {
        let running =
            compose::single(&with_auth(ServiceName::Notification), ServiceName::Notification).await.unwrap();
        (ServiceName::Notification, spawn_on(notification_listener, running.app.clone()).await, Some(running))
    };
    let mut gw = with_auth(ServiceName::Gateway);
    gw.catalog_url = url(&catalog.1);
    gw.inventory_url = url(&inventory.1);
    gw.cart_url = url(&cart.1);
    gw.order_url = url(&order.1);
    gw.payment_url = url(&payment.1);
    gw.notification_url = url(&notification.1);
    let gateway = start(gw, ServiceName::Gateway).await;
    let gateway_url = gateway.1.url("");
    procs.extend([auth, inventory, cart, order, payment, notification, gateway]);

    let api = Api::new(gateway_url.clone());
    full_flow(&api).await;
    every_service_reports_its_info(&api).await;
    identity_flow(&api, "e2e-internal-token").await;
    unpaid_orders_are_capped(&api).await;

    // Graceful degradation: the catalog stops.
    let (user, _) = api.register().await;
    let product = api.product_with_stock(3).await;
    api.add_to_cart(&user, product, 1).await;
    let (_, catalog_running, catalog_app) = catalog;
    catalog_running.stop().await;
    catalog_app.unwrap().stop().await;
    let (status, cart) = api.get(&user, "/api/v1/cart").await;
    assert_eq!(status, 200, "cart reads answer from the stored snapshot: {cart}");
    assert_eq!(cart["stale"], true, "{cart}");
    assert_eq!(cart["items"][0]["productId"], json!(product));
    let (status, problem) = api.checkout(&user, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(status, 503, "checkout refuses rather than trusting stale prices: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains("catalog"), "{problem}");
    let (_, ready) = api.get("", "/readyz").await;
    let down: Vec<_> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "down")
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(down, vec![json!("catalog")], "{ready}");
    // Reads of the catalog itself are 503 problems; a cart write refuses rather than trusting
    // nothing; the order service still answers what it knows.
    let res = reqwest::get(format!("{gateway_url}/api/v1/products")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let (status, body) =
        api.post("", "/api/v1/cart/items", &json!({ "productId": product, "quantity": 1 })).await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = api.get(&user, "/api/v1/orders").await;
    assert_eq!(status, 200);

    made_up_methods_create_no_series(&api).await;

    for (_, r, running) in procs.into_iter().rev() {
        r.stop().await;
        if let Some(running) = running {
            running.stop().await;
        }
    }
    for (_, db) in dbs {
        db.drop_now().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
