//! The verifier's key cache against a real JWKS endpoint over HTTP: `Cache-Control: max-age`
//! honoured (a removed key stops verifying), unknown key ids fetching at most once per interval,
//! failures remembered (no stall while the auth service is down) and a public error that names
//! no internal address.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use jsonwebtoken::jwk::JwkSet;
use kit::auth::{claims_for, HttpJwks, SigningKey, TokenError, Verifier};
use kit::problem::ApiError;

struct Jwks {
    set: Mutex<JwkSet>,
    cache_control: &'static str,
    status: Mutex<u16>,
    fetches: AtomicUsize,
}

async fn serve(jwks: Arc<Jwks>) -> String {
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move {
                jwks.fetches.fetch_add(1, Ordering::SeqCst);
                let status = axum::http::StatusCode::from_u16(*jwks.status.lock().unwrap()).unwrap();
                let set = jwks.set.lock().unwrap().clone();
                (status, [(axum::http::header::CACHE_CONTROL, jwks.cache_control)], axum::Json(set))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/.well-known/jwks.json")
}

fn verifier(url: String) -> Verifier {
    Verifier::with_defaults(Arc::new(HttpJwks { url, client: reqwest::Client::new() }))
}

fn token(key: &SigningKey) -> String {
    key.sign(&claims_for(uuid::Uuid::now_v7(), &[], None, Duration::from_secs(600)))
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_stops_verifying_within_its_max_age() {
    let (a, b) = (SigningKey::generate(), SigningKey::generate());
    let jwks = Arc::new(Jwks {
        set: Mutex::new(JwkSet { keys: vec![a.public_jwk(), b.public_jwk()] }),
        cache_control: "public, max-age=10",
        status: Mutex::new(200),
        fetches: AtomicUsize::new(0),
    });
    let v = verifier(serve(jwks.clone()).await);
    v.verify(&token(&a)).await.unwrap();
    v.verify(&token(&b)).await.unwrap();
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1, "one fetch for both keys");

    // `b` is retired: it keeps verifying while the set is fresh …
    jwks.set.lock().unwrap().keys = vec![a.public_jwk()];
    v.verify(&token(&b)).await.unwrap();
    // … and is refused once the max-age has passed and the background refresh replaced the set.
    tokio::time::sleep(Duration::from_millis(10_100)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match v.verify(&token(&b)).await {
            Err(TokenError::UnknownKey) => break,
            Ok(_) => assert!(Instant::now() < deadline, "the removed key still verifies"),
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    v.verify(&token(&a)).await.unwrap();
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_key_ids_fetch_at_most_once_per_interval() {
    let a = SigningKey::generate();
    let jwks = Arc::new(Jwks {
        set: Mutex::new(JwkSet { keys: vec![a.public_jwk()] }),
        cache_control: "max-age=300",
        status: Mutex::new(200),
        fetches: AtomicUsize::new(0),
    });
    let v = verifier(serve(jwks.clone()).await);
    v.verify(&token(&a)).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let v = v.clone();
            tokio::spawn(async move { v.verify(&token(&SigningKey::generate())).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), TokenError::UnknownKey);
    }
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1, "random key ids cause no fetch within 10 s");
}

#[tokio::test]
async fn failed_fetches_back_off_without_stalling_verifications() {
    let a = SigningKey::generate();
    let jwks = Arc::new(Jwks {
        set: Mutex::new(JwkSet { keys: vec![a.public_jwk()] }),
        cache_control: "max-age=300",
        status: Mutex::new(500),
        fetches: AtomicUsize::new(0),
    });
    let url = serve(jwks.clone()).await;
    let v = verifier(url.clone());
    let err = v.verify(&token(&a)).await.unwrap_err();
    assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err:?}");
    // The public answer: a 503 that names neither the URL nor the transport error.
    let problem = ApiError::from(err);
    assert_eq!(problem.status.as_u16(), 503);
    let text = format!("{:?}", problem.detail);
    assert!(!text.contains(&url) && !text.contains("127.0.0.1") && !text.contains("500"), "{text}");

    // While backing off, 100 verifications answer at once and cause no fetch.
    let start = Instant::now();
    for _ in 0..100 {
        assert!(matches!(v.verify(&token(&a)).await, Err(TokenError::KeysUnavailable(_))));
    }
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);

    // The auth service is back: after the backoff (1 s) the next verification fetches.
    *jwks.status.lock().unwrap() = 200;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    v.verify(&token(&a)).await.unwrap_or_else(|e| panic!("after the backoff: {e}"));
}
