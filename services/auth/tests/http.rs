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
use shop_auth::mail::{MailKind, MemoryMailer, SecurityMail};
use shop_auth::{router, AuthConfig, AuthState};
use tower::ServiceExt;

struct App {
    router: Router,
    state: AuthState,
    /// The security emails handed to the notification service (their delivery over SMTP is
    /// tested end to end in `services/shop/tests`).
    mails: Arc<MemoryMailer>,
}

async fn app_with(db: Db, config: AuthConfig) -> App {
    let mails = Arc::new(MemoryMailer::default());
    let state = AuthState::connect(db, config, mails.clone()).await.expect("auth state");
    let verifier = Verifier::with_defaults(state.jwks_source()).with_revocations(state.revocations());
    let router =
        kit::http::service_app("auth", router(state.clone()).layer(Extension(verifier)), Readiness::new());
    App { router, state, mails }
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

    /// Registers (202) and signs in: the login's body.
    async fn signup(&self, email: &str, password: &str) -> Value {
        let r = self.register(email, password).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let r = self.login(email, password).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    async fn login(&self, email: &str, password: &str) -> Res {
        self.login_from(email, password, None).await
    }

    /// Waits for the `n`-th security mail of `kind` to `to` (sends run in the background).
    async fn mail(&self, kind: MailKind, to: &str, n: usize) -> SecurityMail {
        for _ in 0..200 {
            let found: Vec<SecurityMail> = self
                .mails
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.kind == kind && m.recipient == to)
                .cloned()
                .collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("no {kind:?} mail #{n} to {to}: {:?}", self.mails.0.lock().unwrap());
    }

    fn mails_of(&self, kind: MailKind, to: &str) -> usize {
        self.mails.0.lock().unwrap().iter().filter(|m| m.kind == kind && m.recipient == to).count()
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
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.body["status"], "accepted");
        assert!(r.body.get("accessToken").is_none(), "registration signs nobody in: {}", r.body);
        let r = app.login("ada@example.com", "Secret123").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["tokenType"], "Bearer");
        assert_eq!(r.body["expiresIn"], 900);
        assert_eq!(r.body["user"]["email"], "ada@example.com", "normalised");
        assert_eq!(r.body["user"]["firstName"], "Ada");
        assert_eq!(r.body["user"]["lastName"], "Lovelace");
        assert_eq!(r.body["user"]["roles"], json!(["customer"]));
        assert_eq!(r.body["user"]["disabled"], false);
        assert_eq!(r.body["user"]["emailVerified"], false);
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
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }

    async fn a_taken_address_answers_like_a_new_one_and_its_owner_is_told(db) {
        let app = app(db).await;
        let new = app.register("ada@example.com", "Secret123").await;
        assert_eq!(new.status, StatusCode::ACCEPTED);
        let verification = app.mail(MailKind::EmailVerification, "ada@example.com", 1).await;
        assert_eq!(verification.token.as_deref().map(str::len), Some(43));
        let taken = app.register(" ADA@example.com", "Other1234").await;
        assert_eq!((taken.status, &taken.body), (new.status, &new.body), "no enumeration through registration");
        let notice = app.mail(MailKind::AccountExists, "ada@example.com", 1).await;
        assert!(notice.token.is_none() && notice.user_id.is_none());
        // The owner's password still works; the attempt changed nothing.
        assert_eq!(app.login("ada@example.com", "Secret123").await.status, StatusCode::OK);
        assert_eq!(app.login("ada@example.com", "Other1234").await.status, StatusCode::UNAUTHORIZED);
        // Tokens are stored hashed.
        let db = app.state.store().db();
        let stored: Vec<String> = kit::with_db!(db, pool => sqlx::query_scalar("SELECT token_hash FROM account_tokens").fetch_all(pool).await).unwrap();
        assert!(!stored.is_empty() && !stored.contains(verification.token.as_ref().unwrap()), "{stored:?}");
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
        let first = app.signup("ada@example.com", "Secret123").await;
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
        let t = s(&app.signup("ada@example.com", "Secret123").await["refreshToken"]).to_string();
        let r = app.refresh(&t).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "refresh_token_expired");
    }

    async fn concurrent_refreshes_exactly_one_wins(db) {
        let app = Arc::new(app(db).await);
        let t0 = s(&app.signup("ada@example.com", "Secret123").await["refreshToken"]).to_string();
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
        let reg = app.signup("ada@example.com", "Secret123").await;
        let (access, t0) = (s(&reg["accessToken"]).to_string(), s(&reg["refreshToken"]).to_string());
        let t1 = s(&app.refresh(&t0).await.body["refreshToken"]).to_string();

        // Someone else's bearer cannot log this session out.
        let bob = app.signup("bob@example.com", "Secret123").await;
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

    async fn login_delays_per_account_and_address_and_the_per_ip_budget(db) {
        // The test's requests come through two proxies of ours (`<client>, 10.0.0.1`).
        let config = AuthConfig {
            login_free_failures: 3,
            login_delay_base_ms: 60_000,
            login_account_free_failures: 6,
            login_account_delay_max_secs: 30,
            login_max_attempts_per_ip: 10,
            trusted_proxy_hops: 2,
            ..AuthConfig::for_tests()
        };
        let app = app_with(db, config).await;
        app.signup("ada@example.com", "Secret123").await;

        // Per (account, address): 3 free failures, then that pair waits — even with the right
        // password — while the owner, from another address, signs in (no lock-out).
        for _ in 0..3 {
            let r = app.login_from("ada@example.com", "wrong", Some("192.0.2.1")).await;
            assert_problem(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
        }
        let r = app.login_from("Ada@example.com", "Secret123", Some("192.0.2.1")).await;
        assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        let retry: u64 = r.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(app.login_from("ada@example.com", "Secret123", Some("192.0.2.2")).await.status, StatusCode::OK);
        // Unknown accounts are delayed the same way (no enumeration through 429s).
        for _ in 0..3 {
            app.login_from("ghost@example.com", "wrong", Some("192.0.2.50")).await;
        }
        let r = app.login_from("ghost@example.com", "wrong", Some("192.0.2.50")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

        // A distributed guess on one account (a failure from each of 6 addresses): every
        // address waits, at most the account cap (30 s), never a long lock-out.
        for i in 10..16 {
            let r = app.login_from("bob@example.com", "wrong", Some(&format!("198.51.100.{i}"))).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        let r = app.login_from("bob@example.com", "wrong", Some("198.51.100.99")).await;
        assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        let retry: u64 = r.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry), "{retry}");

        // Per IP: 10 attempts per window, whatever the account; registration, resets and
        // verification share the budget.
        app.signup("eve@example.com", "Secret123").await;
        for i in 0..9 {
            let r = app.login_from("eve@example.com", "Secret123", Some("203.0.113.7")).await;
            assert_eq!(r.status, StatusCode::OK, "attempt {i}: {}", r.body);
        }
        let r = app.call_from(Method::POST, "/api/v1/auth/password-reset",
            Some(json!({"email": "eve@example.com"})), None, Some("203.0.113.7")).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let r = app.login_from("eve@example.com", "Secret123", Some("203.0.113.7")).await;
        assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        let r = app.call_from(Method::POST, "/api/v1/auth/register",
            Some(json!({"email": "mallory@example.com", "password": "Secret123"})), None, Some("203.0.113.7")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "registration shares the per-IP budget");
        let r = app.call_from(Method::POST, "/api/v1/auth/verify-email", Some(json!({"token": "x"})), None, Some("203.0.113.7")).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "so does verification");
        assert_eq!(app.login_from("eve@example.com", "Secret123", Some("203.0.113.8")).await.status, StatusCode::OK);
    }

    async fn successful_login_clears_the_pair_failures(db) {
        let config = AuthConfig { login_free_failures: 2, login_delay_base_ms: 60_000, ..AuthConfig::for_tests() };
        let app = app_with(db, config).await;
        app.signup("ada@example.com", "Secret123").await;
        app.login("ada@example.com", "wrong").await;
        assert_eq!(app.login("ada@example.com", "Secret123").await.status, StatusCode::OK);
        app.login("ada@example.com", "wrong").await;
        assert_eq!(app.login("ada@example.com", "Secret123").await.status, StatusCode::OK);
        app.login("ada@example.com", "wrong").await;
        app.login("ada@example.com", "wrong").await;
        assert_eq!(app.login("ada@example.com", "Secret123").await.status, StatusCode::TOO_MANY_REQUESTS);
    }

    async fn password_change_signs_out_every_other_session(db) {
        let app = app(db).await;
        let a = app.signup("ada@example.com", "Secret123").await;
        let b = app.login("ada@example.com", "Secret123").await.body;
        let (a_access, b_access) = (s(&a["accessToken"]).to_string(), s(&b["accessToken"]).to_string());
        let change = |bearer: String, current: &'static str, new: &'static str| {
            let app = &app;
            async move {
                app.call(Method::POST, "/api/v1/auth/password",
                    Some(json!({"currentPassword": current, "newPassword": new})), Some(&bearer)).await
            }
        };
        let r = change(a_access.clone(), "Wrong1234", "Changed123").await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
        let r = change(a_access.clone(), "Secret123", "short").await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "newPassword");
        let r = change(a_access.clone(), "Secret123", "Secret123").await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let r = app.call(Method::POST, "/api/v1/auth/password", Some(json!({"currentPassword": "Secret123", "newPassword": "Changed123"})), None).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "token_missing");

        let r = change(a_access.clone(), "Secret123", "Changed123").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let renewed = s(&r.body["accessToken"]).to_string();
        // Every earlier token of the user is refused at once in this process; the new pair works.
        for old in [&a_access, &b_access] {
            let me = app.call(Method::GET, "/api/v1/auth/me", None, Some(old)).await;
            assert_problem(&me, StatusCode::UNAUTHORIZED, "token_revoked");
        }
        assert_eq!(app.call(Method::GET, "/api/v1/auth/me", None, Some(&renewed)).await.status, StatusCode::OK);
        assert_problem(&app.refresh(s(&b["refreshToken"])).await, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
        assert_eq!(app.refresh(s(&r.body["refreshToken"])).await.status, StatusCode::OK);
        assert_eq!(app.login("ada@example.com", "Secret123").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.login("ada@example.com", "Changed123").await.status, StatusCode::OK);
        let notice = app.mail(MailKind::PasswordChanged, "ada@example.com", 1).await;
        assert!(notice.token.is_none());
    }

    async fn password_reset_is_single_use_expires_and_signs_everyone_out(db) {
        let app = app(db).await;
        let session = app.signup("ada@example.com", "Secret123").await;
        let known = app.call(Method::POST, "/api/v1/auth/password-reset", Some(json!({"email": " ADA@example.com"})), None).await;
        let unknown = app.call(Method::POST, "/api/v1/auth/password-reset", Some(json!({"email": "ghost@example.com"})), None).await;
        assert_eq!(known.status, StatusCode::ACCEPTED);
        assert_eq!((known.status, &known.body), (unknown.status, &unknown.body), "no enumeration");
        let bad = app.call(Method::POST, "/api/v1/auth/password-reset", Some(json!({"email": "nope"})), None).await;
        assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let mail = app.mail(MailKind::PasswordReset, "ada@example.com", 1).await;
        let token = mail.token.clone().unwrap();
        let expires = mail.expires_at.unwrap() - time::OffsetDateTime::now_utc();
        assert!(expires <= time::Duration::minutes(30) && expires > time::Duration::minutes(29), "{expires}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(app.mails_of(MailKind::PasswordReset, "ghost@example.com"), 0);

        let confirm = |token: String, password: &'static str| {
            let app = &app;
            async move {
                app.call(Method::POST, "/api/v1/auth/password-reset/confirm",
                    Some(json!({"token": token, "newPassword": password})), None).await
            }
        };
        let r = confirm(token.clone(), "weak").await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let r = confirm("not-a-token".into(), "Reset1234").await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid_token");
        let r = confirm(token.clone(), "Reset1234").await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let r = confirm(token.clone(), "Again1234").await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "invalid_token");
        let me = app.call(Method::GET, "/api/v1/auth/me", None, Some(s(&session["accessToken"]))).await;
        assert_problem(&me, StatusCode::UNAUTHORIZED, "token_revoked");
        assert_eq!(app.refresh(s(&session["refreshToken"])).await.status, StatusCode::UNAUTHORIZED);
        let r = app.login("ada@example.com", "Reset1234").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["user"]["emailVerified"], true, "the link reached the owner");
        app.mail(MailKind::PasswordChanged, "ada@example.com", 1).await;

        // A verification token is no reset token, and an expired reset token is refused.
        let verification = app.mail(MailKind::EmailVerification, "ada@example.com", 1).await.token.unwrap();
        assert_problem(&confirm(verification, "Other1234").await, StatusCode::BAD_REQUEST, "invalid_token");
        let db = app.state.store().db();
        app.call(Method::POST, "/api/v1/auth/password-reset", Some(json!({"email": "ada@example.com"})), None).await;
        let second = app.mail(MailKind::PasswordReset, "ada@example.com", 2).await.token.unwrap();
        kit::with_db!(db, pool => sqlx::query("UPDATE account_tokens SET expires_at_ms = 0").execute(pool).await.map(|_| ())).unwrap();
        assert_problem(&confirm(second, "Other1234").await, StatusCode::BAD_REQUEST, "invalid_token");
    }

    async fn reset_and_verification_mails_are_limited_per_address(db) {
        let config = AuthConfig { mails_per_address_per_hour: 2, ..AuthConfig::for_tests() };
        let app = app_with(db, config).await;
        app.signup("ada@example.com", "Secret123").await; // the verification mail: 1
        for _ in 0..3 {
            let r = app.call(Method::POST, "/api/v1/auth/password-reset", Some(json!({"email": "ada@example.com"})), None).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "the answer never changes");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(app.mails_of(MailKind::PasswordReset, "ada@example.com"), 1, "2 per hour in all");
    }

    async fn email_verification_is_single_use_and_shows_in_tokens(db) {
        let app = app(db).await;
        let session = app.signup("ada@example.com", "Secret123").await;
        let access = s(&session["accessToken"]).to_string();
        let claims = Verifier::with_defaults(app.state.jwks_source()).verify(&access).await.unwrap();
        assert_eq!(claims.email_verified, Some(false));
        let r = app.call(Method::POST, "/api/v1/auth/verify-email/resend", None, Some(&access)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let first = app.mail(MailKind::EmailVerification, "ada@example.com", 1).await.token.unwrap();
        let second = app.mail(MailKind::EmailVerification, "ada@example.com", 2).await.token.unwrap();
        assert_ne!(first, second);
        let verify = |t: &str| app.call(Method::POST, "/api/v1/auth/verify-email", Some(json!({"token": t})), None);
        assert_problem(&verify("forged").await, StatusCode::BAD_REQUEST, "invalid_token");
        assert_eq!(verify(&second).await.status, StatusCode::NO_CONTENT);
        assert_problem(&verify(&second).await, StatusCode::BAD_REQUEST, "invalid_token");
        let r = app.refresh(s(&session["refreshToken"])).await;
        let claims = Verifier::with_defaults(app.state.jwks_source()).verify(s(&r.body["accessToken"])).await.unwrap();
        assert_eq!(claims.email_verified, Some(true), "a refresh carries the news");
        assert_eq!(r.body["user"]["emailVerified"], true);
        let r = app.call(Method::POST, "/api/v1/auth/verify-email/resend", None, Some(s(&r.body["accessToken"]))).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(app.mails_of(MailKind::EmailVerification, "ada@example.com"), 2, "nothing once verified");
    }

    async fn unverified_accounts_cannot_sign_in_when_configured(db) {
        let config = AuthConfig { login_requires_verified_email: true, ..AuthConfig::for_tests() };
        let app = app_with(db, config).await;
        assert_eq!(app.register("ada@example.com", "Secret123").await.status, StatusCode::ACCEPTED);
        let right = app.login("ada@example.com", "Secret123").await;
        let wrong = app.login("ada@example.com", "Wrong1234").await;
        assert_problem(&right, StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(right.body, wrong.body, "no enumeration through register-then-login");
        // The owner (right password) got a new link; the guesser did not.
        let token = app.mail(MailKind::EmailVerification, "ada@example.com", 2).await.token.unwrap();
        let r = app.call(Method::POST, "/api/v1/auth/verify-email", Some(json!({"token": token})), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.login("ada@example.com", "Secret123").await.status, StatusCode::OK);
    }

    async fn logout_everywhere_and_role_changes_revoke_access_tokens(db) {
        let app = app(db).await;
        let admin = app.admin_token().await;
        let a = app.signup("ada@example.com", "Secret123").await;
        let b = app.login("ada@example.com", "Secret123").await.body;
        let r = app.call(Method::POST, "/api/v1/auth/logout-all", None, Some(s(&a["accessToken"]))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        for t in [&a, &b] {
            let me = app.call(Method::GET, "/api/v1/auth/me", None, Some(s(&t["accessToken"]))).await;
            assert_problem(&me, StatusCode::UNAUTHORIZED, "token_revoked");
            assert_eq!(app.refresh(s(&t["refreshToken"])).await.status, StatusCode::UNAUTHORIZED);
        }
        // A role change: the old token (old roles) is refused; a new sign-in carries the roles.
        let c = app.login("ada@example.com", "Secret123").await.body;
        let id = s(&c["user"]["id"]).to_string();
        let r = app.call(Method::PUT, &format!("/api/v1/users/{id}/roles"), Some(json!({"roles": ["vendor"]})), Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let me = app.call(Method::GET, "/api/v1/auth/me", None, Some(s(&c["accessToken"]))).await;
        assert_problem(&me, StatusCode::UNAUTHORIZED, "token_revoked");
        let r = app.refresh(s(&c["refreshToken"])).await;
        assert_eq!(r.status, StatusCode::OK, "a role change keeps the session: {}", r.body);
        assert_eq!(r.body["user"]["roles"], json!(["vendor"]));
        // Disabling: the access token is refused too, the refresh token revoked.
        let vendor = s(&r.body["accessToken"]).to_string();
        let refresh = s(&r.body["refreshToken"]).to_string();
        assert_eq!(app.call(Method::GET, "/api/v1/auth/me", None, Some(&vendor)).await.status, StatusCode::OK);
        let r = app.call(Method::POST, &format!("/api/v1/users/{id}/disable"), None, Some(&admin)).await;
        assert_eq!(r.status, StatusCode::OK);
        let me = app.call(Method::GET, "/api/v1/auth/me", None, Some(&vendor)).await;
        assert_problem(&me, StatusCode::UNAUTHORIZED, "token_revoked");
        assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn the_revocation_feed_serves_services_only_and_a_restart_remembers(db) {
        let config = AuthConfig { internal_token: Some(SecretString::from("feed-secret")), ..AuthConfig::for_tests() };
        let app = app_with(db.clone(), config.clone()).await;
        let a = app.signup("ada@example.com", "Secret123").await;
        let r = app.call(Method::POST, "/api/v1/auth/logout-all", None, Some(s(&a["accessToken"]))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app.call(Method::GET, "/internal/v1/revocations", None, None).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "invalid_internal_token");
        let req = Request::get("/internal/v1/revocations").header("x-internal-token", "wrong").body(Body::empty()).unwrap();
        assert_eq!(app.send(req).await.status, StatusCode::UNAUTHORIZED);
        let req = Request::get("/internal/v1/revocations").header("x-internal-token", "feed-secret").body(Body::empty()).unwrap();
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["entries"][0]["userId"], a["user"]["id"], "{}", r.body);
        assert_eq!(r.body["windowMs"], (900 + 90) * 1000);
        let as_of = r.body["asOf"].as_i64().unwrap();
        let req = Request::get(format!("/internal/v1/revocations?since={as_of}")).header("x-internal-token", "feed-secret").body(Body::empty()).unwrap();
        assert_eq!(app.send(req).await.body["entries"], json!([]), "nothing since");
        let req = Request::get("/internal/v1/revocations?since=abc").header("x-internal-token", "feed-secret").body(Body::empty()).unwrap();
        assert_eq!(app.send(req).await.status, StatusCode::BAD_REQUEST);

        // Another process (a restart, another replica) learns the instant from the database.
        let other = app_with(db, config).await;
        other.state.revocations().pull().await.unwrap();
        let me = other.call(Method::GET, "/api/v1/auth/me", None, Some(s(&a["accessToken"]))).await;
        assert_problem(&me, StatusCode::UNAUTHORIZED, "token_revoked");
    }

    async fn sessions_end_at_their_absolute_lifetime(db) {
        let config = AuthConfig { session_max_lifetime_secs: 1, ..AuthConfig::for_tests() };
        let app = app_with(db, config).await;
        let a = app.signup("ada@example.com", "Secret123").await;
        let r = app.refresh(s(&a["refreshToken"])).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = app.refresh(s(&r.body["refreshToken"])).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert!(["session_expired", "refresh_token_expired"].contains(&r.body["code"].as_str().unwrap()), "{}", r.body);
    }

    async fn argon2_saturation_is_a_503_with_retry_after(db) {
        let config = AuthConfig {
            argon2_max_concurrent: 1,
            argon2_queue_timeout_ms: 1,
            argon2_memory_kib: 64 * 1024,
            argon2_iterations: 3,
            ..AuthConfig::for_tests()
        };
        let app = Arc::new(app_with(db, config).await);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move { app.login(&format!("user{i}@example.com"), "Secret123").await })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            if r.status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(r.headers[header::RETRY_AFTER], "1");
                assert_eq!(r.headers[header::CONTENT_TYPE], "application/problem+json");
            }
            statuses.push(r.status.as_u16());
        }
        assert!(statuses.contains(&503), "one permit, 1 ms queue: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 401 || *s == 503), "{statuses:?}");
    }

    async fn failure_counters_are_shared_through_redis(db) {
        let prefix = format!("test:auth:{}:", uuid::Uuid::now_v7().simple());
        let redis = std::env::var("SHOP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let config = AuthConfig {
            redis_url: Some(SecretString::from(redis)),
            redis_prefix: prefix,
            login_free_failures: 2,
            login_delay_base_ms: 60_000,
            ..AuthConfig::for_tests()
        };
        let one = app_with(db.clone(), config.clone()).await;
        let two = app_with(db, config).await;
        one.signup("ada@example.com", "Secret123").await;
        assert_eq!(one.login("ada@example.com", "wrong").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(two.login("ada@example.com", "wrong").await.status, StatusCode::UNAUTHORIZED);
        // Two failures over two replicas: the pair waits on both.
        assert_problem(&one.login("ada@example.com", "Secret123").await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        assert_problem(&two.login("ada@example.com", "Secret123").await, StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
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
        // The role change revoked the customer's earlier token.
        let r = app.call(Method::GET, "/api/v1/auth/me", None, Some(&customer)).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "token_revoked");
        let customer = s(&relog.body["accessToken"]).to_string();
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

        let reg = app.signup("ada@example.com", "Secret123").await;
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
        let old_token = s(&before.signup("ada@example.com", "Secret123").await["accessToken"]).to_string();
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
        let token = s(&first.signup("ada@example.com", "Secret123").await["accessToken"]).to_string();
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
