//! Peak memory of the auth service under a burst of logins: `LOGIN_MEMORY_BENCH_N` (100)
//! concurrent logins — half with wrong passwords for a real account, half for unknown emails
//! (which hash too) — against the production argon2 cost (m = 19 MiB, t = 2, p = 1), through the
//! real router on a SQLite database. Prints the argon2 bound, the answers and the process's peak
//! RSS (`VmHWM`) before and after; no timed assertion. Without the bound each concurrent
//! computation held 19 MiB (≈ 1.9 GiB for 100).
//!
//! Run: `cargo bench -p shop-auth --bench login_memory` (add `--profile dev` to skip the
//! release build); `LOGIN_MEMORY_BENCH_PERMITS` sets `ARGON2_MAX_CONCURRENT` (default: one per
//! CPU).

use std::collections::BTreeMap;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use kit::health::Readiness;
use shop_auth::{router, AuthConfig, AuthState};
use tower::ServiceExt;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn env(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = env("LOGIN_MEMORY_BENCH_N", 100);
    let dir = std::env::temp_dir().join(format!("shop-auth-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = kit::db::Db::connect(&format!("sqlite://{}/auth.db", dir.display()), &Default::default())
        .await
        .unwrap();
    db.migrate(&shop_auth::MIGRATIONS).await.unwrap();
    let config = AuthConfig {
        argon2_max_concurrent: env("LOGIN_MEMORY_BENCH_PERMITS", 0) as u32,
        // Every request waits its turn (a 503 would hide nothing about memory but the point).
        argon2_queue_timeout_ms: 600_000,
        login_max_attempts_per_ip: 0,
        login_free_failures: 0,
        login_account_free_failures: 0,
        ..AuthConfig::default()
    };
    let state = AuthState::new(db, config).await.unwrap();
    let app = kit::http::service_app("auth", router(state.clone()), Readiness::new());
    let call = |body: serde_json::Value, path: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            app.oneshot(req).await.unwrap().status().as_u16()
        }
    };
    let status = call(
        serde_json::json!({"email": "ada@example.com", "password": "Secret123"}),
        "/api/v1/auth/register",
    )
    .await;
    assert_eq!(status, 202);
    let before = peak_rss_kib();
    println!(
        "argon2: {} permits, m = 19 MiB each: bound {} MiB",
        state.hasher().permits(),
        state.hasher().memory_bound_bytes() / (1024 * 1024)
    );
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let email =
                if i % 2 == 0 { "ada@example.com".to_string() } else { format!("ghost{i}@example.com") };
            tokio::spawn(call(
                serde_json::json!({"email": email, "password": "Wrong1234"}),
                "/api/v1/auth/login",
            ))
        })
        .collect();
    let mut answers = BTreeMap::new();
    for t in tasks {
        *answers.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    let after = peak_rss_kib();
    println!(
        "{n} concurrent logins in {:.1} s: answers {answers:?}; peak RSS {} MiB before the burst, {} MiB after (+{} MiB)",
        start.elapsed().as_secs_f64(),
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / 1024
    );
    let _ = std::fs::remove_dir_all(dir);
}
