//! HTTP tests through the real router and the shared middleware, on SQLite and PostgreSQL.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Extension;
use http_body_util::BodyExt;
use kit::auth::{claims_for, roles, test_keys};
use kit::events::contract::sources;
use kit::events::payloads::{InventoryLowStock, OrderPlaced};
use kit::events::Envelope;
use kit::health::Readiness;
use kit::money::Money;
use serde_json::Value;
use shop_notification::model::Contact;
use shop_notification::*;
use tower::ServiceExt;
use uuid::Uuid;

const HOUR: Duration = Duration::from_secs(3600);

async fn call(app: &axum::Router, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::builder().uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
}

async fn post(app: &axum::Router, uri: &str, token: &str) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
}

kit::db_tests! { MIGRATIONS;
    async fn admins_resend_failed_notifications(db) {
        let st = NotificationState::new(db, NotificationConfig::default()).await.unwrap();
        let (key, verifier) = test_keys();
        let app = kit::http::service_app("notification", router(st.clone()).layer(Extension(verifier)), Readiness::new());
        // A customer nobody knows the address of: the confirmation fails at once.
        let stranger = Uuid::now_v7();
        let placed = Envelope::new(sources::ORDER, &OrderPlaced {
            order_id: Uuid::now_v7(), user_id: stranger, items: vec![], total: Money::new(500, "EUR"), customer_email: None, customer_name: None }).unwrap();
        st.handle_event(&placed).await.unwrap();
        st.dispatch_once().await.unwrap();
        let admin = key.sign(&claims_for(Uuid::now_v7(), &[roles::ADMIN], None, HOUR));
        let customer = key.sign(&claims_for(stranger, &[roles::CUSTOMER], None, HOUR));
        let (_, b) = call(&app, "/api/v1/notifications/admin/all?status=FAILED", Some(&admin)).await;
        assert_eq!(b["total"], 1, "{b}");
        let id = b["items"][0]["id"].as_str().unwrap().to_string();
        let uri = format!("/api/v1/notifications/{id}/resend");

        let (s, b) = post(&app, &uri, &customer).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
        let (s, b) = post(&app, &format!("/api/v1/notifications/{}/resend", Uuid::now_v7()), &admin).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
        // It never had an address: nothing to send again.
        let (s, b) = post(&app, &uri, &admin).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::CONFLICT, Some("notification_unaddressable")), "{b}");

        // A message the mail server refused for good: sent again on request.
        let known = Uuid::now_v7();
        st.store.upsert_contact(&Contact { user_id: known, email: Some("ada@example.com".into()), name: None, phone: None }).await.unwrap();
        let placed = Envelope::new(sources::ORDER, &OrderPlaced {
            order_id: Uuid::now_v7(), user_id: known, items: vec![], total: Money::new(700, "EUR"), customer_email: None, customer_name: None }).unwrap();
        st.handle_event(&placed).await.unwrap();
        let row = st.store.by_event(placed.id).await.unwrap().remove(0);
        assert!(st.store.mark_attempt_failed(row.id, "550 mailbox unavailable", None).await.unwrap());
        let id = row.id.to_string();
        let uri = format!("/api/v1/notifications/{id}/resend");
        let (s, b) = post(&app, &uri, &admin).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!((b["status"].as_str(), b["retryCount"].as_i64()), (Some("PENDING"), Some(0)), "{b}");
        st.dispatch_once().await.unwrap();
        let (_, b) = call(&app, &format!("/api/v1/notifications/{id}"), Some(&admin)).await;
        assert_eq!(b["status"], "SENT", "{b}");
        // Only FAILED ones are sent again.
        let (s, b) = post(&app, &uri, &admin).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::CONFLICT, Some("notification_not_failed")), "{b}");
    }

    async fn notifications_api(db) {
        let cfg = NotificationConfig { admin_emails: vec!["ops@example.com".into()], ..Default::default() };
        let st = NotificationState::new(db, cfg).await.unwrap();
        let (key, verifier) = test_keys();
        let app = kit::http::service_app("notification", router(st.clone()).layer(Extension(verifier)), Readiness::new());
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        for (u, e) in [(alice, "alice@example.com"), (bob, "bob@example.com")] {
            st.store.upsert_contact(&Contact { user_id: u, email: Some(e.into()), name: None, phone: None }).await.unwrap();
        }
        let placed = |u: Uuid| Envelope::new(sources::ORDER, &OrderPlaced {
            order_id: Uuid::now_v7(), user_id: u, items: vec![], total: Money::new(500, "EUR"), customer_email: None, customer_name: None }).unwrap();
        for _ in 0..3 { st.handle_event(&placed(alice)).await.unwrap(); }
        st.handle_event(&placed(bob)).await.unwrap();
        let low = Envelope::new(sources::INVENTORY, &InventoryLowStock { product_id: Uuid::now_v7(), available: 1, threshold: 3 }).unwrap();
        st.handle_event(&low).await.unwrap();
        st.dispatch_once().await.unwrap();

        let tok = |u: Uuid, r: &str| key.sign(&claims_for(u, &[r], None, HOUR));
        let (ta, tb, tadmin) = (tok(alice, roles::CUSTOMER), tok(bob, roles::CUSTOMER), tok(Uuid::now_v7(), roles::ADMIN));

        let (s, b) = call(&app, "/api/v1/notifications", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");

        let (s, b) = call(&app, "/api/v1/notifications?pageSize=2", Some(&ta)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!((b["total"].as_i64(), b["items"].as_array().unwrap().len()), (Some(3), 2));
        let item = &b["items"][0];
        assert_eq!(item["userId"], alice.to_string());
        assert_eq!(item["type"], "ORDER_CONFIRMATION");
        assert_eq!(item["channel"], "EMAIL");
        assert_eq!(item["status"], "SENT");
        assert!(item["retryCount"].is_number() && item["createdAt"].is_string() && item["sentAt"].is_string(), "{item}");
        assert!(item["content"].as_str().unwrap().contains("€5.00"));
        let id = item["id"].as_str().unwrap().to_string();

        let (s, b) = call(&app, &format!("/api/v1/notifications/{id}"), Some(&ta)).await;
        assert_eq!((s, b["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
        let (s, b) = call(&app, &format!("/api/v1/notifications/{id}"), Some(&tb)).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "someone else's is absent");
        let (s, _) = call(&app, &format!("/api/v1/notifications/{id}"), Some(&tadmin)).await;
        assert_eq!(s, StatusCode::OK);
        let (s, b) = call(&app, "/api/v1/notifications/not-a-uuid", Some(&ta)).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_path")));

        let (s, b) = call(&app, "/api/v1/notifications/admin/all", Some(&ta)).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
        let (s, b) = call(&app, "/api/v1/notifications/admin/all", Some(&tadmin)).await;
        assert_eq!((s, b["total"].as_i64()), (StatusCode::OK, Some(5)), "{b}");
        let (_, b) = call(&app, "/api/v1/notifications/admin/all?type=LOW_STOCK_ALERT&status=SENT&channel=EMAIL", Some(&tadmin)).await;
        assert_eq!(b["total"], 1, "{b}");
        assert!(b["items"][0]["userId"].is_null());
        assert_eq!(b["items"][0]["recipient"], "ops@example.com");
        let (_, b) = call(&app, "/api/v1/notifications/admin/all?status=FAILED", Some(&tadmin)).await;
        assert_eq!(b["total"], 0, "{b}");
        let (s, b) = call(&app, "/api/v1/notifications/admin/all?status=failed", Some(&tadmin)).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")), "exact names: {b}");
        let (s, b) = call(&app, "/api/v1/notifications/admin/all?status=LOST&channel=FAX", Some(&tadmin)).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")), "{b}");
        assert_eq!(b["errors"].as_array().unwrap().len(), 2);
        let (s, b) = call(&app, "/api/v1/notifications?page=abc", Some(&ta)).await;
        assert_eq!((s, b["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")), "{b}");
        let (s, _) = call(&app, "/api/v1/notifications?pageSize=1000", Some(&ta)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[test]
fn openapi_has_the_notification_paths() {
    let doc = serde_json::to_value(openapi()).unwrap();
    for p in [
        "/api/v1/notifications",
        "/api/v1/notifications/{id}",
        "/api/v1/notifications/admin/all",
        "/api/v1/notifications/{id}/resend",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p}");
    }
    assert!(doc["components"]["schemas"].get("Notification").is_some());
}
