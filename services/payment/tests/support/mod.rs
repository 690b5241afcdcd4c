//! Shared helpers of the payment service's integration tests: the real router with the shared
//! middleware and real tokens, a fake order service (the boundary), outbox and history queries.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::{Extension, Router};
use http_body_util::BodyExt;
use kit::auth::{claims_for, roles, test_keys, SigningKey};
use kit::db::Db;
use kit::health::Readiness;
use kit::money::Money;
use kit::with_db;
use serde_json::Value;
use shop_payment::{LookupError, OrderInfo, OrderLookup, PaymentConfig, PaymentState};
use tower::ServiceExt;
use uuid::Uuid;

pub const HOUR: Duration = Duration::from_secs(3600);
pub const SECRET: &str = "whsec_test_payments";
/// Redirect targets of hosted checkout in the default allow-list (`http://localhost`, any port).
pub const SUCCESS_URL: &str = "http://localhost:3000/checkout/success";
pub const CANCEL_URL: &str = "http://localhost:3000/checkout/cancelled";

/// The order service as a map (tests set orders and can make it unavailable).
#[derive(Default)]
pub struct FakeOrders {
    orders: Mutex<HashMap<Uuid, OrderInfo>>,
    pub down: AtomicBool,
}

impl FakeOrders {
    pub fn put(&self, order: OrderInfo) {
        self.orders.lock().unwrap().insert(order.id, order);
    }
    pub fn set_status(&self, id: Uuid, status: &str) {
        self.orders.lock().unwrap().get_mut(&id).unwrap().status = status.to_string();
    }
}

#[async_trait::async_trait]
impl OrderLookup for FakeOrders {
    async fn order(&self, id: Uuid) -> Result<Option<OrderInfo>, LookupError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(LookupError::Unavailable("connection refused".into()));
        }
        Ok(self.orders.lock().unwrap().get(&id).cloned())
    }
}

pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Res {
    pub fn is_problem(&self, status: StatusCode, code: &str) -> &Self {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/problem+json", "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        self
    }
    pub fn ok(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }
}

/// A response whose body is not parsed (HTML pages, redirects).
pub struct RawRes {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl RawRes {
    /// The `Location` of a 303.
    pub fn see_other(&self) -> &str {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        self.headers[header::LOCATION].to_str().unwrap()
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub struct User {
    pub id: Uuid,
    pub token: String,
}

pub struct App {
    pub router: Router,
    pub state: PaymentState,
    pub orders: Arc<FakeOrders>,
    pub db: Db,
    key: SigningKey,
    pub admin: User,
    pub alice: User,
    pub bob: User,
}

impl App {
    /// The simulated provider with the test secret; webhooks are delivered only when a test
    /// calls `state.deliver_simulated_webhooks()`.
    pub async fn new(db: Db) -> App {
        let config = PaymentConfig {
            provider: Some(shop_payment::ProviderKind::Simulated),
            webhook_secret: Some(SECRET.to_string().into()),
            simulated_webhook_delay_ms: 0,
            ..Default::default()
        };
        App::with_config(db, config).await
    }

    /// The simulator's tables exist from the start, as they do when the composer starts it.
    pub async fn with_config(db: Db, config: PaymentConfig) -> App {
        if config.provider == Some(shop_payment::ProviderKind::Simulated) {
            shop_payment::SimulatedProvider::ensure_schema(&db).await.unwrap();
        }
        let orders = Arc::new(FakeOrders::default());
        let state = PaymentState::new(db.clone(), config, orders.clone()).unwrap();
        App::with_state(db, state, orders)
    }

    pub fn with_state(db: Db, state: PaymentState, orders: Arc<FakeOrders>) -> App {
        let (key, verifier) = test_keys();
        let api = shop_payment::router(state.clone()).layer(Extension(verifier));
        let user = |roles: &[&str]| {
            let id = Uuid::now_v7();
            User { id, token: key.sign(&claims_for(id, roles, None, HOUR)) }
        };
        App {
            router: kit::http::service_app("payment", api, Readiness::new()),
            state,
            orders,
            db,
            admin: user(&[roles::ADMIN]),
            alice: user(&[roles::CUSTOMER]),
            bob: user(&[roles::CUSTOMER]),
            key,
        }
    }

    /// A new order of `owner`, awaiting payment, for `amount` USD cents.
    pub fn order(&self, owner: &User, amount: i64) -> Uuid {
        let id = Uuid::now_v7();
        self.orders.put(OrderInfo {
            id,
            user_id: owner.id,
            status: "AWAITING_PAYMENT".into(),
            total: Money::new(amount, "USD"),
        });
        id
    }

    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Res {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b)),
            None => req.body(Body::empty()),
        };
        let res = self.router.clone().oneshot(req.unwrap()).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Res { status: parts.status, headers: parts.headers, body }
    }

    /// A request without a token whose answer is kept as text; `form` is sent
    /// `application/x-www-form-urlencoded`.
    pub async fn raw(&self, method: Method, uri: &str, form: Option<&str>) -> RawRes {
        let req = Request::builder().method(method).uri(uri);
        let req = match form {
            Some(f) => req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(f.to_string())),
            None => req.body(Body::empty()),
        };
        let res = self.router.clone().oneshot(req.unwrap()).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        RawRes {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    /// `POST /payments/checkout-session` as `user` with a fresh Idempotency-Key.
    pub async fn checkout(&self, user: &User, order: Uuid) -> Res {
        let key = Uuid::new_v4().to_string();
        let body = serde_json::json!({"orderId": order, "successUrl": SUCCESS_URL, "cancelUrl": CANCEL_URL});
        self.call(user, Method::POST, "/api/v1/payments/checkout-session", Some(&key), Some(body)).await
    }

    /// A call as `user` (bearer token), with an optional Idempotency-Key and JSON body.
    pub async fn call(
        &self,
        user: &User,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let auth = format!("Bearer {}", user.token);
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        self.request(method, uri, &headers, body.map(|b| b.to_string())).await
    }

    /// Creates the payment of `order` as `user` (201).
    pub async fn intent(&self, user: &User, order: Uuid) -> Value {
        let key = Uuid::new_v4().to_string();
        let r = self
            .call(
                user,
                Method::POST,
                "/api/v1/payments/intent",
                Some(&key),
                Some(serde_json::json!({"orderId": order})),
            )
            .await;
        r.ok(StatusCode::CREATED).clone()
    }

    pub async fn confirm(&self, user: &User, payment: &str, pm: &str) -> Res {
        let uri = format!("/api/v1/payments/{payment}/confirm");
        self.call(user, Method::POST, &uri, None, Some(serde_json::json!({"paymentMethod": pm}))).await
    }

    /// Posts a webhook body with a `Stripe-Signature` computed here (as Stripe does).
    pub async fn webhook(&self, body: &str, secret: &str, timestamp: i64) -> Res {
        let sig = stripe_signature(secret, timestamp, body);
        self.request(
            Method::POST,
            "/api/v1/webhooks/stripe",
            &[("stripe-signature", &sig)],
            Some(body.to_string()),
        )
        .await
    }

    pub fn token_for(&self, id: Uuid, roles: &[&str]) -> String {
        self.key.sign(&claims_for(id, roles, None, HOUR))
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256("<t>.<body>")>` computed with the hmac crate directly, not with
/// the service's signer.
pub fn stripe_signature(secret: &str, timestamp: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A Stripe event JSON for a payment intent.
pub fn intent_event(event_id: &str, event_type: &str, intent: &str, status: &str, extra: Value) -> String {
    let mut object = serde_json::json!({"id": intent, "object": "payment_intent", "status": status});
    if let (Value::Object(o), Value::Object(e)) = (&mut object, extra) {
        o.extend(e);
    }
    serde_json::json!({"id": event_id, "object": "event", "type": event_type, "data": {"object": object}})
        .to_string()
}

pub async fn outbox_count(db: &Db, event_type: &str) -> i64 {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event_type = $1")
        .bind(event_type).fetch_one(pool).await)
    .unwrap()
}

/// The data of the outbox events of a type, oldest first.
pub async fn outbox_data(db: &Db, event_type: &str) -> Vec<Value> {
    let rows: Vec<String> = with_db!(db, pool => sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE event_type = $1 ORDER BY seq").bind(event_type).fetch_all(pool).await)
    .unwrap();
    rows.iter().map(|r| serde_json::from_str::<Value>(r).unwrap()["data"].clone()).collect()
}

/// The payloads the simulated provider queued for a webhook type, oldest first.
pub async fn simulated_webhooks(db: &Db, event_type: &str) -> Vec<String> {
    with_db!(db, pool => sqlx::query_scalar(
        "SELECT payload FROM simulated_webhooks WHERE event_type = $1 ORDER BY created_at, id")
        .bind(event_type).fetch_all(pool).await)
    .unwrap()
}

pub async fn count(db: &Db, sql: &str) -> i64 {
    with_db!(db, pool => sqlx::query_scalar(sql).fetch_one(pool).await).unwrap()
}

pub async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1000 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
