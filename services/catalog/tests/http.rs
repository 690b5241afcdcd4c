//! HTTP tests through the real router and the shared middleware, on SQLite and PostgreSQL.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::{Extension, Router};
use http_body_util::BodyExt;
use kit::auth::{claims_for, roles, test_keys};
use kit::health::Readiness;
use serde_json::{json, Value};
use shop_catalog::{router, CatalogState};
use tower::ServiceExt;
use uuid::Uuid;

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
        assert_eq!(self.body["status"], status.as_u16());
    }
    fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e["field"].as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default()
    }
}

const HOUR: Duration = Duration::from_secs(3600);

fn app(db: kit::db::Db) -> App {
    let (key, verifier) = test_keys();
    let api = router(CatalogState::new(db)).layer(Extension(verifier));
    App {
        router: kit::http::service_app("catalog", api, Readiness::new()),
        admin: key.sign(&claims_for(Uuid::now_v7(), &[roles::ADMIN], None, HOUR)),
        customer: key.sign(&claims_for(Uuid::now_v7(), &[roles::CUSTOMER], None, HOUR)),
    }
}

impl App {
    async fn raw(&self, req: Request<Body>) -> Res {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Res { status: parts.status, headers: parts.headers, body }
    }

    async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Res {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    async fn get(&self, uri: &str) -> Res {
        self.call(Method::GET, uri, None, None).await
    }

    async fn admin(&self, method: Method, uri: &str, body: Option<Value>) -> Res {
        self.call(method, uri, Some(&self.admin.clone()), body).await
    }

    async fn category(&self, name: &str, parent: Option<&str>) -> String {
        let r = self
            .admin(Method::POST, "/api/v1/categories", Some(json!({"name": name, "parentId": parent})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    async fn product(&self, body: Value) -> Value {
        let r = self.admin(Method::POST, "/api/v1/products", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }
}

fn product_body(name: &str, sku: &str, category: &str, amount: i64) -> Value {
    json!({
        "name": name, "sku": sku, "categoryId": category,
        "price": {"amount": amount, "currency": "USD"},
        "description": format!("The {name}."),
        "images": ["https://images.shop.example/p/1.jpg"],
        "attributes": {"color": "red", "wireless": true, "weightGrams": 120},
    })
}

fn skus(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|p| p["sku"].as_str().unwrap().to_string()).collect()
}

kit::db_tests! { shop_catalog::MIGRATIONS;

    async fn categories_and_brands_are_edited(db) {
        let app = app(db);
        let root = app.category("Garden", None).await;
        let child = app.category("Tools", Some(&root)).await;
        let uri = format!("/api/v1/categories/{child}");
        // Admins only; the body of a create.
        app.call(Method::PUT, &uri, Some(&app.customer), Some(json!({"name": "x"}))).await
            .is_problem(StatusCode::FORBIDDEN, "forbidden");
        let r = app.admin(Method::PUT, &uri, Some(json!({"name": "Garden tools", "description": "Spades", "parentId": root, "position": 3}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.body["name"].as_str(), r.body["slug"].as_str()), (Some("Garden tools"), Some("tools")), "the slug is kept");
        assert_eq!((r.body["description"].as_str(), r.body["position"].as_i64()), (Some("Spades"), Some(3)));
        assert_eq!(r.body["ancestors"][0]["id"], root);
        let r = app.admin(Method::PUT, &uri, Some(json!({"name": "Tools", "slug": "garden-tools"}))).await;
        assert_eq!((r.status, r.body["slug"].as_str(), r.body["parentId"].as_str()), (StatusCode::OK, Some("garden-tools"), None), "{}", r.body);
        // No cycles: a category under itself or under its own descendant.
        app.admin(Method::PUT, &uri, Some(json!({"name": "Tools", "parentId": root}))).await;
        let r = app.admin(Method::PUT, &format!("/api/v1/categories/{root}"), Some(json!({"name": "Garden", "parentId": child}))).await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.error_fields(), ["parentId"]);
        let r = app.admin(Method::PUT, &uri, Some(json!({"name": "", "slug": "Not A Slug", "parentId": child}))).await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.error_fields(), ["name", "slug", "parentId"]);
        app.admin(Method::PUT, &uri, Some(json!({"name": "Garden", "slug": "garden"}))).await
            .is_problem(StatusCode::CONFLICT, "duplicate_slug");
        app.admin(Method::PUT, &format!("/api/v1/categories/{}", Uuid::now_v7()), Some(json!({"name": "x"}))).await
            .is_problem(StatusCode::NOT_FOUND, "not_found");

        let brand = app.admin(Method::POST, "/api/v1/brands", Some(json!({"name": "Acme"}))).await.body["id"].as_str().unwrap().to_string();
        let other = app.admin(Method::POST, "/api/v1/brands", Some(json!({"name": "Other"}))).await;
        assert_eq!(other.status, StatusCode::CREATED);
        let uri = format!("/api/v1/brands/{brand}");
        let r = app.admin(Method::PUT, &uri, Some(json!({"name": "Acme Corp", "logoUrl": "https://img.example/acme.png"}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.body["name"].as_str(), r.body["slug"].as_str(), r.body["logoUrl"].as_str()),
            (Some("Acme Corp"), Some("acme"), Some("https://img.example/acme.png")));
        assert_eq!(app.get(&uri).await.body["name"], "Acme Corp");
        let r = app.admin(Method::PUT, &uri, Some(json!({"name": "Acme", "logoUrl": "ftp://nope"}))).await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.error_fields(), ["logoUrl"]);
        app.admin(Method::PUT, &uri, Some(json!({"name": "Acme", "slug": "other"}))).await
            .is_problem(StatusCode::CONFLICT, "duplicate_slug");
        app.call(Method::PUT, &uri, None, Some(json!({"name": "x"}))).await
            .is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        app.admin(Method::PUT, "/api/v1/brands/acme", Some(json!({"name": "x"}))).await
            .is_problem(StatusCode::BAD_REQUEST, "invalid_path");
    }

    async fn categories_and_brands_are_deleted_when_nothing_names_them(db) {
        let app = app(db);
        let root = app.category("Kitchen", None).await;
        let child = app.category("Knives", Some(&root)).await;
        let brand = app.admin(Method::POST, "/api/v1/brands", Some(json!({"name": "Forge"}))).await.body["id"].as_str().unwrap().to_string();
        let mut body = product_body("Chef Knife", "KN-1", &child, 8900);
        body["brandId"] = json!(brand);
        let knife = app.product(body).await["id"].as_str().unwrap().to_string();
        // In use: by a child category, by a product; the answer says what and nothing changes.
        let r = app.admin(Method::DELETE, &format!("/api/v1/categories/{root}"), None).await;
        r.is_problem(StatusCode::CONFLICT, "category_in_use");
        assert!(r.body["detail"].as_str().unwrap().contains("1 child category"), "{}", r.body);
        app.admin(Method::DELETE, &format!("/api/v1/categories/{child}"), None).await
            .is_problem(StatusCode::CONFLICT, "category_in_use");
        app.admin(Method::DELETE, &format!("/api/v1/brands/{brand}"), None).await
            .is_problem(StatusCode::CONFLICT, "brand_in_use");
        // A deleted product keeps its category and brand for the order history.
        assert_eq!(app.admin(Method::DELETE, &format!("/api/v1/products/{knife}"), None).await.status, StatusCode::NO_CONTENT);
        let r = app.admin(Method::DELETE, &format!("/api/v1/brands/{brand}"), None).await;
        r.is_problem(StatusCode::CONFLICT, "brand_in_use");
        assert!(r.body["detail"].as_str().unwrap().contains("deleted product"), "{}", r.body);
        // Admins only; unknown ids are 404; unused ones go.
        let spare = app.category("Spare", None).await;
        let uri = format!("/api/v1/categories/{spare}");
        app.call(Method::DELETE, &uri, Some(&app.customer), None).await.is_problem(StatusCode::FORBIDDEN, "forbidden");
        app.call(Method::DELETE, &uri, None, None).await.is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        assert_eq!(app.admin(Method::DELETE, &uri, None).await.status, StatusCode::NO_CONTENT);
        app.get(&uri).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.admin(Method::DELETE, &uri, None).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        let unused = app.admin(Method::POST, "/api/v1/brands", Some(json!({"name": "Unused"}))).await.body["id"].as_str().unwrap().to_string();
        assert_eq!(app.admin(Method::DELETE, &format!("/api/v1/brands/{unused}"), None).await.status, StatusCode::NO_CONTENT);
        app.get(&format!("/api/v1/brands/{unused}")).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.admin(Method::DELETE, &format!("/api/v1/brands/{}", Uuid::now_v7()), None).await
            .is_problem(StatusCode::NOT_FOUND, "not_found");
    }

    async fn crud_over_http(db) {
        let app = app(db);
        let audio = app.category("Audio", None).await;
        let r = app.admin(Method::POST, "/api/v1/brands", Some(json!({"name": "Sonora"}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let brand = r.body["id"].as_str().unwrap().to_string();

        let mut body = product_body("Wireless Earbuds", "EB-1", &audio, 4999);
        body["brandId"] = json!(brand);
        let r = app.admin(Method::POST, "/api/v1/products", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let p = r.body;
        let id = p["id"].as_str().unwrap().to_string();
        assert_eq!(r.headers[header::LOCATION], format!("/api/v1/products/{id}"));
        assert_eq!(p["slug"], "wireless-earbuds");
        assert_eq!(p["price"], json!({"amount": 4999, "currency": "USD"}));
        assert_eq!(p["brand"]["name"], "Sonora");
        assert_eq!(p["category"]["slug"], "audio");
        assert_eq!(p["attributes"]["weightGrams"], 120);
        assert!(p["createdAt"].as_str().unwrap().ends_with('Z'), "RFC 3339 UTC: {}", p["createdAt"]);
        assert_eq!(p["active"], true);

        let r = app.get(&format!("/api/v1/products/{id}")).await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &p));
        let r = app.get("/api/v1/products/wireless-earbuds").await;
        assert_eq!(r.body["id"], id.as_str());

        let r = app.admin(Method::PATCH, &format!("/api/v1/products/{id}"), Some(json!({"price": {"amount": 3999, "currency": "USD"}, "brandId": null}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["price"]["amount"], 3999);
        assert_eq!(r.body["brand"], Value::Null);
        assert_eq!(r.body["name"], "Wireless Earbuds", "untouched fields stay");

        let r = app.admin(Method::PUT, &format!("/api/v1/products/{id}"), Some(product_body("Earbuds Pro", "EB-1", &audio, 5999))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!((r.body["name"].as_str(), r.body["slug"].as_str()), (Some("Earbuds Pro"), Some("wireless-earbuds")));

        let r = app.admin(Method::PATCH, &format!("/api/v1/products/{id}"), Some(json!({"active": false}))).await;
        assert_eq!(r.body["active"], false);
        app.get(&format!("/api/v1/products/{id}")).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        let r = app.admin(Method::GET, &format!("/api/v1/products/{id}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "admins see inactive products");
        assert_eq!(app.get("/api/v1/products").await.body["total"], 0);
        let r = app.admin(Method::GET, "/api/v1/products?includeInactive=true", None).await;
        assert_eq!(r.body["total"], 1);
        app.get("/api/v1/products?includeInactive=true").await.is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        let r = app.call(Method::GET, "/api/v1/products?includeInactive=true", Some(&app.customer), None).await;
        r.is_problem(StatusCode::FORBIDDEN, "forbidden");

        let r = app.call(Method::DELETE, &format!("/api/v1/products/{id}"), Some(&app.customer), None).await;
        r.is_problem(StatusCode::FORBIDDEN, "forbidden");
        let r = app.admin(Method::DELETE, &format!("/api/v1/products/{id}"), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        app.admin(Method::DELETE, &format!("/api/v1/products/{id}"), None).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.admin(Method::GET, &format!("/api/v1/products/{id}"), None).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.admin(Method::PATCH, &format!("/api/v1/products/{id}"), Some(json!({}))).await.is_problem(StatusCode::NOT_FOUND, "not_found");

        let r = app.call(Method::POST, "/api/v1/products/validate", None, Some(json!({"items": [{"productId": id, "quantity": 1}]}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["valid"], false);
        assert_eq!(r.body["items"][0]["error"], "deleted");
    }

    async fn list_filters_over_http(db) {
        let app = app(db);
        let elec = app.category("Electronics", None).await;
        let audio = app.category("Audio", Some(&elec)).await;
        let books = app.category("Books", None).await;
        app.product(product_body("Studio Headphones", "A-1", &audio, 20000)).await;
        app.product(product_body("Portable Speaker", "A-2", &audio, 8000)).await;
        app.product(product_body("Laptop Stand", "E-1", &elec, 3000)).await;
        app.product(product_body("Headphones Handbook", "B-1", &books, 1500)).await;

        let r = app.get("/api/v1/products?category=electronics&sort=price").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(skus(&r.body), ["E-1", "A-2", "A-1"]);
        assert_eq!((r.body["page"].as_u64(), r.body["pageSize"].as_u64(), r.body["total"].as_i64(), r.body["totalPages"].as_i64()), (Some(1), Some(20), Some(3), Some(1)));
        let r = app.get(&format!("/api/v1/products?category={audio}&sort=-price")).await;
        assert_eq!(skus(&r.body), ["A-1", "A-2"]);
        let r = app.get("/api/v1/products?minPrice=2000&maxPrice=10000&sort=name").await;
        assert_eq!(skus(&r.body), ["E-1", "A-2"]);
        let r = app.get("/api/v1/products?q=headphones").await;
        let mut hits = skus(&r.body);
        hits.sort();
        assert_eq!(hits, ["A-1", "B-1"]);
        let r = app.get("/api/v1/products?q=headphones&category=books").await;
        assert_eq!(skus(&r.body), ["B-1"]);
        let r = app.get("/api/v1/products?pageSize=2&page=2&sort=oldest").await;
        assert_eq!(skus(&r.body), ["E-1", "B-1"]);
        assert_eq!(r.body["totalPages"], 2);
        let r = app.get("/api/v1/products?currency=EUR").await;
        assert_eq!(r.body["total"], 0);

        let r = app.get("/api/v1/categories").await;
        let slugs: Vec<_> = r.body["items"].as_array().unwrap().iter().map(|c| c["slug"].as_str().unwrap()).collect();
        assert_eq!(slugs, ["books", "electronics", "audio"], "depth-first, siblings by name");
        let r = app.get("/api/v1/categories/audio").await;
        assert_eq!(r.body["parentId"], elec.as_str());
        assert_eq!(r.body["ancestors"][0]["slug"], "electronics");
        app.get("/api/v1/categories/nope").await.is_problem(StatusCode::NOT_FOUND, "not_found");
        let r = app.get("/api/v1/brands").await;
        assert_eq!(r.body["items"], json!([]));
        app.get("/api/v1/brands/nope").await.is_problem(StatusCode::NOT_FOUND, "not_found");

        let ids: Vec<Value> = vec![json!(Uuid::now_v7())];
        let r = app.call(Method::POST, "/api/v1/products/batch", None, Some(json!({"ids": ids}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["products"], json!([]));
        assert_eq!(r.body["missing"], json!(ids));
    }

    async fn errors_are_problems(db) {
        let app = app(db);
        let cat = app.category("Audio", None).await;
        let good = product_body("Speaker", "SPK-1", &cat, 100);

        // Authentication and authorisation.
        app.call(Method::POST, "/api/v1/products", None, Some(good.clone())).await.is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        app.call(Method::POST, "/api/v1/products", Some("garbage"), Some(good.clone())).await.is_problem(StatusCode::UNAUTHORIZED, "token_invalid");
        app.call(Method::POST, "/api/v1/products", Some(&app.customer), Some(good.clone())).await.is_problem(StatusCode::FORBIDDEN, "forbidden");
        app.call(Method::POST, "/api/v1/categories", Some(&app.customer), Some(json!({"name": "X"}))).await.is_problem(StatusCode::FORBIDDEN, "forbidden");
        app.call(Method::POST, "/api/v1/brands", None, Some(json!({"name": "X"}))).await.is_problem(StatusCode::UNAUTHORIZED, "token_missing");

        // Validation.
        let invalid = |patch: Value| {
            let mut b = good.clone();
            for (k, v) in patch.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        let cases = [
            (json!({"price": {"amount": -1, "currency": "USD"}}), "price.amount"),
            (json!({"name": "  "}), "name"),
            (json!({"name": "x".repeat(201)}), "name"),
            (json!({"categoryId": Uuid::now_v7()}), "categoryId"),
            (json!({"brandId": Uuid::now_v7()}), "brandId"),
            (json!({"price": {"amount": 1, "currency": "XYZ"}}), "price.currency"),
            (json!({"slug": "Not A Slug"}), "slug"),
            (json!({"sku": "bad sku!"}), "sku"),
            (json!({"images": vec!["https://images.shop.example/x.jpg"; 21]}), "images"),
            (json!({"attributes": {"nested": {"a": 1}}}), "attributes.nested"),
            (json!({"attributes": {"nul": "a\u{0}b"}}), "attributes.nul"),
            (json!({"description": "a\u{0}b"}), "description"),
        ];
        for (patch, field) in cases {
            let r = app.admin(Method::POST, "/api/v1/products", Some(invalid(patch.clone()))).await;
            r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(r.error_fields(), [field], "{patch}: {}", r.body);
        }

        // Conflicts.
        app.product(good.clone()).await;
        let r = app.admin(Method::POST, "/api/v1/products", Some(invalid(json!({"name": "Other"})))).await;
        r.is_problem(StatusCode::CONFLICT, "duplicate_sku");
        let r = app.admin(Method::POST, "/api/v1/products", Some(invalid(json!({"sku": "SPK-2"})))).await;
        r.is_problem(StatusCode::CONFLICT, "duplicate_slug");
        let r = app.admin(Method::POST, "/api/v1/categories", Some(json!({"name": "Audio"}))).await;
        r.is_problem(StatusCode::CONFLICT, "duplicate_slug");

        // Malformed bodies.
        let req = |body: &str, ctype: Option<&str>| {
            let mut b = Request::post("/api/v1/products").header(header::AUTHORIZATION, format!("Bearer {}", app.admin));
            if let Some(c) = ctype {
                b = b.header(header::CONTENT_TYPE, c);
            }
            b.body(Body::from(body.to_string())).unwrap()
        };
        app.raw(req("{\"name\": ", Some("application/json"))).await.is_problem(StatusCode::BAD_REQUEST, "malformed_json");
        let r = app.raw(req(r#"{"name": 5, "sku": "X", "price": {"amount": 1, "currency": "USD"}, "categoryId": "x"}"#, Some("application/json"))).await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.raw(req(&good.to_string(), None)).await.is_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
        app.raw(req(&good.to_string(), Some("text/plain"))).await.is_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
        let r = app.call(Method::POST, "/api/v1/products/validate", None, Some(json!({"items": [{"productId": "nope", "quantity": 1}]}))).await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let r = app.call(Method::POST, "/api/v1/products/validate", None, Some(json!({"items": []}))).await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let items: Vec<Value> = (0..101).map(|_| json!({"productId": Uuid::now_v7(), "quantity": 1})).collect();
        let r = app.call(Method::POST, "/api/v1/products/validate", None, Some(json!({"items": items}))).await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

        // Query strings and paths.
        app.get("/api/v1/products?pageSize=abc").await.is_problem(StatusCode::BAD_REQUEST, "invalid_query");
        app.get("/api/v1/products?minPrice=cheap").await.is_problem(StatusCode::BAD_REQUEST, "invalid_query");
        let r = app.get("/api/v1/products?pageSize=1000").await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.error_fields(), ["pageSize"]);
        let r = app.get("/api/v1/products?page=0&sort=cheapest&minPrice=-1&currency=usd").await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.error_fields(), ["page", "sort", "minPrice", "currency"]);
        // A maximum below the minimum matches nothing: an empty page (no schema can say min ≤ max).
        let r = app.get("/api/v1/products?minPrice=500&maxPrice=100").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["items"], json!([]));
        app.get(&format!("/api/v1/products/{}", Uuid::now_v7())).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.get("/api/v1/products/no-such-slug").await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.get("/api/v1/products/a%00b").await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.get("/api/v1/brands/a%00b").await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.get("/api/v1/categories/a%00b").await.is_problem(StatusCode::NOT_FOUND, "not_found");
        let r = app.get("/api/v1/products?q=a%00b&category=x%00&brand=%00");
        let r = r.await;
        r.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.error_fields(), ["category", "brand", "q"]);
        let r = app.get("/api/v1/products?q=%22unbalanced%20%27%20%26%20%7C%20!%20-%20or").await;
        assert_eq!(r.status, StatusCode::OK, "websearch syntax never fails: {}", r.body);
        app.admin(Method::DELETE, "/api/v1/products/not-a-uuid", None).await.is_problem(StatusCode::BAD_REQUEST, "invalid_path");
        app.admin(Method::PUT, &format!("/api/v1/products/{}", Uuid::now_v7()), Some(good.clone())).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.call(Method::POST, "/api/v1/products/some-id", None, None).await.is_problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }

    async fn seeded_catalog_over_http(db) {
        let report = shop_catalog::seed(&db).await.unwrap();
        assert_eq!(report.products, 600);
        let app = app(db);
        let r = app.get("/api/v1/products?pageSize=100").await;
        assert_eq!((r.body["total"].as_i64(), r.body["totalPages"].as_i64()), (Some(590), Some(6)));
        assert_eq!(r.body["items"].as_array().unwrap().len(), 100);
        let r = app.get("/api/v1/categories").await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 50);
        let r = app.get("/api/v1/brands").await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 40);
        let r = app.get("/api/v1/products?category=electronics&brand=sonora&sort=-price&pageSize=5").await;
        assert!(r.body["total"].as_i64().unwrap() > 0, "{}", r.body);
        let prices: Vec<i64> = r.body["items"].as_array().unwrap().iter().map(|p| p["price"]["amount"].as_i64().unwrap()).collect();
        assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");
        let first = &r.body["items"][0];
        let r = app.get(&format!("/api/v1/products/{}", first["slug"].as_str().unwrap())).await;
        assert_eq!(&r.body, first);
        let ids: Vec<Value> = vec![first["id"].clone()];
        let r = app.call(Method::POST, "/api/v1/products/validate", None, Some(json!({"items": [{"productId": ids[0], "quantity": 3}]}))).await;
        assert_eq!(r.body["valid"], true, "{}", r.body);
        assert_eq!(r.body["items"][0]["price"], first["price"]);
    }
}

#[test]
fn openapi_documents_every_route() {
    if std::env::var("DUMP_OPENAPI").is_ok() {
        println!("{}", shop_catalog::openapi().to_pretty_json().unwrap());
    }
    let doc = shop_catalog::openapi();
    let json = serde_json::to_value(&doc).unwrap();
    let paths = json["paths"].as_object().unwrap();
    for p in [
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/products/validate",
        "/api/v1/products/batch",
        "/api/v1/categories",
        "/api/v1/categories/{id}",
        "/api/v1/brands",
        "/api/v1/brands/{id}",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(json["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(json["paths"]["/api/v1/products"]["post"]["security"][0]["bearer"], json!([]));
    // Public, and a bearer token that is sent is verified (admins see inactive products).
    assert_eq!(json["paths"]["/api/v1/products"]["get"]["security"], json!([{}, {"bearer": []}]));
    assert_eq!(json["paths"]["/api/v1/products"]["get"]["tags"][0], "catalog");
    for p in ["/api/v1/categories/{id}", "/api/v1/brands/{id}"] {
        assert_eq!(json["paths"][p]["put"]["security"][0]["bearer"], json!([]), "PUT {p}");
    }
    for s in ["Product", "ProductInput", "ValidateResponse", "Problem", "Money"] {
        assert!(json["components"]["schemas"][s].is_object(), "schema {s} missing");
    }
}
