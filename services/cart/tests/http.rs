//! HTTP tests through the real router and the shared middleware, with the REAL catalog (its
//! router on a seeded SQLite database, called in-process through the kit's service client).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::{Extension, Router};
use http_body_util::BodyExt;
use kit::auth::{claims_for, roles, test_keys};
use kit::health::Readiness;
use kit::testing::TestDb;
use serde_json::{json, Value};
use shop_cart::{router, CartConfig, CartState, CartStore, ProductLookup};
use tower::ServiceExt;
use uuid::Uuid;

const HOUR: Duration = Duration::from_secs(3600);

struct Res {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Res {
    fn is_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/problem+json", "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
    }
    fn token(&self) -> String {
        self.headers["x-cart-token"].to_str().unwrap().to_string()
    }
    fn line(&self, p: Uuid) -> &Value {
        self.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["productId"] == p.to_string())
            .unwrap_or_else(|| panic!("no line {p}: {}", self.body))
    }
}

struct App {
    cart: Router,
    catalog: Router,
    admin: String,
    user: String,
    other_user: String,
    _dbs: Vec<TestDb>,
}

struct Products {
    a: (Uuid, i64),
    b: (Uuid, i64),
    inactive: Uuid,
    more: Vec<Uuid>,
}

fn products() -> Products {
    let (_, _, all) = shop_catalog::seed::dataset();
    let active: Vec<_> = all.iter().filter(|p| p.active).collect();
    Products {
        a: (active[0].id, active[0].price_amount),
        b: (active[1].id, active[1].price_amount),
        inactive: all.iter().find(|p| !p.active).expect("the seed has an inactive product").id,
        more: active[2..].iter().map(|p| p.id).collect(),
    }
}

async fn app_with(
    config: CartConfig,
    lookup: Option<Arc<dyn ProductLookup>>,
    store: Option<Arc<dyn CartStore>>,
) -> App {
    let (key, verifier) = test_keys();
    let catalog_db = kit::testing::sqlite(&shop_catalog::MIGRATIONS).await;
    shop_catalog::seed(&catalog_db.db).await.unwrap();
    let catalog = shop_catalog::router(shop_catalog::CatalogState::new(catalog_db.db.clone()))
        .layer(Extension(verifier.clone()));
    let cart_db = kit::testing::sqlite(&shop_cart::MIGRATIONS).await;
    let store = store.unwrap_or_else(|| shop_cart::sql_store(cart_db.db.clone()));
    let lookup = lookup.unwrap_or_else(|| {
        shop_cart::catalog_products(kit::client::ServiceClient::router(
            "catalog",
            catalog.clone(),
            shop_cart::catalog_policy(),
        ))
    });
    let state = CartState::new(store, lookup, config).await.unwrap();
    let api = router(state).layer(Extension(verifier));
    App {
        cart: kit::http::service_app("cart", api, Readiness::new()),
        catalog,
        admin: key.sign(&claims_for(Uuid::now_v7(), &[roles::ADMIN], None, HOUR)),
        user: key.sign(&claims_for(Uuid::now_v7(), &[roles::CUSTOMER], None, HOUR)),
        other_user: key.sign(&claims_for(Uuid::now_v7(), &[roles::CUSTOMER], None, HOUR)),
        _dbs: vec![catalog_db, cart_db],
    }
}

async fn app() -> App {
    app_with(CartConfig::default(), None, None).await
}

async fn send(router: &Router, req: Request<Body>) -> Res {
    let res = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    Res { status: parts.status, headers: parts.headers, body }
}

fn request(
    method: Method,
    uri: &str,
    bearer: Option<&str>,
    cart: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(t) = cart {
        req = req.header("x-cart-token", t);
    }
    match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap()
}

impl App {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        cart: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        send(&self.cart, request(method, uri, bearer, cart, body)).await
    }
    async fn add(&self, bearer: Option<&str>, cart: Option<&str>, p: Uuid, q: i64) -> Res {
        self.call(
            Method::POST,
            "/api/v1/cart/items",
            bearer,
            cart,
            Some(json!({"productId": p, "quantity": q})),
        )
        .await
    }
    async fn get(&self, bearer: Option<&str>, cart: Option<&str>) -> Res {
        self.call(Method::GET, "/api/v1/cart", bearer, cart, None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_flow_with_token() {
    let app = app().await;
    let p = products();

    // No token: an empty cart, not 404; an unknown token too.
    let r = app.get(None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"], json!([]));
    assert_eq!(r.body["owner"], "guest");
    let r = app.get(None, Some("bm90LWEtdG9rZW4tYnV0LTQzLWNoYXJzLWxvbmctLS0tLS0t")).await;
    assert_eq!((r.status, r.body["lineCount"].as_u64()), (StatusCode::OK, Some(0)));

    // First write mints a token (header and body).
    let r = app.add(None, None, p.a.0, 2).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = r.token();
    assert_eq!(token.len(), 43);
    assert_eq!(r.body["cartToken"], token);
    let line = r.line(p.a.0);
    assert_eq!(line["quantity"], 2);
    assert_eq!(line["unitPrice"]["amount"], p.a.1);
    assert_eq!(line["lineTotal"]["amount"], p.a.1 * 2);
    assert_eq!(line["available"], true);
    assert_eq!(line["priceChanged"], false);
    assert!(line["image"].as_str().unwrap().starts_with("http"), "{line}");
    assert!(!line["sku"].as_str().unwrap().is_empty());
    assert_eq!(r.body["stale"], false);
    assert!(r.body["expiresAt"].is_string());

    // The token brings the same cart back; more writes keep it.
    let r = app.add(None, Some(&token), p.a.0, 3).await;
    assert_eq!(r.token(), token);
    assert_eq!(r.line(p.a.0)["quantity"], 5);
    let r = app.add(None, Some(&token), p.b.0, 1).await;
    assert_eq!(r.body["lineCount"], 2);
    assert_eq!(r.body["itemCount"], 6);
    assert_eq!(r.body["subtotals"], json!([{"amount": p.a.1 * 5 + p.b.1, "currency": "USD"}]));

    let uri = format!("/api/v1/cart/items/{}", p.a.0);
    let r = app.call(Method::PUT, &uri, None, Some(&token), Some(json!({"quantity": 9}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.line(p.a.0)["quantity"], 9);
    let r = app.call(Method::DELETE, &uri, None, Some(&token), None).await;
    assert_eq!((r.status, r.body["lineCount"].as_u64()), (StatusCode::OK, Some(1)));
    let r = app.call(Method::DELETE, &uri, None, Some(&token), None).await;
    r.is_problem(StatusCode::NOT_FOUND, "not_found");

    // Another guest (no token) sees nothing of it.
    assert_eq!(app.get(None, None).await.body["lineCount"], 0);

    let r = app.call(Method::DELETE, "/api/v1/cart", None, Some(&token), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(None, Some(&token)).await.body["lineCount"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_flow_and_merge_on_login() {
    let app = app().await;
    let p = products();
    let r = app.add(Some(&app.user), None, p.a.0, 60).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["owner"], "user");
    assert!(r.body.get("cartToken").is_none());
    assert!(!r.headers.contains_key("x-cart-token"));
    assert_eq!(app.get(Some(&app.user), None).await.line(p.a.0)["quantity"], 60);
    assert_eq!(app.get(Some(&app.other_user), None).await.body["lineCount"], 0, "carts are per user");

    // A guest fills a cart, then signs in and merges it.
    let g = app.add(None, None, p.a.0, 50).await;
    let token = g.token();
    app.add(None, Some(&token), p.b.0, 2).await;
    let r = app
        .call(Method::POST, "/api/v1/cart/merge", Some(&app.user), None, Some(json!({"cartToken": token})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.line(p.a.0)["quantity"], 99, "summed and capped");
    assert_eq!(r.line(p.b.0)["quantity"], 2);
    assert_eq!(app.get(None, Some(&token)).await.body["lineCount"], 0, "the guest cart is gone");

    // Merge needs a signed-in caller and a well-formed token.
    let r = app.call(Method::POST, "/api/v1/cart/merge", None, None, Some(json!({"cartToken": token}))).await;
    r.is_problem(StatusCode::UNAUTHORIZED, "token_missing");
    let r = app
        .call(Method::POST, "/api/v1/cart/merge", Some(&app.user), None, Some(json!({"cartToken": "nope"})))
        .await;
    r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "cartToken");
    // An invalid bearer token is refused, not treated as a guest.
    let r = app.get(Some("not.a.jwt"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_changes_and_deleted_products_are_flagged() {
    let app = app().await;
    let p = products();
    app.add(Some(&app.user), None, p.a.0, 2).await;
    app.add(Some(&app.user), None, p.b.0, 1).await;

    let new_price = p.a.1 + 500;
    let r = send(
        &app.catalog,
        request(
            Method::PATCH,
            &format!("/api/v1/products/{}", p.a.0),
            Some(&app.admin),
            None,
            Some(json!({"price": {"amount": new_price, "currency": "USD"}})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = send(
        &app.catalog,
        request(Method::DELETE, &format!("/api/v1/products/{}", p.b.0), Some(&app.admin), None, None),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let r = app.get(Some(&app.user), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let a = r.line(p.a.0);
    assert_eq!(a["priceChanged"], true);
    assert_eq!(a["previousPrice"]["amount"], p.a.1);
    assert_eq!(a["unitPrice"]["amount"], new_price);
    assert_eq!(a["lineTotal"]["amount"], new_price * 2);
    let b = r.line(p.b.0);
    assert_eq!(b["available"], false, "{b}");
    assert_eq!(b["reason"], "deleted");
    assert_eq!(r.body["lineCount"], 2, "flagged, not dropped");
    assert_eq!(
        r.body["subtotals"],
        json!([{"amount": new_price * 2, "currency": "USD"}]),
        "unavailable lines excluded"
    );
    assert_eq!(r.body["stale"], false);

    // Adding a deleted, unknown or inactive product is refused.
    app.add(Some(&app.user), None, p.b.0, 1)
        .await
        .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_product");
    let r = app.add(Some(&app.user), None, Uuid::now_v7(), 1).await;
    r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_product");
    assert_eq!(r.body["errors"][0]["field"], "productId");
    app.add(Some(&app.user), None, p.inactive, 1)
        .await
        .is_problem(StatusCode::CONFLICT, "product_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_unreachable_degrades_gracefully() {
    // A port with nothing listening: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = shop_cart::catalog_products(kit::client::ServiceClient::http(
        "catalog",
        &format!("http://127.0.0.1:{port}"),
        shop_cart::catalog_policy(),
    ));
    let cart_db = kit::testing::sqlite(&shop_cart::MIGRATIONS).await;
    let store = shop_cart::sql_store(cart_db.db.clone());
    let p = products();
    // Fill a guest cart while the catalog is up, then read it through an app whose catalog
    // is down (same store).
    let up = app_with(CartConfig::default(), None, Some(store.clone())).await;
    let down = app_with(CartConfig::default(), Some(dead), Some(store.clone())).await;
    let token = up.add(None, None, p.a.0, 2).await.token();
    let r = down.get(None, Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["stale"], true);
    let line = r.line(p.a.0);
    assert_eq!(line["quantity"], 2);
    assert_eq!(line["unitPrice"]["amount"], p.a.1, "from the snapshot");
    assert_eq!(line["available"], true);
    assert_eq!(r.body["subtotals"], json!([{"amount": p.a.1 * 2, "currency": "USD"}]));

    let r = down.add(None, Some(&token), p.b.0, 1).await;
    r.is_problem(StatusCode::SERVICE_UNAVAILABLE, "catalog_unavailable");
    // Changing quantities does not need the catalog.
    let uri = format!("/api/v1/cart/items/{}", p.a.0);
    let r = down.call(Method::PUT, &uri, None, Some(&token), Some(json!({"quantity": 4}))).await;
    assert_eq!((r.status, &r.body["stale"]), (StatusCode::OK, &json!(true)));
    assert_eq!(r.line(p.a.0)["quantity"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_problem_never_a_500() {
    let app = app_with(CartConfig { max_lines: 3, ..Default::default() }, None, None).await;
    let p = products();
    let u = Some(app.user.as_str());
    for q in [0, -1, 100, 1000] {
        let r = app.add(u, None, p.a.0, q).await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "quantity", "{}", r.body);
    }
    for id in &p.more[..3] {
        assert_eq!(app.add(u, None, *id, 1).await.status, StatusCode::OK);
    }
    let r = app.add(u, None, p.a.0, 1).await;
    r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "too_many_lines");
    assert_eq!(r.body["errors"][0]["field"], "productId");

    let uri = format!("/api/v1/cart/items/{}", p.more[0]);
    let r = app.call(Method::PUT, &uri, u, None, Some(json!({"quantity": 0}))).await;
    r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r =
        app.call(Method::PUT, "/api/v1/cart/items/not-a-uuid", u, None, Some(json!({"quantity": 1}))).await;
    r.is_problem(StatusCode::BAD_REQUEST, "invalid_path");
    let r = app
        .call(Method::PUT, &format!("/api/v1/cart/items/{}", p.a.0), u, None, Some(json!({"quantity": 1})))
        .await;
    r.is_problem(StatusCode::NOT_FOUND, "not_found");

    let req = Request::post("/api/v1/cart/items")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"productId\": "))
        .unwrap();
    send(&app.cart, req).await.is_problem(StatusCode::BAD_REQUEST, "malformed_json");
    let r = app
        .call(Method::POST, "/api/v1/cart/items", u, None, Some(json!({"productId": "x", "quantity": 1})))
        .await;
    r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = app.call(Method::POST, "/api/v1/cart/items", u, None, Some(json!({"productId": p.a.0}))).await;
    r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = app
        .call(
            Method::POST,
            "/api/v1/cart/items",
            u,
            None,
            Some(json!({"productId": p.a.0, "quantity": 1e30})),
        )
        .await;
    r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let req = Request::post("/api/v1/cart/items").body(Body::from("x")).unwrap();
    send(&app.cart, req).await.is_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_the_redis_store_too() {
    let url = std::env::var("SHOP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("shop-test:{}:", Uuid::new_v4().simple());
    let store = shop_cart::redis_store(&url, &prefix).await.unwrap();
    let app = app_with(CartConfig::default(), None, Some(store.clone())).await;
    let p = products();
    let r = app.add(None, None, p.a.0, 2).await;
    let token = r.token();
    let r = app.get(None, Some(&token)).await;
    assert_eq!(r.line(p.a.0)["quantity"], 2);
    let ttl = store.ttl(&format!("guest:{token}")).await.unwrap().unwrap();
    assert!(
        ttl > Duration::from_secs(2 * 86400 - 60) && ttl <= Duration::from_secs(2 * 86400),
        "guest TTL {ttl:?}"
    );
    let r = app.add(Some(&app.user), None, p.b.0, 1).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .call(Method::POST, "/api/v1/cart/merge", Some(&app.user), None, Some(json!({"cartToken": token})))
        .await;
    assert_eq!(r.body["lineCount"], 2, "{}", r.body);
    let user_cart = r.body["items"][0]["productId"].clone();
    assert!(user_cart.is_string());
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    assert_eq!(keys.len(), 1, "only the user's cart is left: {keys:?}");
    let pttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query_async(&mut conn).await.unwrap();
    assert!(pttl > 7 * 86_400_000 - 60_000, "user TTL {pttl}");
    let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
}
