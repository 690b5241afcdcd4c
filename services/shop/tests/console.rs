//! The admin console's server side, as a browser meets it, through the gateway over real HTTP
//! with every service in one process: the page and its files, the cookie session (sign-in,
//! CSRF, refresh, sign-out), the event browser's stream, and the endpoints the console added.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use shop::compose;

mod flow;
mod support;

use flow::*;
use support::*;

/// A browser's cookie jar for one origin, kept by hand so the tests see every attribute.
#[derive(Default, Clone)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() && !v.contains("Max-Age=0") {
                self.0.push((name.to_string(), value.to_string()));
            }
        }
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    /// The `Cookie` header for `path` (the refresh cookie only goes to the session routes).
    fn header(&self, path: &str) -> HeaderValue {
        let s: Vec<String> = self
            .0
            .iter()
            .filter(|(n, _)| n != "shop_refresh" || path.starts_with("/api/v1/console/session"))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        HeaderValue::from_str(&s.join("; ")).unwrap()
    }
}

struct Browser {
    c: reqwest::Client,
    base: String,
    host: String,
    jar: Jar,
    csrf: Option<String>,
}

impl Browser {
    fn new(shop: &Running) -> Browser {
        Browser {
            c: reqwest::Client::new(),
            base: shop.url(""),
            host: shop.addr.to_string(),
            jar: Jar::default(),
            csrf: None,
        }
    }

    /// A same-origin request as a page of the console sends it.
    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self
            .c
            .request(method.clone(), format!("{}{path}", self.base))
            .header("sec-fetch-site", "same-origin")
            .header(COOKIE, self.jar.header(path));
        if method != reqwest::Method::GET {
            req = req.header("origin", format!("http://{}", self.host));
            if let Some(t) = &self.csrf {
                req = req.header("x-csrf-token", t);
            }
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        self.jar.take(&headers);
        let text = res.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> (StatusCode, HeaderMap, Value) {
        let r = self
            .send(
                reqwest::Method::POST,
                "/api/v1/console/session",
                Some(json!({"email": email, "password": password})),
            )
            .await;
        if r.0 == StatusCode::OK {
            self.csrf = r.2["csrfToken"].as_str().map(str::to_string);
        }
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_page_its_session_and_its_endpoints() {
    let dir = temp_dir();
    let settings = test_settings(&dir);
    let running = compose::embedded(&settings, true).await.unwrap();
    let shop = spawn(running.app.clone()).await;
    let c = reqwest::Client::new();

    // ---- the page and its files
    for path in ["/admin", "/admin/", "/admin/orders/0193", "/admin/events?orderId=x"] {
        let res = c.get(shop.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
        assert!(res.text().await.unwrap().contains("/admin/assets/js/app.js"));
    }
    let res = c.get(shop.url("/admin/assets/js/app.js")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let etag = res.headers()["etag"].clone();
    let res = c.get(shop.url("/admin/assets/js/app.js")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(res.status(), 304, "unchanged files are not sent again");
    let res = c.get(shop.url("/admin/assets/js/nope.js")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    // ---- signing in: admins only, from this site only
    let mut b = Browser::new(&shop);
    let (s, h, v) = b.sign_in("customer@example.com", "Customer123!").await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("console_admin_only")), "{v}");
    assert!(h.get(SET_COOKIE).is_none(), "no session for a customer");
    let (s, _, v) = b.sign_in("vendor@example.com", "Vendor123!").await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("console_admin_only")), "{v}");
    let (s, _, v) = b.sign_in("admin@example.com", "wrong-Password1").await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")), "{v}");
    let cross = c
        .post(shop.url("/api/v1/console/session"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"email": "admin@example.com", "password": "Admin123!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "another site's page cannot sign anyone in");
    assert!(cross.headers().get(SET_COOKIE).is_none());

    let (s, h, v) = b.sign_in("admin@example.com", "Admin123!").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["email"], "admin@example.com");
    assert!(v["expiresIn"].as_u64().unwrap() > 60);
    assert!(
        v.get("accessToken").is_none() && v.get("refreshToken").is_none(),
        "no token reaches the page: {v}"
    );
    let cookies: Vec<&str> = h.get_all(SET_COOKIE).iter().map(|c| c.to_str().unwrap()).collect();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    for c in &cookies {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"), "{c}");
    }
    assert!(cookies
        .iter()
        .any(|c| c.starts_with("shop_refresh=") && c.contains("Path=/api/v1/console/session")));
    assert_eq!(
        b.jar.get("shop_csrf"),
        v["csrfToken"].as_str(),
        "the CSRF token is the session's cookie value"
    );
    let (s, _, v) = b.send(reqwest::Method::GET, "/api/v1/console/session", None).await;
    assert_eq!((s, v["user"]["email"].as_str()), (StatusCode::OK, Some("admin@example.com")), "{v}");
    assert_eq!(v["csrfToken"].as_str(), b.csrf.as_deref());

    // ---- the cookie authenticates API calls; state changes need the CSRF token
    let (s, _, users) = b.send(reqwest::Method::GET, "/api/v1/users?email=customer001", None).await;
    assert_eq!(s, StatusCode::OK, "{users}");
    let victim = users["items"][0]["id"].as_str().unwrap().to_string();
    let disable = format!("/api/v1/users/{victim}/disable");
    let token = b.csrf.take();
    let (s, _, v) = b.send(reqwest::Method::POST, &disable, None).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("csrf_failed")), "no token: {v}");
    b.csrf = Some("not-the-token".into());
    let (s, _, v) = b.send(reqwest::Method::POST, &disable, None).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("csrf_failed")), "wrong token: {v}");
    b.csrf = token;
    let forged = c
        .post(shop.url(&disable))
        .header(COOKIE, b.jar.header(&disable))
        .header("x-csrf-token", b.csrf.clone().unwrap())
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "the right token from another origin");
    let (_, _, still) = b.send(reqwest::Method::GET, &format!("/api/v1/users/{victim}"), None).await;
    assert_eq!(still["disabled"], false, "nothing changed: {still}");
    let (s, _, v) = b.send(reqwest::Method::POST, &disable, None).await;
    assert_eq!((s, v["disabled"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    let (s, _, _) = b.send(reqwest::Method::POST, &format!("/api/v1/users/{victim}/enable"), None).await;
    assert_eq!(s, StatusCode::OK);

    // A session cookie that no longer verifies (expired, forged) is ignored: public routes
    // answer as usual, the others ask for a token (on which the console refreshes).
    let stale = |path: &str| {
        c.get(shop.url(path)).header(COOKIE, "shop_session=eyJhbGciOiJFZERTQSJ9.e30.AAAA; shop_csrf=x")
    };
    assert_eq!(stale("/api/v1/products?pageSize=1").send().await.unwrap().status(), 200);
    let refused: Value = stale("/api/v1/users").send().await.unwrap().json().await.unwrap();
    assert_eq!(refused["code"], "token_missing", "{refused}");

    // ---- refresh: new cookies; the old refresh token is spent
    let (old_session, old_refresh) =
        (b.jar.get("shop_session").unwrap().to_string(), b.jar.get("shop_refresh").unwrap().to_string());
    let (s, _, v) = b.send(reqwest::Method::POST, "/api/v1/console/session/refresh", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_ne!(b.jar.get("shop_refresh").unwrap(), old_refresh);
    assert_ne!(b.jar.get("shop_session").unwrap(), old_session);
    assert_eq!(v["csrfToken"].as_str(), b.csrf.as_deref(), "the CSRF token lasts the whole session");
    let (s, _, _) = b.send(reqwest::Method::GET, "/api/v1/users?pageSize=1", None).await;
    assert_eq!(s, StatusCode::OK);
    let replay = c
        .post(shop.url("/api/v1/console/session/refresh"))
        .header(COOKIE, format!("shop_refresh={old_refresh}; shop_csrf={}", b.csrf.clone().unwrap()))
        .header("x-csrf-token", b.csrf.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["code"], "refresh_token_reused", "{replay}");

    // The replay revoked the whole session (reuse detection): signing in again.
    let (s, _, v) = b.send(reqwest::Method::POST, "/api/v1/console/session/refresh", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(b.jar.get("shop_refresh").is_none(), "a failed refresh clears the cookies");
    let (s, _, _) = b.sign_in("admin@example.com", "Admin123!").await;
    assert_eq!(s, StatusCode::OK);

    // ---- the event browser: admins only, receives what the shop publishes
    let api = Api::new(shop.url(""));
    let (customer, _) = api.register().await;
    let res = c.get(shop.url("/api/v1/events/stream")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = c.get(shop.url("/api/v1/events/stream")).bearer_auth(&customer).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let res = c.get(shop.url("/api/v1/events")).bearer_auth(&customer).send().await.unwrap();
    assert_eq!(res.status(), 403);

    let mut stream = c
        .get(shop.url("/api/v1/events/stream?type=order."))
        .header(COOKIE, b.jar.header("/api/v1/events/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let product = api.product_with_stock(3).await;
    let (status, order) = api.order_items(&customer, product, 1).await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["id"].as_str().unwrap().to_string();
    let mut text = String::new();
    let placed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let chunk = stream.chunk().await.unwrap().expect("the stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
            // One SSE message per blank line.
            while let Some(end) = text.find("\n\n") {
                let message: String = text.drain(..end + 2).collect();
                let data: String =
                    message.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                if message.lines().any(|l| l == "event: event") {
                    let ev: Value = serde_json::from_str(&data).unwrap();
                    assert!(ev["type"].as_str().unwrap().starts_with("order."), "the filter holds: {ev}");
                    if ev["type"] == "order.placed" && ev["subject"] == order_id.as_str() {
                        return ev;
                    }
                }
            }
        }
    })
    .await
    .expect("order.placed arrives on the stream");
    assert_eq!(placed["topic"], "orders");
    assert!(placed["correlationId"].is_string() && placed["time"].is_string(), "{placed}");
    drop(stream);

    let (s, _, recent) =
        b.send(reqwest::Method::GET, &format!("/api/v1/events?orderId={order_id}&limit=50"), None).await;
    assert_eq!(s, StatusCode::OK, "{recent}");
    let types: Vec<&str> =
        recent["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"order.placed") && types.contains(&"inventory.reserved"), "{types:?}");
    assert!(recent["recorded"].as_u64().unwrap() >= types.len() as u64);
    assert_eq!(recent["capacity"], 1000);

    // ---- orders by customer email, and the dashboard's summary
    let email = order["customerEmail"].as_str().expect("the order knows its customer's email").to_string();
    let (s, _, found) =
        b.send(reqwest::Method::GET, &format!("/api/v1/orders?email={}", &email[..12]), None).await;
    assert_eq!(s, StatusCode::OK, "{found}");
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["items"][0]["id"], order_id.as_str());
    let (s, _, summary) = b.send(reqwest::Method::GET, "/api/v1/orders/summary", None).await;
    assert_eq!(s, StatusCode::OK, "{summary}");
    assert!(
        summary["orders"].as_i64().unwrap() >= 1
            && summary["byStatus"]["AWAITING_PAYMENT"].as_i64().unwrap() >= 1,
        "{summary}"
    );
    let res = c.get(shop.url("/api/v1/orders/summary")).bearer_auth(&customer).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let (s, _, _) = b.send(reqwest::Method::GET, "/api/v1/orders/summary?from=today", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // ---- signing out: CSRF-protected, the session revoked, the cookies cleared
    let refresh_cookie = b.jar.get("shop_refresh").unwrap().to_string();
    let token = b.csrf.take();
    let (s, _, v) = b.send(reqwest::Method::DELETE, "/api/v1/console/session", None).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::FORBIDDEN, Some("csrf_failed")), "{v}");
    b.csrf = token.clone();
    let (s, h, _) = b.send(reqwest::Method::DELETE, "/api/v1/console/session", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(h.get_all(SET_COOKIE).iter().filter(|c| c.to_str().unwrap().contains("Max-Age=0")).count(), 3);
    assert!(b.jar.get("shop_session").is_none());
    let (s, _, v) = b.send(reqwest::Method::GET, "/api/v1/console/session", None).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("no_session")), "{v}");
    let revoked = c
        .post(shop.url("/api/v1/console/session/refresh"))
        .header(COOKIE, format!("shop_refresh={refresh_cookie}; shop_csrf={}", token.clone().unwrap()))
        .header("x-csrf-token", token.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401, "the signed-out session cannot be refreshed");

    shop.stop().await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
