//! HTTP tests through the real router and the shared middleware, on SQLite and PostgreSQL.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::{Extension, Router};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};
use http_body_util::BodyExt;
use jsonwebtoken::jwk::JwkSet;
use kit::auth::{SigningKey, StaticJwks, Verifier};
use kit::db::Db;
use kit::health::Readiness;
use secrecy::SecretString;
use serde_json::{json, Value};
use shop_auth::{router, AuthConfig, AuthState};
use tower::ServiceExt;

struct App {
    router: Router,
    state: AuthState,
}

async fn app_with(db: Db, config: AuthConfig) -> App {
    let state = AuthState::new(db, config).await.expect("auth state");
    let verifier = Verifier::with_defaults(state.jwks_source());
    let router =
        kit::http::service_app("auth", router(state.clone()).layer(Extension(verifier)), Readiness::new());
    App { router, state }
}

async fn app(db: Db) -> App {
    app_with(db, AuthConfig::for_tests()).await
}

struct Res {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl App {
    async fn send(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Res { status: parts.status, headers: parts.headers, body }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>, bearer: Option<&str>) -> Res {
        self.call_from(method, uri, body, bearer, None).await
    }

    async fn call_from(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        bearer: Option<&str>,
        ip: Option<&str>,
    ) -> Res {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(ip) = ip {
            b = b.header("x-forwarded-for", format!("{ip}, 10.0.0.1"));
        }
        let req = match body {
            Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    async fn register(&self, email: &str, password: &str) -> Res {
        self.call(
            Method::POST,
            "/api/v1/auth/register",
            Some(json!({"email": email, "password": password})),
            None,
        )
        .await
    }

    async fn login(&self, email: &str, password: &str) -> Res {
        self.login_from(email, password, None).await
    }

    async fn login_from(&self, email: &str, password: &str, ip: Option<&str>) -> Res {
        self.call_from(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": email, "password": password})),
            None,
            ip,
        )
        .await
    }

    async fn refresh(&self, token: &str) -> Res {
        self.call(Method::POST, "/api/v1/auth/refresh", Some(json!({"refreshToken": token})), None).await
    }

    /// Seeds the accounts and returns an admin access token.
    async fn admin_token(&self) -> String {
        shop_auth::seed(self.state.store().db(), self.state.config()).await.unwrap();
        let r = self.login("admin@example.com", "Admin123!").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["accessToken"].as_str().unwrap().to_string()
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn assert_problem(r: &Res, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/problem+json");
}

kit::db_tests! { shop_auth::MIGRATIONS;
    async fn register_login_me(db) {
        let app = app(db).await;
        let r = app
            .call(Method::POST, "/api/v1/auth/register",
                Some(json!({"email": "  Ada@Example.COM ", "password": "Secret123", "firstName": "Ada", "lastName": "Lovelace"})),
                None)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["tokenType"], "Bearer");
        assert_eq!(r.body["expiresIn"], 900);
        assert_eq!(r.body["user"]["email"], "ada@example.com", "normalised");
        assert_eq!(r.body["user"]["firstName"], "Ada");
        assert_eq!(r.body["user"]["lastName"], "Lovelace");
        assert_eq!(r.body["user"]["roles"], json!(["customer"]));
        assert_eq!(r.body["user"]["disabled"], false);
        let created = s(&r.body["user"]["createdAt"]);
        assert!(created.ends_with('Z'), "RFC 3339 UTC: {created}");
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(s(&r.body["refreshToken"]).len(), 43, "32 bytes, base64url");
        let id = r.body["user"]["id"].clone();

        let r = app.login("ADA@example.com ", "Secret123").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["user"]["id"], id);
        let token = s(&r.body["accessToken"]).to_string();
        assert_eq!(kid_of(&token), app.state.current_kid());

        let me = app.call(Method::GET, "/api/v1/auth/me", None, Some(&token)).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        assert_eq!(me.body["id"], id);
        assert_eq!(me.body["email"], "ada@example.com");
        assert!(me.body.get("passwordHash").is_none() && !me.body.to_string().contains("argon2"));

        let r = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "token_missing");
        let r = app.call(Method::GET, "/api/v1/auth/me", None, Some("garbage")).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "token_invalid");
    }

    async fn unknown_user_and_wrong_password_look_the_same(db) {
        let app = app(db).await;
        app.register("ada@example.com", "Secret123").await;
        let wrong = app.login("ada@example.com", "Secret124").await;
        let unknown = app.login("nobody@example.com", "Secret123").await;
        assert_problem(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(wrong.body, unknown.body);
        assert_eq!(wrong.status, unknown.status);
        let long = app.login("ada@example.com", &"A1a".repeat(100)).await;
        assert_eq!(long.body, wrong.body);
        let empty = app.login("", "").await;
        assert_eq!(empty.body, wrong.body);
    }

    async fn password_policy_and_email_validation(db) {
        let app = app(db).await;
        let r = app.register("ada@example.com", "short").await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let errors = r.body["errors"].as_array().unwrap();
        assert!(errors.iter().all(|e| e["field"] == "password"), "{}", r.body);
        assert!(errors.len() >= 3, "{}", r.body);

        for bad in ["alllowercase1", "ALLUPPERCASE1", "NoDigitsHere", &format!("Aa1{}", "x".repeat(126))] {
            let r = app.register("ada@example.com", bad).await;
            assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        }
        let r = app.register("not-an-email", "Secret123").await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "email");
        let r = app.call(Method::POST, "/api/v1/auth/register",
            Some(json!({"email": "ada@example.com", "password": "Secret123", "firstName": "x".repeat(101)})), None).await;
        assert_eq!(r.body["errors"][0]["field"], "firstName", "{}", r.body);
        // 128 characters is still fine.
        let r = app.register("ada@example.com", &format!("Aa1{}", "x".repeat(125))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    async fn duplicate_email_conflicts(db) {
        let app = app(db).await;
        assert_eq!(app.register("ada@example.com", "Secret123").await.status, StatusCode::CREATED);
        let r = app.register(" ADA@example.com", "Other1234").await;
        assert_problem(&r, StatusCode::CONFLICT, "email_taken");
    }

    async fn malformed_input_is_a_problem_not_a_500(db) {
        let app = app(db).await;
        let req = Request::post("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{not json"))
            .unwrap();
        let r = app.send(req).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "malformed_json");
        let r = app.call(Method::POST, "/api/v1/auth/login", Some(json!({"email": "a@b.c"})), None).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let r = app.call(Method::POST, "/api/v1/auth/register", Some(json!({"email": 5, "password": "x"})), None).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let req = Request::post("/api/v1/auth/refresh").body(Body::from("{}")).unwrap();
        assert_problem(&app.send(req).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
        let r = app.call(Method::GET, "/api/v1/auth/login", None, None).await;
        assert_problem(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }

    async fn refresh_rotates_and_reuse_revokes_the_family(db) {
        let app = app(db).await;
        let first = app.register("ada@example.com", "Secret123").await.body;
        let t0 = s(&first["refreshToken"]).to_string();

        let r = app.refresh(&t0).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let t1 = s(&r.body["refreshToken"]).to_string();
        assert_ne!(t1, t0);
        assert_eq!(r.body["tokenType"], "Bearer");
        assert_eq!(r.body["user"]["email"], "ada@example.com");
        let me = app.call(Method::GET, "/api/v1/auth/me", None, Some(s(&r.body["accessToken"]))).await;
        assert_eq!(me.status, StatusCode::OK);

        let r = app.refresh(&t1).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let t2 = s(&r.body["refreshToken"]).to_string();

        // A second session of the same user is a different family and survives.
        let other = s(&app.login("ada@example.com", "Secret123").await.body["refreshToken"]).to_string();

        // Replaying an already-used token: reuse detected, the whole family is revoked…
        let r = app.refresh(&t0).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "refresh_token_reused");
        // …including the newest token of the family.
        let r = app.refresh(&t2).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(app.refresh(&other).await.status, StatusCode::OK, "other families are untouched");

        let r = app.refresh("definitely-not-a-token").await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    }

    async fn expired_refresh_tokens_are_refused(db) {
        let config = AuthConfig { refresh_token_ttl_secs: 0, ..AuthConfig::for_tests() };
        let app = app_with(db, config).await;
        let t = s(&app.register("ada@example.com", "Secret123").await.body["refreshToken"]).to_string();
        let r = app.refresh(&t).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "refresh_token_expired");
    }

    async fn concurrent_refreshes_exactly_one_wins(db) {
        let app = Arc::new(app(db).await);
        let t0 = s(&app.register("ada@example.com", "Secret123").await.body["refreshToken"]).to_string();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (app, t0) = (app.clone(), t0.clone());
                tokio::spawn(async move { app.refresh(&t0).await })
            })
            .collect();
        let mut ok = Vec::new();
        let mut refused = 0;
        for t in tasks {
            let r = t.await.unwrap();
            if r.status == StatusCode::OK {
                ok.push(s(&r.body["refreshToken"]).to_string());
            } else {
                assert_problem(&r, StatusCode::UNAUTHORIZED, "refresh_token_reused");
                refused += 1;
            }
        }
        assert_eq!((ok.len(), refused), (1, 3));
        // The losers were treated as reuse: the winner's token is revoked too.
        assert_eq!(app.refresh(&ok[0]).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn logout_revokes_the_session(db) {
        let app = app(db).await;
        let reg = app.register("ada@example.com", "Secret123").await.body;
        let (access, t0) = (s(&reg["accessToken"]).to_string(), s(&reg["refreshToken"]).to_string());
        let t1 = s(&app.refresh(&t0).await.body["refreshToken"]).to_string();

        // Someone else's bearer cannot log this session out.
        let bob = app.register("bob@example.com", "Secret123").await.body;
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(json!({"refreshToken": t1})), Some(s(&bob["accessToken"]))).await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");

        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(json!({"refreshToken": t1})), Some(&access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert_problem(&app.refresh(&t1).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
        // Idempotent, and works without a bearer.
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(json!({"refreshToken": t1})), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(json!({"refreshToken": "unknown"})), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(json!({"refreshToken": t1})), Some("bad")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "an invalid bearer is refused");
    }

    async fn login_throttling_per_account_and_per_ip(db) {
        // The test's requests come through two proxies of ours (`<client>, 10.0.0.1`).
        let config = AuthConfig {
            login_max_failures_per_account: 3,
            login_max_attempts_per_ip: 6,
            trusted_proxy_hops: 2,
            ..AuthConfig::for_tests()
        };
        let app = app_with(db, config).await;
        app.register("ada@example.com", "Secret123").await;

        // Per account: 3 failures (from different IPs), then even the right password waits.
        for i in 0..3 {
            let r = app.login_from("ada@example.com", "wrong", Some(&format!("192.0.2.{i}"))).await;
            assert_problem(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
        }
        let r = app.login_from("Ada@example.com", "Secret123", Some("192.0.2.99")).await;
        assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        let retry: u64 = r.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        // Unknown accounts are throttled the same way (no enumeration through 429s).
        for _ in 0..3 {
            app.login_from("ghost@example.com", "wrong", Some("192.0.2.50")).await;
        }
        let r = app.login_from("ghost@example.com", "wrong", Some("192.0.2.51")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

        // Per IP: 6 attempts per window, whatever the account.
        app.register("bob@example.com", "Secret123").await;
        for i in 0..6 {
            let r = app.login_from("bob@example.com", "Secret123", Some("198.51.100.7")).await;
            assert_eq!(r.status, StatusCode::OK, "attempt {i}: {}", r.body);
        }
        let r = app.login_from("bob@example.com", "Secret123", Some("198.51.100.7")).await;
        assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        let retry: u64 = r.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let r = app.call_from(Method::POST, "/api/v1/auth/register",
            Some(json!({"email": "eve@example.com", "password": "Secret123"})), None, Some("198.51.100.7")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "registration shares the per-IP budget");
        assert_eq!(app.login_from("bob@example.com", "Secret123", Some("198.51.100.8")).await.status, StatusCode::OK);
    }

    async fn successful_login_resets_account_failures(db) {
        let config = AuthConfig { login_max_failures_per_account: 2, ..AuthConfig::for_tests() };
        let app = app_with(db, config).await;
        app.register("ada@example.com", "Secret123").await;
        app.login("ada@example.com", "wrong").await;
        assert_eq!(app.login("ada@example.com", "Secret123").await.status, StatusCode::OK);
        app.login("ada@example.com", "wrong").await;
        assert_eq!(app.login("ada@example.com", "Secret123").await.status, StatusCode::OK);
    }

    async fn admin_endpoints(db) {
        let app = app(db).await;
        let admin = app.admin_token().await;
        let customer = s(&app.login("customer@example.com", "Customer123!").await.body["accessToken"]).to_string();

        let r = app.call(Method::GET, "/api/v1/users", None, None).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "token_missing");
        let r = app.call(Method::GET, "/api/v1/users", None, Some(&customer)).await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");

        let r = app.call(Method::GET, "/api/v1/users", None, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.body["total"].as_i64(), r.body["pageSize"].as_i64()), (Some(128), Some(20)));
        assert_eq!(r.body["items"].as_array().unwrap().len(), 20);
        assert_eq!(r.body["totalPages"], 7);
        assert_eq!(r.body["items"][0]["email"], "admin@example.com");
        let r = app.call(Method::GET, "/api/v1/users?page=7&pageSize=20", None, Some(&admin)).await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 8);
        let r = app.call(Method::GET, "/api/v1/users?role=vendor", None, Some(&admin)).await;
        assert_eq!(r.body["total"], 1);
        assert_eq!(r.body["items"][0]["email"], "vendor@example.com");
        let r = app.call(Method::GET, "/api/v1/users?email=CUSTOMER12&role=customer", None, Some(&admin)).await;
        assert_eq!(r.body["total"], 6, "customer120..customer125: {}", r.body);
        let r = app.call(Method::GET, "/api/v1/users?role=root", None, Some(&admin)).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let r = app.call(Method::GET, "/api/v1/users?pageSize=1000", None, Some(&admin)).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let r = app.call(Method::GET, "/api/v1/users?page=abc", None, Some(&admin)).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid_query");

        let cust = app.call(Method::GET, "/api/v1/users?email=customer@example.com", None, Some(&admin)).await;
        let cust_id = s(&cust.body["items"][0]["id"]).to_string();
        let r = app.call(Method::GET, &format!("/api/v1/users/{cust_id}"), None, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["email"], "customer@example.com");
        let r = app.call(Method::GET, &format!("/api/v1/users/{cust_id}"), None, Some(&customer)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app.call(Method::GET, &format!("/api/v1/users/{}", uuid::Uuid::now_v7()), None, Some(&admin)).await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not_found");
        let r = app.call(Method::GET, "/api/v1/users/not-a-uuid", None, Some(&admin)).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid_path");

        // Roles.
        let roles_uri = format!("/api/v1/users/{cust_id}/roles");
        let r = app.call(Method::PUT, &roles_uri, Some(json!({"roles": ["vendor", "superuser"]})), Some(&admin)).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "roles[1]");
        let r = app.call(Method::PUT, &roles_uri, Some(json!({"roles": []})), Some(&admin)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.call(Method::PUT, &roles_uri, Some(json!({"roles": ["vendor"]})), Some(&customer)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app.call(Method::PUT, &roles_uri, Some(json!({"roles": ["vendor", "customer", "vendor"]})), Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["roles"], json!(["vendor", "customer"]));
        let relog = app.login("customer@example.com", "Customer123!").await;
        let claims = Verifier::with_defaults(app.state.jwks_source()).verify(s(&relog.body["accessToken"])).await.unwrap();
        assert_eq!(claims.roles, vec!["vendor", "customer"], "new tokens carry the new roles");
        let r = app.call(Method::PUT, &format!("/api/v1/users/{}/roles", uuid::Uuid::now_v7()), Some(json!({"roles": ["admin"]})), Some(&admin)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let admin_id = Verifier::with_defaults(app.state.jwks_source()).verify(&admin).await.unwrap().sub;
        let r = app.call(Method::PUT, &format!("/api/v1/users/{admin_id}/roles"), Some(json!({"roles": ["customer"]})), Some(&admin)).await;
        assert_problem(&r, StatusCode::CONFLICT, "cannot_demote_self");

        // Disable / enable.
        let session = s(&relog.body["refreshToken"]).to_string();
        let r = app.call(Method::POST, &format!("/api/v1/users/{cust_id}/disable"), None, Some(&customer)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app.call(Method::POST, &format!("/api/v1/users/{cust_id}/disable"), None, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["disabled"], true);
        assert_eq!(app.refresh(&session).await.status, StatusCode::UNAUTHORIZED, "refresh tokens revoked");
        let r = app.login("customer@example.com", "wrong-password").await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
        let r = app.login("customer@example.com", "Customer123!").await;
        assert_problem(&r, StatusCode::FORBIDDEN, "account_disabled");
        let r = app.call(Method::POST, &format!("/api/v1/users/{cust_id}/enable"), None, Some(&admin)).await;
        assert_eq!(r.body["disabled"], false);
        assert_eq!(app.login("customer@example.com", "Customer123!").await.status, StatusCode::OK);
        let r = app.call(Method::POST, &format!("/api/v1/users/{admin_id}/disable"), None, Some(&admin)).await;
        assert_problem(&r, StatusCode::CONFLICT, "cannot_disable_self");
        let r = app.call(Method::POST, &format!("/api/v1/users/{}/disable", uuid::Uuid::now_v7()), None, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    async fn jwks_publishes_the_key_and_tokens_verify(db) {
        let app = app(db).await;
        let r = app.call(Method::GET, "/.well-known/jwks.json", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        let set: JwkSet = serde_json::from_value(r.body.clone()).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].common.key_id.as_deref(), Some(app.state.current_kid()));
        assert_eq!(r.body["keys"][0]["kty"], "OKP");
        assert_eq!(r.body["keys"][0]["crv"], "Ed25519");
        assert_eq!(r.body["keys"][0]["alg"], "EdDSA");
        assert!(r.body["keys"][0].get("d").is_none(), "no private part");

        let reg = app.register("ada@example.com", "Secret123").await.body;
        let verifier = Verifier::with_defaults(Arc::new(StaticJwks(set)));
        let claims = verifier.verify(s(&reg["accessToken"])).await.unwrap();
        assert_eq!(claims.sub.to_string(), s(&reg["user"]["id"]));
        assert_eq!(claims.roles, vec!["customer"]);
        assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!((claims.iss.as_str(), claims.aud.as_str()), ("shop-auth", "shop-api"));
    }

    async fn key_rotation_keeps_old_tokens_valid(db) {
        let old = SigningKey::generate();
        let new = SigningKey::generate();
        let before = app_with(db.clone(), AuthConfig {
            jwt_signing_key: Some(SecretString::from(old.to_pem())),
            ..AuthConfig::for_tests()
        }).await;
        assert_eq!(before.state.current_kid(), old.kid());
        let old_token = s(&before.register("ada@example.com", "Secret123").await.body["accessToken"]).to_string();
        assert_eq!(kid_of(&old_token), old.kid());

        // Rotate: the new key signs, the old one is still published (here as a public SPKI PEM).
        let old_public = ed25519_dalek::SigningKey::from_pkcs8_pem(&old.to_pem())
            .unwrap()
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let after = app_with(db.clone(), AuthConfig {
            jwt_signing_key: Some(SecretString::from(new.to_pem())),
            jwt_previous_keys: vec![SecretString::from(old_public)],
            ..AuthConfig::for_tests()
        }).await;
        let r = after.call(Method::GET, "/.well-known/jwks.json", None, None).await;
        let kids: Vec<String> = r.body["keys"].as_array().unwrap().iter().map(|k| s(&k["kid"]).to_string()).collect();
        assert_eq!(kids, vec![new.kid().to_string(), old.kid().to_string()], "current first");

        let me = after.call(Method::GET, "/api/v1/auth/me", None, Some(&old_token)).await;
        assert_eq!(me.status, StatusCode::OK, "a token of the previous key still verifies: {}", me.body);
        let set: JwkSet = serde_json::from_value(r.body).unwrap();
        Verifier::with_defaults(Arc::new(StaticJwks(set))).verify(&old_token).await.unwrap();

        let new_token = s(&after.login("ada@example.com", "Secret123").await.body["accessToken"]).to_string();
        assert_eq!(kid_of(&new_token), new.kid(), "new tokens use the new key");
        // Retiring the old key: its tokens stop verifying.
        let retired = app_with(db, AuthConfig {
            jwt_signing_key: Some(SecretString::from(new.to_pem())),
            ..AuthConfig::for_tests()
        }).await;
        let me = retired.call(Method::GET, "/api/v1/auth/me", None, Some(&old_token)).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED);
        let me = retired.call(Method::GET, "/api/v1/auth/me", None, Some(&new_token)).await;
        assert_eq!(me.status, StatusCode::OK);
    }

    async fn generated_key_survives_a_restart(db) {
        let first = app(db.clone()).await;
        let kid = first.state.current_kid().to_string();
        let token = s(&first.register("ada@example.com", "Secret123").await.body["accessToken"]).to_string();
        drop(first);
        let second = app(db.clone()).await;
        assert_eq!(second.state.current_kid(), kid, "same key after a restart");
        let me = second.call(Method::GET, "/api/v1/auth/me", None, Some(&token)).await;
        assert_eq!(me.status, StatusCode::OK);
        let n: i64 = kit::with_db!(&db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(pool).await).unwrap();
        assert_eq!(n, 1);
    }

    async fn bad_key_configuration_fails_at_start(db) {
        let c = AuthConfig { jwt_signing_key: Some(SecretString::from("nope")), ..AuthConfig::for_tests() };
        let err = AuthState::new(db.clone(), c).await.err().unwrap().to_string();
        assert!(err.contains("JWT_SIGNING_KEY"), "{err}");
        let c = AuthConfig { jwt_previous_keys: vec![SecretString::from("nope")], ..AuthConfig::for_tests() };
        let err = AuthState::new(db.clone(), c).await.err().unwrap().to_string();
        assert!(err.contains("JWT_PREVIOUS_KEYS[0]"), "{err}");
        let c = AuthConfig { argon2_memory_kib: 0, ..AuthConfig::for_tests() };
        assert!(AuthState::new(db, c).await.is_err());
    }

    async fn seeded_accounts_can_sign_in(db) {
        let app = app(db).await;
        app.admin_token().await;
        for (email, pw, role) in [
            ("vendor@example.com", "Vendor123!", "vendor"),
            ("customer@example.com", "Customer123!", "customer"),
            ("customer125@example.com", "Customer123!", "customer"),
        ] {
            let r = app.login(email, pw).await;
            assert_eq!(r.status, StatusCode::OK, "{email}: {}", r.body);
            assert_eq!(r.body["user"]["roles"], json!([role]));
        }
    }
}

#[test]
fn openapi_document() {
    let doc = serde_json::to_value(shop_auth::openapi()).unwrap();
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/users/{id}/roles",
        "/api/v1/users/{id}/disable",
        "/api/v1/users/{id}/enable",
        "/.well-known/jwks.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "missing {path}");
    }
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    assert_eq!(doc["paths"]["/api/v1/auth/me"]["get"]["security"], json!([{"bearer": []}]));
    assert_eq!(doc["paths"]["/api/v1/auth/login"]["post"]["tags"], json!(["auth"]));
    assert!(doc["components"]["schemas"]["User"]["properties"].get("createdAt").is_some());
}
