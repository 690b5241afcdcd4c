//! HTTP tests through the real router and the shared middleware, on SQLite and PostgreSQL.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::{Extension, Router};
use http_body_util::BodyExt;
use kit::auth::{claims_for, roles, test_keys};
use kit::health::Readiness;
use serde_json::{json, Value};
use shop_inventory::{router, InventoryConfig, InventoryState};
use tower::ServiceExt;
use uuid::Uuid;

const INTERNAL: &str = "s3rvice-token";
const HOUR: Duration = Duration::from_secs(3600);

struct App {
    router: Router,
    admin: String,
    customer: String,
}

struct Res {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Res {
    fn is_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/problem+json", "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
    }
}

fn app(db: kit::db::Db) -> App {
    let (key, verifier) = test_keys();
    let config = InventoryConfig { internal_token: Some(INTERNAL.to_string().into()), ..Default::default() };
    let api = router(InventoryState::new(db, config)).layer(Extension(verifier));
    App {
        router: kit::http::service_app("inventory", api, Readiness::new()),
        admin: key.sign(&claims_for(Uuid::now_v7(), &[roles::ADMIN], None, HOUR)),
        customer: key.sign(&claims_for(Uuid::now_v7(), &[roles::CUSTOMER], None, HOUR)),
    }
}

enum Auth<'a> {
    None,
    Bearer(&'a str),
    Internal(&'a str),
}

impl App {
    async fn call(&self, method: Method, uri: &str, auth: Auth<'_>, body: Option<&str>) -> Res {
        let mut req = Request::builder().method(method).uri(uri);
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => req = req.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Internal(t) => req = req.header("x-internal-token", t),
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        let res = self.router.clone().oneshot(req.unwrap()).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Res { status: parts.status, headers: parts.headers, body }
    }

    async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> Res {
        let b = body.map(|b| b.to_string());
        self.call(method, uri, Auth::Bearer(&self.admin.clone()), b.as_deref()).await
    }

    async fn stock(&self, quantity: i64) -> String {
        let id = Uuid::now_v7().to_string();
        let r = self
            .admin(Method::POST, "/api/v1/inventory", Some(json!({"productId": id, "sku": format!("SKU-{}", &id[30..]), "quantity": quantity, "reorderLevel": 3})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        id
    }
}

kit::db_tests! { shop_inventory::MIGRATIONS;

    async fn stock_admin_endpoints(db) {
        let app = app(db);
        let id = app.stock(10).await;
        // Duplicate.
        let r = app.admin(Method::POST, "/api/v1/inventory", Some(json!({"productId": id, "sku": "X"}))).await;
        r.is_problem(StatusCode::CONFLICT, "stock_exists");
        // Auth: 401 without token, 403 for customers, 200 for admins.
        app.call(Method::GET, "/api/v1/inventory", Auth::None, None).await.is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        let c = app.customer.clone();
        app.call(Method::GET, "/api/v1/inventory", Auth::Bearer(&c), None).await.is_problem(StatusCode::FORBIDDEN, "forbidden");
        let r = app.admin(Method::GET, "/api/v1/inventory?pageSize=5", None).await;
        assert_eq!((r.status, r.body["total"].as_i64()), (StatusCode::OK, Some(1)), "{}", r.body);
        assert_eq!(r.body["items"][0]["availableQuantity"], 10);
        assert_eq!(r.body["items"][0]["lowStock"], false);
        let r = app.admin(Method::GET, "/api/v1/inventory?lowStock=true", None).await;
        assert_eq!(r.body["total"], 0, "{}", r.body);
        // Public view vs admin view.
        let r = app.call(Method::GET, &format!("/api/v1/inventory/{id}"), Auth::None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, json!({"productId": id, "availableQuantity": 10, "inStock": true}));
        let r = app.admin(Method::GET, &format!("/api/v1/inventory/{id}"), None).await;
        assert_eq!(r.body["totalQuantity"], 10);
        assert_eq!(r.body["reorderLevel"], 3);
        assert!(r.body["updatedAt"].as_str().unwrap().ends_with('Z'));
        app.call(Method::GET, &format!("/api/v1/inventory/{}", Uuid::now_v7()), Auth::None, None).await
            .is_problem(StatusCode::NOT_FOUND, "not_found");
        app.call(Method::GET, "/api/v1/inventory/not-a-uuid", Auth::None, None).await
            .is_problem(StatusCode::BAD_REQUEST, "invalid_path");
        // PUT settings.
        let r = app.admin(Method::PUT, &format!("/api/v1/inventory/{id}"), Some(json!({"reorderLevel": 12, "sku": "NEW-1"}))).await;
        assert_eq!((r.status, r.body["reorderLevel"].as_i64(), r.body["sku"].as_str()), (StatusCode::OK, Some(12), Some("NEW-1")));
        assert_eq!(r.body["lowStock"], true);
        app.admin(Method::PUT, &format!("/api/v1/inventory/{id}"), Some(json!({"reorderLevel": -1}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        // Adjust.
        let adjust = format!("/api/v1/inventory/{id}/adjust");
        let r = app.admin(Method::POST, &adjust, Some(json!({"type": "PURCHASE", "quantity": 5, "reference": "PO-1"}))).await;
        assert_eq!((r.status, r.body["availableQuantity"].as_i64()), (StatusCode::OK, Some(15)), "{}", r.body);
        let r = app.admin(Method::POST, &adjust, Some(json!({"type": "DAMAGE", "quantity": 2, "reason": "dropped"}))).await;
        assert_eq!(r.body["availableQuantity"], 13);
        app.admin(Method::POST, &adjust, Some(json!({"type": "SALE", "quantity": 14}))).await
            .is_problem(StatusCode::CONFLICT, "insufficient_stock");
        app.admin(Method::POST, &adjust, Some(json!({"type": "PURCHASE", "quantity": 0}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.admin(Method::POST, &adjust, Some(json!({"type": "COMMIT", "quantity": 1}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.admin(Method::POST, &adjust, Some(json!({"type": "TELEPORT", "quantity": 1}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let a = app.admin.clone();
        app.call(Method::POST, &adjust, Auth::Bearer(&a), Some("{\"type\": ")).await
            .is_problem(StatusCode::BAD_REQUEST, "malformed_json");
        app.call(Method::POST, &adjust, Auth::Bearer(&c), Some(r#"{"type":"PURCHASE","quantity":1}"#)).await
            .is_problem(StatusCode::FORBIDDEN, "forbidden");
        // Audit trail.
        let r = app.admin(Method::GET, &format!("/api/v1/inventory/{id}/transactions?pageSize=2"), None).await;
        assert_eq!((r.status, r.body["total"].as_i64()), (StatusCode::OK, Some(3)), "{}", r.body);
        assert_eq!(r.body["items"][0]["type"], "DAMAGE");
        assert_eq!(r.body["items"][0]["quantity"], -2);
        assert_eq!(r.body["items"][1]["reference"], "PO-1");
        assert!(r.body["items"][0]["actor"].as_str().unwrap().starts_with("user:"));
    }

    async fn reservation_endpoints(db) {
        let app = app(db);
        let p = app.stock(5).await;
        let order = Uuid::now_v7();
        let body = json!({"orderId": order, "items": [{"productId": p, "quantity": 2}, {"productId": p, "quantity": 1}]}).to_string();
        let base = "/api/v1/inventory/reservations";
        // Credentials: none, wrong internal token, customer → refused.
        app.call(Method::POST, base, Auth::None, Some(&body)).await.is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        app.call(Method::POST, base, Auth::Internal("wrong"), Some(&body)).await
            .is_problem(StatusCode::UNAUTHORIZED, "invalid_internal_token");
        let c = app.customer.clone();
        app.call(Method::POST, base, Auth::Bearer(&c), Some(&body)).await.is_problem(StatusCode::FORBIDDEN, "forbidden");
        // Internal token: 201, replay 200 with the same reservation.
        let r = app.call(Method::POST, base, Auth::Internal(INTERNAL), Some(&body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["status"], "ACTIVE");
        assert_eq!(r.body["items"], json!([{"productId": p, "quantity": 3}]));
        let id = r.body["id"].clone();
        let r = app.call(Method::POST, base, Auth::Internal(INTERNAL), Some(&body)).await;
        assert_eq!((r.status, &r.body["id"]), (StatusCode::OK, &id));
        // Insufficient stock lists the product.
        let short = json!({"orderId": Uuid::now_v7(), "items": [{"productId": p, "quantity": 3}]}).to_string();
        let r = app.call(Method::POST, base, Auth::Internal(INTERNAL), Some(&short)).await;
        r.is_problem(StatusCode::CONFLICT, "insufficient_stock");
        assert_eq!(r.body["errors"][0]["field"], p.as_str());
        assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("available 2"), "{}", r.body);
        // Validation and malformed JSON.
        let bad = json!({"orderId": Uuid::now_v7(), "items": [{"productId": p, "quantity": 0}]}).to_string();
        app.call(Method::POST, base, Auth::Internal(INTERNAL), Some(&bad)).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.call(Method::POST, base, Auth::Internal(INTERNAL), Some("{nope")).await
            .is_problem(StatusCode::BAD_REQUEST, "malformed_json");
        // Get, commit (idempotent), release after commit → 409.
        let a = app.admin.clone();
        let r = app.call(Method::GET, &format!("{base}/{order}"), Auth::Bearer(&a), None).await;
        assert_eq!((r.status, &r.body["id"]), (StatusCode::OK, &id));
        app.call(Method::GET, &format!("{base}/{}", Uuid::now_v7()), Auth::Internal(INTERNAL), None).await
            .is_problem(StatusCode::NOT_FOUND, "not_found");
        for _ in 0..2 {
            let r = app.call(Method::POST, &format!("{base}/{order}/commit"), Auth::Internal(INTERNAL), None).await;
            assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("COMMITTED")), "{}", r.body);
        }
        app.call(Method::POST, &format!("{base}/{order}/release"), Auth::Internal(INTERNAL), None).await
            .is_problem(StatusCode::CONFLICT, "reservation_committed");
        let r = app.admin(Method::GET, &format!("/api/v1/inventory/{p}"), None).await;
        assert_eq!((r.body["availableQuantity"].as_i64(), r.body["reservedQuantity"].as_i64(), r.body["totalQuantity"].as_i64()), (Some(2), Some(0), Some(2)));
        // Release with a reason; commit after release → 409.
        let o2 = Uuid::now_v7();
        let b2 = json!({"orderId": o2, "items": [{"productId": p, "quantity": 2}]}).to_string();
        assert_eq!(app.call(Method::POST, base, Auth::Internal(INTERNAL), Some(&b2)).await.status, StatusCode::CREATED);
        let r = app.call(Method::POST, &format!("{base}/{o2}/release"), Auth::Internal(INTERNAL), Some(r#"{"reason":"customer cancelled"}"#)).await;
        assert_eq!((r.status, r.body["status"].as_str(), r.body["reason"].as_str()), (StatusCode::OK, Some("RELEASED"), Some("customer cancelled")), "{}", r.body);
        app.call(Method::POST, &format!("{base}/{o2}/commit"), Auth::Internal(INTERNAL), None).await
            .is_problem(StatusCode::CONFLICT, "reservation_released");
    }

    async fn without_an_internal_token_only_admins_reserve(db) {
        let (key, verifier) = test_keys();
        let api = router(InventoryState::new(db, InventoryConfig::default())).layer(Extension(verifier));
        let app = App {
            router: kit::http::service_app("inventory", api, Readiness::new()),
            admin: key.sign(&claims_for(Uuid::now_v7(), &[roles::ADMIN], None, HOUR)),
            customer: String::new(),
        };
        let p = app.stock(1).await;
        let body = json!({"orderId": Uuid::now_v7(), "items": [{"productId": p, "quantity": 1}]}).to_string();
        app.call(Method::POST, "/api/v1/inventory/reservations", Auth::Internal(INTERNAL), Some(&body)).await
            .is_problem(StatusCode::UNAUTHORIZED, "invalid_internal_token");
        let a = app.admin.clone();
        let r = app.call(Method::POST, "/api/v1/inventory/reservations", Auth::Bearer(&a), Some(&body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
}

#[test]
fn openapi_tags_and_security() {
    let doc = serde_json::to_value(shop_inventory::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/inventory/reservations/{orderId}/commit"), "{:?}", paths.keys());
    assert_eq!(doc["paths"]["/api/v1/inventory"]["get"]["tags"][0], "inventory");
    assert!(doc["paths"]["/api/v1/inventory"]["post"]["security"].is_array());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
