//! The gateway over real HTTP: in-process routers, remote upstreams, and the edge concerns.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use kit::contract::ServiceName;
use kit::health::Readiness;
use shop_gateway::{GatewayConfig, Upstream};

async fn spawn(app: Router) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kit::http::serve_on(listener, app, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// A stand-in catalog: echoes what reached it.
fn catalog_api() -> Router {
    Router::new()
        .route(
            "/api/v1/products",
            get(|headers: axum::http::HeaderMap, uri: axum::http::Uri| async move {
                axum::Json(serde_json::json!({
                    "query": uri.query(),
                    "requestId": headers.get("x-request-id").and_then(|v| v.to_str().ok()),
                    "traceparent": headers.get("traceparent").and_then(|v| v.to_str().ok()),
                    "forwardedFor": headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
                }))
            }),
        )
        .route("/api/v1/products/{id}", post(|body: String| async move { body }))
        .route(
            "/api/v1/products/slow/{x}",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
}

fn config() -> GatewayConfig {
    GatewayConfig { body_limit_bytes: 1024, upstream_timeout_secs: 1, ..Default::default() }
}

fn docs() -> utoipa::openapi::OpenApi {
    shop_gateway::openapi::assemble([])
}

#[tokio::test]
async fn routes_to_in_process_services() {
    let app = shop_gateway::app(
        &config(),
        vec![(ServiceName::Catalog, Upstream::Local(catalog_api()))],
        docs(),
        Readiness::new(),
        None,
    );
    let (addr, _stop) = spawn(app).await;
    let c = reqwest::Client::new();
    let res = c.get(format!("http://{addr}/api/v1/products?page=2")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["query"], "page=2");

    let res = c.get(format!("http://{addr}/api/v1/nothing-here")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let doc: serde_json::Value =
        c.get(format!("http://{addr}/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let res = c.get(format!("http://{addr}/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger"), "Swagger UI is served");
}

#[tokio::test]
async fn proxies_to_remote_services_and_normalises_their_failures() {
    let (catalog, _stop_catalog) = spawn(catalog_api()).await;
    // An address nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let app = shop_gateway::app(
        &config(),
        vec![
            (ServiceName::Catalog, Upstream::Remote(format!("http://{catalog}").parse().unwrap())),
            (ServiceName::Auth, Upstream::Remote(format!("http://{dead}").parse().unwrap())),
        ],
        docs(),
        Readiness::new(),
        None,
    );
    let (addr, _stop) = spawn(app).await;
    let c = reqwest::Client::new();

    let res = c
        .get(format!("http://{addr}/api/v1/products?q=lamp"))
        .header("x-request-id", "req-1")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["query"], "q=lamp");
    assert_eq!(v["requestId"], "req-1", "request id reaches the service");
    assert_eq!(v["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_eq!(v["forwardedFor"], "127.0.0.1");

    let res = c.post(format!("http://{addr}/api/v1/products/abc")).body("hello").send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "hello", "bodies are forwarded");

    let res =
        c.post(format!("http://{addr}/api/v1/products/abc")).body(vec![b'x'; 4096]).send().await.unwrap();
    assert_eq!(res.status(), 413, "the body limit applies at the edge");
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    let res = c.get(format!("http://{addr}/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(res.status(), 503, "an unreachable service is a 503");
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["code"], "service_unavailable");
    assert!(v["detail"].as_str().unwrap().contains("auth"));

    let res = c.get(format!("http://{addr}/api/v1/products/slow/1")).send().await.unwrap();
    assert_eq!(res.status(), 504, "a slow service is a 504");

    // One service down does not take the gateway (and every other service's routes) out of
    // rotation: it stays ready and names the upstream that is down.
    let res = c.get(format!("http://{addr}/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = res.json().await.unwrap();
    let auth = v["checks"].as_array().unwrap().iter().find(|c| c["name"] == "upstream/auth").unwrap();
    assert_eq!(auth["status"], "down", "readiness names the dependency that is down");
    assert_eq!(auth["critical"], false);
}

/// A raw request: the path goes out byte for byte (HTTP client libraries resolve dot segments
/// before sending). The status and the whole answer.
async fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    (text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), text)
}

/// A service's own surface next to its API, as a remote service has it: what traversal would
/// reach, and whether an internal credential arrived.
fn exposed_service() -> Router {
    catalog_api()
        .route("/readyz", get(|| async { "SERVICE-READYZ" }))
        .route("/metrics", get(|| async { "SERVICE-METRICS" }))
        .route(
            "/api/v1/products/internal-echo",
            get(|headers: axum::http::HeaderMap| async move {
                let internal: Vec<String> = headers
                    .keys()
                    .filter(|k| k.as_str().starts_with("x-internal"))
                    .map(|k| k.as_str().to_string())
                    .collect();
                axum::Json(serde_json::json!({ "internal": internal }))
            }),
        )
}

#[tokio::test]
async fn remote_mode_refuses_traversal_and_drops_internal_headers() {
    let (service, _stop_service) = spawn(exposed_service()).await;
    let app = shop_gateway::app(
        &config(),
        vec![(ServiceName::Catalog, Upstream::Remote(format!("http://{service}").parse().unwrap()))],
        docs(),
        Readiness::new(),
        None,
    );
    let (addr, _stop) = spawn(app).await;
    for path in [
        "/api/v1/products/%2e%2e/%2e%2e/%2e%2e/readyz",
        "/api/v1/products/%2E%2E/%2e%2E/%2e%2e/metrics",
        "/api/v1/products/../../../readyz",
        "/api/v1/products/.%2e/.%2e/.%2e/readyz",
        "/api/v1/products/%2e./%2e./%2e./readyz",
        "/api/v1/products/./../../../readyz",
        "/api/v1/products\\..\\..\\..\\readyz",
        "/api/v1/products/%5c..%5c..%5c..%5creadyz",
        "/api/v1/products/%5C..%5C..%5C..%5Cmetrics",
    ] {
        let (status, text) = raw(addr, "GET", path, &[]).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("\"bad_path\"") && text.contains("application/problem+json"), "{path}: {text}");
        assert!(!text.contains("SERVICE-"), "{path} reached the service: {text}");
    }
    // Ordinary paths with dots still pass.
    let (status, text) = raw(addr, "GET", "/api/v1/products?q=a..b", &[]).await;
    assert_eq!(status, 200, "{text}");

    let (status, text) = raw(
        addr,
        "GET",
        "/api/v1/products/internal-echo",
        &[("x-internal-token", "guess"), ("X-Internal-Anything", "x"), ("x-request-id", "r1")],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"internal\":[]"), "internal headers reached the service: {text}");
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let cfg = GatewayConfig { cors_origins: vec!["https://shop.example".into()], ..config() };
    let app = shop_gateway::app(
        &cfg,
        vec![(ServiceName::Catalog, Upstream::Local(catalog_api()))],
        docs(),
        Readiness::new(),
        None,
    );
    let (addr, _stop) = spawn(app).await;
    let c = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        c.request(reqwest::Method::OPTIONS, format!("http://{addr}/api/v1/products"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let ok = preflight("https://shop.example").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://shop.example");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

mod edge {
    use super::*;
    use kit::auth::{claims_for, roles, test_keys, Identity, SigningKey};

    const HOUR: Duration = Duration::from_secs(3600);

    fn whoami() -> Router {
        Router::new()
            .route("/api/v1/products/whoami", get(|id: Identity| async move { id.user_id.to_string() }))
    }

    async fn gateway(cfg: GatewayConfig) -> (SocketAddr, SigningKey, tokio::sync::oneshot::Sender<()>) {
        let (key, verifier) = test_keys();
        let local = whoami().layer(axum::Extension(verifier.clone()));
        let app = shop_gateway::app(
            &cfg,
            vec![(ServiceName::Catalog, Upstream::Local(local))],
            docs(),
            Readiness::new(),
            Some(verifier),
        );
        let (addr, stop) = spawn(app).await;
        (addr, key, stop)
    }

    #[tokio::test]
    async fn refuses_bad_tokens_at_the_edge() {
        let (addr, key, _stop) = gateway(config()).await;
        let c = reqwest::Client::new();
        let url = format!("http://{addr}/api/v1/products/whoami");
        let user = uuid::Uuid::now_v7();

        let good = key.sign(&claims_for(user, &[roles::CUSTOMER], None, HOUR));
        let res = c.get(&url).bearer_auth(&good).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), user.to_string(), "the verified identity reaches the service");

        let mut expired = claims_for(user, &[], None, HOUR);
        expired.exp = expired.iat - 120;
        let mut wrong_aud = claims_for(user, &[], None, HOUR);
        wrong_aud.aud = "other".into();
        let mut wrong_iss = claims_for(user, &[], None, HOUR);
        wrong_iss.iss = "other".into();
        let stranger = SigningKey::generate().sign(&claims_for(user, &[], None, HOUR));
        let cases = [
            (key.sign(&expired), "token_expired"),
            (key.sign(&wrong_aud), "token_invalid"),
            (key.sign(&wrong_iss), "token_invalid"),
            (stranger, "token_invalid"),
            ("garbage".to_string(), "token_invalid"),
        ];
        for (token, code) in cases {
            let res = c.get(&url).bearer_auth(&token).send().await.unwrap();
            assert_eq!(res.status(), 401);
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            let v: serde_json::Value = res.json().await.unwrap();
            assert_eq!(v["code"], code);
        }
        // No token at all: the gateway lets the request through; the service decides.
        assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    }

    #[tokio::test]
    async fn rate_limits_per_ip_and_per_user() {
        let cfg = GatewayConfig {
            rate_limit: shop_gateway::RateLimitConfig { read_per_minute: 3, ..Default::default() },
            ..config()
        };
        let (addr, key, _stop) = gateway(cfg).await;
        let c = reqwest::Client::new();
        let url = format!("http://{addr}/api/v1/products/whoami");
        for remaining in [2, 1, 0] {
            let res = c.get(&url).send().await.unwrap();
            assert_eq!(res.headers()["ratelimit-limit"], "3");
            assert_eq!(res.headers()["ratelimit-remaining"], remaining.to_string().as_str());
        }
        let res = c.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");

        // A signed-in user has a bucket of their own.
        let token = key.sign(&claims_for(uuid::Uuid::now_v7(), &[], None, HOUR));
        assert_eq!(c.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
        // Health endpoints are never limited.
        assert_eq!(c.get(format!("http://{addr}/healthz")).send().await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn refused_tokens_are_limited_per_address_before_anything_else() {
        let cfg = GatewayConfig {
            rate_limit: shop_gateway::RateLimitConfig { failed_auth_per_minute: 3, ..Default::default() },
            ..config()
        };
        let (addr, key, _stop) = gateway(cfg).await;
        let c = reqwest::Client::new();
        let url = format!("http://{addr}/api/v1/products/whoami");
        for i in 0..3 {
            let res = c.get(&url).bearer_auth(format!("forged-{i}")).send().await.unwrap();
            assert_eq!(res.status(), 401);
        }
        let res = c.get(&url).bearer_auth("forged-4").send().await.unwrap();
        assert_eq!(res.status(), 429, "the 4th refused token from one address");
        assert!(res.headers().contains_key("retry-after"));
        let v: serde_json::Value = res.json().await.unwrap();
        assert!(v["detail"].as_str().unwrap().contains("refused tokens"), "{v}");
        // A valid token from the same address is unaffected.
        let token = key.sign(&claims_for(uuid::Uuid::now_v7(), &[], None, HOUR));
        assert_eq!(c.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn made_up_methods_share_one_metrics_label() {
        let (addr, _key, _stop) = gateway(config()).await;
        let c = reqwest::Client::new();
        for i in 0..1000 {
            let m = reqwest::Method::from_bytes(format!("M{}X{i}", uuid::Uuid::now_v7().simple()).as_bytes())
                .unwrap();
            let res = c.request(m, format!("http://{addr}/api/v1/products/whoami")).send().await.unwrap();
            assert!(res.status().is_client_error());
        }
        let metrics = c.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
        let series: Vec<&str> = metrics.lines().filter(|l| l.starts_with("http_requests_total{")).collect();
        assert!(series.iter().any(|l| l.contains("method=\"OTHER\"")), "{metrics}");
        assert!(!metrics.contains("X0\""), "a made-up method became a label: {metrics}");
        assert!(series.len() < 50, "{} series", series.len());
    }
}

/// Two gateway replicas sharing one Redis draw from one budget per client: the third login
/// attempt is refused whichever replica it reaches. Needs Redis (`SHOP_TEST_REDIS_URL`,
/// default `redis://127.0.0.1:6379`).
#[tokio::test]
async fn rate_limits_hold_across_replicas_sharing_redis() {
    let redis = std::env::var("SHOP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut cfg = config();
    cfg.rate_limit.auth_per_minute = 2;
    cfg.rate_limit.redis_url = Some(redis.into());
    cfg.rate_limit.redis_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let auth = Router::new().route("/api/v1/auth/login", post(|| async { "token" }));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let limits = shop_gateway::edge::Limits::connect(&cfg.rate_limit).await.unwrap();
        let (api, _) = shop_gateway::api(
            &cfg,
            vec![(ServiceName::Auth, Upstream::Local(auth.clone()))],
            docs(),
            None,
            Some(limits),
        );
        replicas.push(spawn(kit::http::service_app("gateway", api, Readiness::new())).await);
    }
    let c = reqwest::Client::new();
    let login = |i: usize| c.post(format!("http://{}/api/v1/auth/login", replicas[i % 2].0)).send();
    assert_eq!(login(0).await.unwrap().status(), 200);
    assert_eq!(login(1).await.unwrap().status(), 200);
    for i in 0..2 {
        let res = login(i).await.unwrap();
        assert_eq!(res.status(), 429, "replica {i} knows the budget is spent");
        assert!(res.headers().contains_key("retry-after"));
    }
    // The same limits counted per process would have let each replica take two.
    let local = shop_gateway::edge::Limits::new(&cfg.rate_limit);
    for _ in 0..2 {
        assert!(matches!(
            local.check(shop_gateway::edge::RouteClass::Auth, "ip:127.0.0.1").await,
            shop_gateway::edge::Verdict::Allowed { .. }
        ));
    }
}

#[tokio::test]
async fn an_unreachable_rate_limit_redis_is_a_start_up_error_naming_it() {
    let mut cfg = config();
    cfg.rate_limit.redis_url = Some("redis://127.0.0.1:9/".to_string().into());
    let err = shop_gateway::edge::Limits::connect(&cfg.rate_limit).await.err().expect("refused").to_string();
    assert!(err.contains("127.0.0.1:9"), "{err}");
}
