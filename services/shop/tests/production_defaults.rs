//! Secure by default: what the `shop` binary does when nobody asked for a convenience.
//! - `serve` refuses to start without an explicit payment provider, naming the key;
//! - the container's default command (the Dockerfile's `CMD`) seeds nothing and creates no
//!   account; `shop seed` adds the sample catalog, and demo accounts only with `--demo`;
//! - operations endpoints live on their own listener; the gateway's API port answers none of
//!   `/metrics`, `/readyz`, `/info`; security headers on every answer; `no-store` on tokens;
//! - simulated payments outside the demo are announced on `/info`; a stopping process drains.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kit::db::{Db, PoolSettings};
use shop::compose;
use tower::ServiceExt;

mod support;
use support::*;

const SHOP: &str = env!("CARGO_BIN_EXE_shop");

/// The binary with a clean environment: only what the test passes.
fn shop(data_dir: &Path) -> Command {
    let mut c = Command::new(SHOP);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SHOP_DATA_DIR", data_dir)
        .env("SHOP_LOG_FORMAT", "text")
        .stdin(Stdio::null());
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn count(db_file: PathBuf, table: &str) -> i64 {
    let db = Db::connect(&format!("sqlite://{}", db_file.display()), &PoolSettings::default()).await.unwrap();
    let n: i64 = kit::with_db!(&db, pool => sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(pool).await)
    .unwrap();
    db.close().await;
    n
}

#[test]
fn serve_without_a_payment_provider_exits_naming_the_key() {
    let dir = temp_dir();
    for target in ["payment", "all"] {
        let out = shop(&dir)
            .args(["serve", target])
            .env("SHOP_DATABASE_URL", format!("sqlite://{}/payment.db", dir.display()))
            .env("SHOP_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "serve {target} started without a provider");
        assert!(stderr.contains("SHOP_PAYMENT__PROVIDER"), "serve {target}: {stderr}");
    }
}

/// The arguments of the Dockerfile's last `CMD` (the `shop` image's default command).
fn container_default_command() -> Vec<String> {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Dockerfile")).unwrap();
    let cmd = dockerfile.lines().rfind(|l| l.starts_with("CMD ")).expect("a CMD line");
    serde_json::from_str(cmd.trim_start_matches("CMD ").trim()).expect("CMD in exec form")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_default_command_creates_no_account_and_seeds_nothing() {
    let args = container_default_command();
    assert_ne!(args.first().map(String::as_str), Some("up"), "the image must not default to the demo");
    let dir = temp_dir();
    let port = free_port();
    let mut child = shop(&dir)
        .args(&args)
        .env("SHOP_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("SHOP_PAYMENT__PROVIDER", "simulated")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = reqwest::Client::new();
    loop {
        let up = client.get(format!("http://127.0.0.1:{port}/healthz")).send().await;
        if up.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "{args:?} exited during start-up");
        assert!(Instant::now() < deadline, "{args:?} did not answer /healthz");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(count(dir.join("auth.db"), "users").await, 0, "no account");
    assert_eq!(count(dir.join("catalog.db"), "products").await, 0, "no sample data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_adds_the_sample_catalog_and_demo_accounts_only_when_asked() {
    let dir = temp_dir();
    let out = shop(&dir).arg("seed").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(dir.join("catalog.db"), "products").await, 600);
    assert!(count(dir.join("inventory.db"), "stock").await > 0);
    assert_eq!(count(dir.join("auth.db"), "users").await, 0, "`shop seed` creates no account");
    let out = shop(&dir).args(["seed", "--demo"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count(dir.join("auth.db"), "users").await, 128, "`--demo` adds the demo accounts");
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoints_are_apart_from_the_api_and_answers_carry_security_headers() {
    let dir = temp_dir();
    let running = compose::embedded(&test_settings(&dir), true).await.unwrap();
    let (public, ops) = (running.apps.public.clone(), running.apps.ops.clone());

    // The gateway's API port answers the API and liveness, nothing operational.
    assert_eq!(call(&public, get("/api/v1/products?pageSize=1")).await.0, StatusCode::OK);
    assert_eq!(call(&public, get("/healthz")).await.0, StatusCode::OK);
    for path in ["/metrics", "/readyz", "/info"] {
        assert_eq!(call(&public, get(path)).await.0, StatusCode::NOT_FOUND, "{path} on the API port");
    }
    // The operations port answers them.
    for path in ["/metrics", "/readyz", "/info", "/healthz"] {
        assert_eq!(call(&ops, get(path)).await.0, StatusCode::OK, "{path} on the operations port");
    }

    // Security headers on API answers, a CSP on HTML, no-store on tokens.
    let (_, h, _) = call(&public, get("/api/v1/products?pageSize=1")).await;
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let (status, h, _) = call(&public, get("/docs/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let login = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"email":"customer@example.com","password":"Customer123!"}"#))
        .unwrap();
    let (status, h, body) = call(&public, login).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("accessToken"));
    assert_eq!(h["cache-control"], "no-store", "tokens are never cached");

    // Simulated payments outside `shop up` are announced.
    let (_, _, info) = call(&ops, get("/info")).await;
    assert!(info.contains("SIMULATED"), "{info}");

    // Stopping: readiness says so while the listener still serves.
    running.readiness.drain();
    let (status, _, body) = call(&ops, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("draining"), "{body}");
    assert_eq!(call(&public, get("/api/v1/products?pageSize=1")).await.0, StatusCode::OK);
    running.stop().await;
}
