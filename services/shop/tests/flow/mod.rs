//! The checkout flow as a black-box user of the public API drives it, against any base URL
//! (one process or services apart).
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

/// How long the flow waits for an asynchronous step (events crossing services).
const WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Api {
    base: String,
    c: reqwest::Client,
    /// Logins are throttled per account: the admin logs in once.
    admin: std::sync::Arc<tokio::sync::OnceCell<String>>,
}

pub fn address() -> Value {
    json!({
        "name": "Ada Lovelace", "line1": "12 Analytical Row", "city": "Springfield",
        "postalCode": "12345", "country": "US"
    })
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api { base: base.into(), c: reqwest::Client::new(), admin: Default::default() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn read(res: reqwest::Response) -> (u16, Value) {
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let mut req = self.c.get(self.url(path));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        Self::read(req.send().await.unwrap()).await
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let mut req = self.c.post(self.url(path)).json(body);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        Self::read(req.send().await.unwrap()).await
    }

    pub async fn patch(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        Self::read(self.c.patch(self.url(path)).bearer_auth(token).json(body).send().await.unwrap()).await
    }

    pub async fn post_idem(&self, token: &str, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let req = self.c.post(self.url(path)).bearer_auth(token).header("Idempotency-Key", key).json(body);
        Self::read(req.send().await.unwrap()).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, v) = Self::read(
            self.c
                .post(self.url("/api/v1/auth/login"))
                .json(&json!({ "email": email, "password": password }))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "login as {email}: {v}");
        v["accessToken"].as_str().unwrap().to_string()
    }

    /// A new customer who verified their address with the mailed link: (access token, email).
    pub async fn register(&self) -> (String, String) {
        let email = self.register_unverified().await;
        let mail =
            crate::support::smtp::wait_for_mail(&self.maildir(), &email, "confirm your email", 1).await;
        let token = crate::support::smtp::link_token(&mail);
        let (status, v) = self.post("", "/api/v1/auth/verify-email", &json!({ "token": token })).await;
        assert_eq!(status, 204, "verify-email: {v}");
        (self.login(&email, "Buyer12345").await, email)
    }

    /// A new customer who has not opened the verification link: their email (password
    /// `Buyer12345`).
    pub async fn register_unverified(&self) -> String {
        let email = format!("buyer-{}@example.com", Uuid::now_v7().simple());
        let body = json!({ "email": email, "password": "Buyer12345", "firstName": "Bea" });
        let (status, v) =
            Self::read(self.c.post(self.url("/api/v1/auth/register")).json(&body).send().await.unwrap())
                .await;
        assert_eq!(status, 202, "register: {v}");
        email
    }

    /// Where the SMTP test server keeps the messages it received.
    pub fn maildir(&self) -> std::path::PathBuf {
        crate::support::smtp::smtp().maildir.clone()
    }

    pub async fn admin(&self) -> String {
        self.admin.get_or_init(|| self.login("admin@example.com", "Admin123!")).await.clone()
    }

    pub async fn stock(&self, product: Uuid) -> Value {
        let admin = self.admin().await;
        let (status, v) = self.get(&admin, &format!("/api/v1/inventory/{product}")).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// A seeded, active product with at least `min` units available.
    pub async fn product_with_stock(&self, min: i64) -> Uuid {
        let admin = self.admin().await;
        let (_, page) = self.get(&admin, "/api/v1/inventory?pageSize=100").await;
        for s in page["items"].as_array().unwrap() {
            if s["availableQuantity"].as_i64().unwrap() < min + 10 {
                continue;
            }
            let id: Uuid = s["productId"].as_str().unwrap().parse().unwrap();
            let (status, p) = self.get(&admin, &format!("/api/v1/products/{id}")).await;
            if status == 200 && p["active"] == true {
                return id;
            }
        }
        panic!("no seeded product with stock: {page}");
    }

    /// A new product (admin) with exactly `quantity` units.
    pub async fn new_product_with_stock(&self, quantity: i64) -> Uuid {
        let admin = self.admin().await;
        let (_, page) = self.get(&admin, "/api/v1/products?pageSize=1").await;
        let category = page["items"][0]["category"]["id"].clone();
        let sku = format!("RACE-{}", Uuid::now_v7().simple());
        let (status, p) = self
            .post(
                &admin,
                "/api/v1/products",
                &json!({ "name": format!("Last One {sku}"), "sku": sku, "price": {"amount": 1999, "currency": "USD"}, "categoryId": category }),
            )
            .await;
        assert_eq!(status, 201, "{p}");
        let id: Uuid = p["id"].as_str().unwrap().parse().unwrap();
        let (status, s) = self
            .post(&admin, "/api/v1/inventory", &json!({ "productId": id, "sku": sku, "quantity": quantity }))
            .await;
        assert_eq!(status, 201, "{s}");
        id
    }

    pub async fn add_to_cart(&self, token: &str, product: Uuid, quantity: i64) {
        let (status, v) = self
            .post(token, "/api/v1/cart/items", &json!({ "productId": product, "quantity": quantity }))
            .await;
        assert!(status == 200 || status == 201, "add to cart: {status} {v}");
    }

    pub async fn checkout(&self, token: &str, key: &str) -> (u16, Value) {
        self.post_idem(
            token,
            "/api/v1/orders/checkout",
            key,
            &json!({ "shippingAddress": address(), "shippingMethod": "standard" }),
        )
        .await
    }

    pub async fn order_items(&self, token: &str, product: Uuid, quantity: i64) -> (u16, Value) {
        let body = json!({ "items": [{ "productId": product, "quantity": quantity }], "shippingAddress": address() });
        self.post_idem(token, "/api/v1/orders", &Uuid::now_v7().to_string(), &body).await
    }

    /// Pays an order on the hosted payment page (the simulated provider's own page): create a
    /// checkout session, open its page, submit the form. Returns the redirect target.
    pub async fn pay_hosted(&self, token: &str, order: &str, card: &str) -> String {
        let body = json!({ "orderId": order, "successUrl": "http://localhost:8080/thanks", "cancelUrl": "http://localhost:8080/cart" });
        let (status, session) = self
            .post_idem(token, "/api/v1/payments/checkout-session", &Uuid::now_v7().to_string(), &body)
            .await;
        assert_eq!(status, 201, "{session}");
        let page_url = self.url(session["url"].as_str().unwrap());
        let page = self.c.get(&page_url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(html.contains("pm_card_visa") && html.contains("<form"), "{html}");
        let no_redirect =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let res = no_redirect
            .post(format!("{page_url}/pay"))
            .form(&[("paymentMethod", card)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{:?}", res.text().await);
        res.headers()["location"].to_str().unwrap().to_string()
    }

    /// Creates the payment intent of an order and confirms it with `card`.
    pub async fn pay(&self, token: &str, order: &str, card: &str) -> (Value, (u16, Value)) {
        let (status, intent) = self
            .post_idem(
                token,
                "/api/v1/payments/intent",
                &Uuid::now_v7().to_string(),
                &json!({ "orderId": order }),
            )
            .await;
        assert!(status == 201 || status == 200, "intent: {status} {intent}");
        assert!(intent["clientSecret"].is_string(), "{intent}");
        let id = intent["id"].as_str().unwrap();
        let confirmed = self
            .post(token, &format!("/api/v1/payments/{id}/confirm"), &json!({ "paymentMethod": card }))
            .await;
        (intent, confirmed)
    }

    pub async fn wait_order(&self, token: &str, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (code, o) = self.get(token, &format!("/api/v1/orders/{id}")).await;
            assert_eq!(code, 200, "{o}");
            if o["status"] == status {
                return o;
            }
            assert!(tokio::time::Instant::now() < deadline, "order never became {status}: {o}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_payment(&self, token: &str, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (code, p) = self.get(token, &format!("/api/v1/payments/{id}")).await;
            assert_eq!(code, 200, "{p}");
            if p["status"] == status {
                return p;
            }
            assert!(tokio::time::Instant::now() < deadline, "payment never became {status}: {p}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_stock(&self, product: Uuid, available: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let s = self.stock(product).await;
            if s["availableQuantity"] == available {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "stock never became {available}: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// register → cart → checkout → intent → confirm → PAID and stock committed → captured →
/// shipped → delivered; a declined card → FAILED and stock released; cancel a paid order →
/// refund recorded, stock back.
pub async fn full_flow(api: &Api) {
    let admin = api.admin().await;
    let (user, _email) = api.register().await;
    let product = api.product_with_stock(5).await;
    let before = api.stock(product).await;
    let (avail, total) =
        (before["availableQuantity"].as_i64().unwrap(), before["totalQuantity"].as_i64().unwrap());

    // Checkout from the cart.
    api.add_to_cart(&user, product, 2).await;
    let (status, order) = api.checkout(&user, &Uuid::now_v7().to_string()).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "AWAITING_PAYMENT", "{order}");
    let id = order["id"].as_str().unwrap().to_string();
    let unit = order["items"][0]["unitPrice"]["amount"].as_i64().unwrap();
    assert_eq!(order["subtotal"]["amount"].as_i64().unwrap(), unit * 2);
    assert_eq!(
        order["total"]["amount"].as_i64().unwrap(),
        order["subtotal"]["amount"].as_i64().unwrap()
            + order["shippingCost"]["amount"].as_i64().unwrap()
            + order["tax"]["amount"].as_i64().unwrap()
    );
    let (_, cart) = api.get(&user, "/api/v1/cart").await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 0, "checkout empties the cart: {cart}");
    assert_eq!(api.stock(product).await["availableQuantity"].as_i64().unwrap(), avail - 2, "reserved");
    // Someone else cannot see it.
    let (other, _) = api.register().await;
    assert_eq!(api.get(&other, &format!("/api/v1/orders/{id}")).await.0, 404);

    // Pay with a good card.
    let (intent, (status, confirmed)) = api.pay(&user, &id, "pm_card_visa").await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(intent["amount"], order["total"], "the amount comes from the order");
    let payment = intent["id"].as_str().unwrap().to_string();
    let paid = api.wait_order(&user, &id, "PAID").await;
    assert_eq!(paid["paymentId"].as_str(), Some(payment.as_str()));
    let s = api.stock(product).await;
    assert_eq!(
        (s["availableQuantity"].as_i64().unwrap(), s["totalQuantity"].as_i64().unwrap()),
        (avail - 2, total - 2),
        "committed"
    );
    // The order confirmed: the payment service captures.
    api.wait_payment(&user, &payment, "CAPTURED").await;
    let (_, by_order) = api.get(&user, &format!("/api/v1/payments/order/{id}")).await;
    assert_eq!(by_order.as_array().map(|a| a.len()), Some(1), "{by_order}");

    // Admin ships and delivers; illegal moves are refused.
    let (status, body) =
        api.patch(&user, &format!("/api/v1/orders/{id}/status"), &json!({ "status": "SHIPPED" })).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        api.patch(&admin, &format!("/api/v1/orders/{id}/status"), &json!({ "status": "SHIPPED" })).await;
    assert_eq!(status, 422, "carrier and tracking number required: {body}");
    let (status, body) =
        api.patch(&admin, &format!("/api/v1/orders/{id}/status"), &json!({ "status": "DELIVERED" })).await;
    assert_eq!(status, 409, "not shipped yet: {body}");
    let (status, shipped) = api
        .patch(
            &admin,
            &format!("/api/v1/orders/{id}/status"),
            &json!({ "status": "SHIPPED", "carrier": "UPS", "trackingNumber": "1Z999AA10123456784" }),
        )
        .await;
    assert_eq!(status, 200, "{shipped}");
    let (status, body) = api.post(&user, &format!("/api/v1/orders/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 409, "a customer cannot cancel a shipped order: {body}");
    let (status, delivered) =
        api.patch(&admin, &format!("/api/v1/orders/{id}/status"), &json!({ "status": "DELIVERED" })).await;
    assert_eq!(status, 200, "{delivered}");
    let (status, tracking) = api.get(&user, &format!("/api/v1/orders/{id}/tracking")).await;
    assert_eq!(status, 200, "{tracking}");
    assert_eq!(tracking["carrier"], "UPS");
    assert_eq!(tracking["status"], "DELIVERED");
    assert_eq!(tracking["shipmentStatus"], "DELIVERED");
    assert!(tracking["deliveredAt"].is_string(), "{tracking}");
    let path: Vec<&str> =
        tracking["events"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap()).collect();
    assert_eq!(path, ["PENDING", "AWAITING_PAYMENT", "PAID", "SHIPPED", "DELIVERED"]);

    // Hosted checkout: the platform's own payment page, paid with a test card.
    let (status, order) = api.order_items(&user, product, 1).await;
    assert_eq!(status, 201, "{order}");
    let hosted = order["id"].as_str().unwrap().to_string();
    let back = api.pay_hosted(&user, &hosted, "pm_card_visa").await;
    assert!(back.starts_with("http://localhost:8080/thanks"), "{back}");
    let paid = api.wait_order(&user, &hosted, "PAID").await;
    assert!(
        paid["paidAt"].is_string() && paid["chargeId"].is_string(),
        "charge id and paid time on the order: {paid}"
    );

    // The gateway's aggregate: the order, its products and its payment status in one call.
    let (status, view) = api.get(&user, &format!("/api/v1/bff/orders/{id}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["order"]["status"], "DELIVERED");
    assert_eq!(view["paymentStatus"], "CAPTURED", "{view}");
    assert_eq!(view["products"][0]["id"], json!(product), "{view}");
    assert_eq!(view["degraded"], json!([]));
    assert_eq!(api.get(&other, &format!("/api/v1/bff/orders/{id}")).await.0, 404);

    // A declined card: the order fails and the stock comes back.
    let avail = api.stock(product).await["availableQuantity"].as_i64().unwrap();
    let (status, order) = api.order_items(&user, product, 1).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_string();
    let (_, (status, declined)) = api.pay(&user, &id, "pm_card_chargeDeclined").await;
    assert_eq!(status, 402, "{declined}");
    let failed = api.wait_order(&user, &id, "FAILED").await;
    assert!(failed["failureReason"].as_str().unwrap().contains("payment failed"), "{failed}");
    api.wait_stock(product, avail).await;

    // Cancel a paid order: refund recorded, stock back.
    let (status, order) = api.order_items(&user, product, 3).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_string();
    let (intent, (status, _)) = api.pay(&user, &id, "4242424242424242").await;
    assert_eq!(status, 200);
    let payment = intent["id"].as_str().unwrap().to_string();
    api.wait_order(&user, &id, "PAID").await;
    api.wait_payment(&user, &payment, "CAPTURED").await;
    let (status, cancelled) = api
        .post(&user, &format!("/api/v1/orders/{id}/cancel"), &json!({ "reason": "changed my mind" }))
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELLED");
    let refunded = api.wait_payment(&user, &payment, "REFUNDED").await;
    assert_eq!(refunded["refundedAmount"], order["total"]["amount"], "{refunded}");
    assert_eq!(refunded["refunds"].as_array().unwrap().len(), 1, "{refunded}");
    api.wait_stock(product, avail).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, o) = api.get(&user, &format!("/api/v1/orders/{id}")).await;
        if o["paymentStatus"] == "REFUNDED" {
            assert_eq!(o["refundedAmount"], order["total"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "order never learnt of the refund: {o}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/v1/info` lists every service, up, with its build — to admins only.
pub async fn every_service_reports_its_info(api: &Api) {
    let (status, _) = api.get("", "/api/v1/info").await;
    assert_eq!(status, 401, "build details are not public");
    let (customer, _) = api.register().await;
    let (status, _) = api.get(&customer, "/api/v1/info").await;
    assert_eq!(status, 403, "nor a customer's business");
    let (status, rows) = api.get(&api.admin().await, "/api/v1/info").await;
    assert_eq!(status, 200, "{rows}");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), kit::contract::ServiceName::ALL.len(), "{rows:?}");
    for r in rows {
        assert_eq!(r["status"], "up", "{r}");
        assert!(r["info"]["version"].is_string() && r["info"]["gitRevision"].is_string(), "{r}");
        assert_ne!(r["info"]["buildTime"], "1970-01-01T00:00:00Z", "{r}");
    }
}

/// A raw request over TCP: the path goes out byte for byte (an HTTP client library would
/// resolve dot segments before sending). Returns the status and the body.
pub async fn raw_request(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// A token pair from a login.
pub struct Session {
    pub access: String,
    pub refresh: String,
}

impl Api {
    pub async fn session(&self, email: &str, password: &str) -> Session {
        let (status, v) =
            self.post("", "/api/v1/auth/login", &json!({ "email": email, "password": password })).await;
        assert_eq!(status, 200, "login as {email}: {v}");
        Session {
            access: v["accessToken"].as_str().unwrap().into(),
            refresh: v["refreshToken"].as_str().unwrap().into(),
        }
    }

    /// Waits until `token` is refused (401 `token_revoked`) on a route that reaches a service,
    /// and returns how long that took: revocation must hold within 5 s.
    pub async fn refused_within_5s(&self, token: &str, what: &str) -> Duration {
        let start = std::time::Instant::now();
        loop {
            let (status, v) = self.get(token, "/api/v1/orders").await;
            if status == 401 {
                assert_eq!(v["code"], "token_revoked", "{what}: {v}");
                return start.elapsed();
            }
            assert_eq!(status, 200, "{what}: {v}");
            assert!(start.elapsed() < Duration::from_secs(5), "{what}: the token still works after 5 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Self-service and revocation as a customer meets them through the gateway (issue 19): sign-up
/// with verification, checkout refused until verified, password change signing out the other
/// session, reset through the mailed link, registration of a taken address, signing out
/// everywhere, a disabled account, and the edge's refusals. `internal_token` is the platform's.
pub async fn identity_flow(api: &Api, internal_token: &str) {
    let maildir = api.maildir();

    // Sign-up: 202 whether or not the address is taken; unverified accounts cannot order.
    let email = api.register_unverified().await;
    let s = api.session(&email, "Buyer12345").await;
    let (_, me) = api.get(&s.access, "/api/v1/auth/me").await;
    assert_eq!(me["emailVerified"], false, "{me}");
    let (status, v) = api.checkout(&s.access, &Uuid::now_v7().to_string()).await;
    assert_eq!((status, v["code"].as_str()), (403, Some("email_unverified")), "{v}");
    let mail = crate::support::smtp::wait_for_mail(&maildir, &email, "confirm your email", 1).await;
    let (status, v) = api
        .post("", "/api/v1/auth/verify-email", &json!({ "token": crate::support::smtp::link_token(&mail) }))
        .await;
    assert_eq!(status, 204, "{v}");
    let (status, v) = api
        .post("", "/api/v1/auth/verify-email", &json!({ "token": crate::support::smtp::link_token(&mail) }))
        .await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_token")), "single use: {v}");
    let (_, me) = api.get(&api.login(&email, "Buyer12345").await, "/api/v1/auth/me").await;
    assert_eq!(me["emailVerified"], true, "{me}");

    // The same answer for a taken address; its owner is told by mail.
    let body = json!({ "email": email, "password": "Other12345" });
    let (status, taken) = api.post("", "/api/v1/auth/register", &body).await;
    let fresh =
        json!({ "email": format!("new-{}@example.com", Uuid::now_v7().simple()), "password": "Other12345" });
    let (fresh_status, fresh) = api.post("", "/api/v1/auth/register", &fresh).await;
    assert_eq!((status, &taken), (fresh_status, &fresh), "no enumeration through registration");
    crate::support::smtp::wait_for_mail(&maildir, &email, "already have", 1).await;

    // Password change: the other session's refresh and access tokens stop working.
    let a = api.session(&email, "Buyer12345").await;
    let b = api.session(&email, "Buyer12345").await;
    let (status, v) = api
        .post(
            &a.access,
            "/api/v1/auth/password",
            &json!({ "currentPassword": "Buyer12345", "newPassword": "Changed12345" }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let renewed = v["accessToken"].as_str().unwrap().to_string();
    let (status, v) = api.post("", "/api/v1/auth/refresh", &json!({ "refreshToken": b.refresh })).await;
    assert_eq!(status, 401, "the other session's refresh: {v}");
    let took =
        api.refused_within_5s(&b.access, "the other session's access token after a password change").await;
    println!("access token refused {took:?} after the password change");
    api.refused_within_5s(&a.access, "the old access token of the changing session").await;
    assert_eq!(api.get(&renewed, "/api/v1/orders").await.0, 200, "the pair the change answered works");
    crate::support::smtp::wait_for_mail(&maildir, &email, "password was changed", 1).await;

    // Reset through the mailed link: single use; every session signed out.
    let before = api.session(&email, "Changed12345").await;
    let (status, known) = api.post("", "/api/v1/auth/password-reset", &json!({ "email": email })).await;
    let (_, unknown) = api
        .post(
            "",
            "/api/v1/auth/password-reset",
            &json!({ "email": format!("nobody-{}@example.com", Uuid::now_v7().simple()) }),
        )
        .await;
    assert_eq!((status, &known), (202, &unknown), "no enumeration through reset requests");
    let mail = crate::support::smtp::wait_for_mail(&maildir, &email, "reset your", 1).await;
    let token = crate::support::smtp::link_token(&mail);
    assert!(!mail["text"].as_str().unwrap().contains("Changed12345"));
    let confirm = json!({ "token": token, "newPassword": "Reset12345" });
    let (status, v) = api.post("", "/api/v1/auth/password-reset/confirm", &confirm).await;
    assert_eq!(status, 204, "{v}");
    let (status, v) = api.post("", "/api/v1/auth/password-reset/confirm", &confirm).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_token")), "used: {v}");
    let (status, v) = api.post("", "/api/v1/auth/refresh", &json!({ "refreshToken": before.refresh })).await;
    assert_eq!(status, 401, "{v}");
    api.refused_within_5s(&before.access, "an access token after a password reset").await;
    let (status, _) =
        api.post("", "/api/v1/auth/login", &json!({ "email": email, "password": "Changed12345" })).await;
    assert_eq!(status, 401, "the old password");
    let s = api.session(&email, "Reset12345").await;

    // Signing out everywhere.
    let other = api.session(&email, "Reset12345").await;
    assert_eq!(api.post(&s.access, "/api/v1/auth/logout-all", &json!({})).await.0, 204);
    api.refused_within_5s(&other.access, "an access token after logout-all").await;
    assert_eq!(api.post("", "/api/v1/auth/refresh", &json!({ "refreshToken": other.refresh })).await.0, 401);

    // A disabled account: its token is refused within 5 s, its refresh at once.
    let s = api.session(&email, "Reset12345").await;
    let admin = api.admin().await;
    let id = api.get(&s.access, "/api/v1/auth/me").await.1["id"].as_str().unwrap().to_string();
    let (status, v) = api.post(&admin, &format!("/api/v1/users/{id}/disable"), &json!({})).await;
    assert_eq!(status, 200, "{v}");
    let took = api.refused_within_5s(&s.access, "a disabled user's access token").await;
    println!("a disabled user's access token refused after {took:?}");
    assert_eq!(api.post("", "/api/v1/auth/refresh", &json!({ "refreshToken": s.refresh })).await.0, 401);

    // The edge: dot segments (raw or encoded) and backslashes never reach a route; a client's
    // internal credential is dropped.
    let base = api.url("");
    for path in [
        "/api/v1/orders/%2e%2e/%2e%2e/%2e%2e/readyz",
        "/api/v1/orders/%2E%2E/%2e%2E/metrics",
        "/api/v1/orders/../../info",
        "/api/v1/orders/.%2e/.%2e/readyz",
        "/api/v1/orders\\..\\..\\readyz",
        "/api/v1/orders/%5c..%5c..%5creadyz",
    ] {
        let (status, text) = raw_request(&base, "GET", path, &[]).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("bad_path"), "{path}: {text}");
    }
    let probe = format!("/api/v1/inventory/reservations/{}", Uuid::now_v7());
    let (status, text) = raw_request(&base, "GET", &probe, &[("x-internal-token", internal_token)]).await;
    assert_eq!(status, 401, "a client-sent x-internal-token must not authenticate: {text}");
}

/// 1,000 made-up HTTP methods leave the `method` label of the HTTP metrics with the standard
/// names and `OTHER` only.
pub async fn made_up_methods_create_no_series(api: &Api) {
    let c = reqwest::Client::new();
    for i in 0..1000 {
        let m = reqwest::Method::from_bytes(format!("X{}{i}", Uuid::now_v7().simple()).as_bytes()).unwrap();
        let path = if i % 2 == 0 { "/api/v1/auth/me" } else { "/api/v1/orders/x" };
        let res = c.request(m, api.url(path)).send().await.unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    let metrics = c.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let mut methods = std::collections::BTreeSet::new();
    for line in metrics.lines().filter(|l| l.starts_with("http_requests_total{")) {
        if let Some(at) = line.find("method=\"") {
            let rest = &line[at + 8..];
            methods.insert(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    assert!(methods.contains("OTHER"), "{methods:?}");
    let standard = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"];
    assert!(methods.iter().all(|m| standard.contains(&m.as_str())), "{methods:?}");
}

/// One customer may hold three unpaid orders at once (the default): the fourth is refused with
/// 409 `unpaid_order_limit` and stores nothing; cancelling one frees its place.
pub async fn unpaid_orders_are_capped(api: &Api) {
    let (user, _) = api.register().await;
    let product = api.product_with_stock(10).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, o) = api.order_items(&user, product, 1).await;
        assert!(status == 201 || status == 202, "{status} {o}");
        ids.push(o["id"].as_str().unwrap().to_string());
    }
    let (status, p) = api.order_items(&user, product, 1).await;
    assert_eq!((status, p["code"].as_str()), (409, Some("unpaid_order_limit")), "{p}");
    let (_, mine) = api.get(&user, "/api/v1/orders").await;
    assert_eq!(mine["total"], 3, "the refused order was not stored: {mine}");
    let (status, c) = api.post(&user, &format!("/api/v1/orders/{}/cancel", ids[0]), &json!({})).await;
    assert_eq!(status, 200, "{c}");
    let (status, o) = api.order_items(&user, product, 1).await;
    assert!(status == 201 || status == 202, "a cancelled order frees its place: {status} {o}");
    for id in ids.iter().skip(1).chain([&o["id"].as_str().unwrap().to_string()]) {
        let (status, c) = api.post(&user, &format!("/api/v1/orders/{id}/cancel"), &json!({})).await;
        assert_eq!(status, 200, "{c}");
    }
}
