//! End-to-end flows: real SMTP (aiosmtpd), outages, and the in-process event bus.

mod support;

use std::time::{Duration, Instant};

use kit::events::contract::sources;
use kit::events::memory::InProcessBus;
use kit::events::payloads::{OrderPlaced, OrderShipped, ShipmentShipped};
use kit::events::{Envelope, EventBus, RetryPolicy};
use kit::money::Money;
use shop_notification::model::{Contact, Status};
use shop_notification::*;
use support::SmtpServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        from: "Shop <no-reply@shop.example>".into(),
        timeout_secs: 5,
        ..Default::default()
    }
}

async fn customer(st: &NotificationState, email: &str, name: &str) -> Uuid {
    let user = Uuid::now_v7();
    let c = Contact { user_id: user, email: Some(email.into()), name: Some(name.into()), phone: None };
    st.store.upsert_contact(&c).await.unwrap();
    user
}

fn placed(user: Uuid) -> Envelope {
    let order = OrderPlaced {
        order_id: Uuid::now_v7(),
        user_id: user,
        items: vec![kit::events::payloads::LineItem {
            product_id: Uuid::now_v7(),
            quantity: 1,
            unit_price: Some(Money::new(12999, "USD")),
        }],
        total: Money::new(12999, "USD"),
        customer_email: None,
        customer_name: None,
    };
    Envelope::new(sources::ORDER, &order).unwrap()
}

async fn until<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

kit::db_tests! { MIGRATIONS;
    async fn email_arrives_over_smtp_escaped(db) {
        let smtp = SmtpServer::start();
        let cfg = NotificationConfig { smtp: Some(smtp_config(smtp.port)), ..Default::default() };
        let st = NotificationState::new(db, cfg).await.unwrap();
        let user = customer(&st, "eve@example.com", "<script>alert(1)</script>").await;
        let ev = placed(user);
        st.handle_event(&ev).await.unwrap();
        let stop = CancellationToken::new();
        let task = spawn_dispatcher(st.clone(), stop.clone());

        let msgs = smtp.wait_for(1).await;
        let m = &msgs[0];
        assert_eq!(m["rcptTos"], serde_json::json!(["eve@example.com"]));
        assert_eq!(m["mailFrom"], "no-reply@shop.example");
        assert!(m["subject"].as_str().unwrap().starts_with("Order "), "{m}");
        assert_eq!(m["contentType"], "multipart/alternative");
        let text = m["text"].as_str().unwrap();
        let html = m["html"].as_str().unwrap();
        assert!(text.contains("Hello <script>alert(1)</script>"), "{text}");
        assert!(text.contains("Total: $129.99"), "{text}");
        assert!(html.contains("Hello &lt;script&gt;alert(1)&lt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("$129.99"), "{html}");

        let st2 = st.clone();
        until(|| { let st = st2.clone(); async move { st.store.count_by_status(Status::Sent).await.unwrap() == 1 } }).await;
        stop.cancel();
        task.await.unwrap();
    }

    async fn smtp_down_retries_then_fails_and_loses_nothing(db) {
        let port = support::free_port(); // nothing listens here
        let cfg = NotificationConfig {
            smtp: Some(smtp_config(port)),
            max_attempts: 3,
            backoff_base_secs: 0,
            ..Default::default()
        };
        let st = NotificationState::new(db, cfg).await.unwrap();
        let user = customer(&st, "fay@example.com", "Fay").await;
        let ev = placed(user);
        st.handle_event(&ev).await.unwrap();
        for attempt in 1..=3 {
            assert_eq!(st.dispatch_once().await.unwrap(), 1, "attempt {attempt}");
        }
        assert_eq!(st.dispatch_once().await.unwrap(), 0);
        let rows = st.store.by_event(ev.id).await.unwrap();
        assert_eq!(rows.len(), 1, "the row is kept");
        assert_eq!((rows[0].status.as_str(), rows[0].retry_count), ("FAILED", 3));
        assert!(rows[0].last_error.as_deref().unwrap().contains("SMTP"), "{:?}", rows[0].last_error);
    }

    async fn pending_rows_go_out_when_smtp_comes_back(db) {
        let mut smtp = SmtpServer::start();
        smtp.stop();
        let cfg = NotificationConfig {
            smtp: Some(smtp_config(smtp.port)),
            max_attempts: 50,
            backoff_base_secs: 0,
            poll_interval_ms: 100,
            ..Default::default()
        };
        let st = NotificationState::new(db, cfg).await.unwrap();
        let user = customer(&st, "gus@example.com", "Gus").await;
        let events: Vec<Envelope> = (0..3).map(|_| placed(user)).collect();
        for ev in &events {
            st.handle_event(ev).await.unwrap();
        }
        assert_eq!(st.dispatch_once().await.unwrap(), 3);
        assert_eq!(st.store.count_by_status(Status::Pending).await.unwrap(), 3, "still pending while down");
        let row = st.store.by_event(events[0].id).await.unwrap().remove(0);
        assert_eq!(row.retry_count, 1);

        smtp.restart();
        let stop = CancellationToken::new();
        let task = spawn_dispatcher(st.clone(), stop.clone());
        let msgs = smtp.wait_for(3).await;
        assert_eq!(msgs.len(), 3);
        let st2 = st.clone();
        until(|| { let st = st2.clone(); async move { st.store.count_by_status(Status::Sent).await.unwrap() == 3 } }).await;
        stop.cancel();
        task.await.unwrap();
    }

    async fn order_shipped_via_the_bus_once(db) {
        let st = NotificationState::new(db, NotificationConfig { poll_interval_ms: 100, ..Default::default() })
            .await
            .unwrap();
        let user = customer(&st, "hal@example.com", "Hal").await;
        let bus = InProcessBus::new("", RetryPolicy::default());
        kit::events::register(&bus, handlers(st.clone())).unwrap();
        let stop = CancellationToken::new();
        let consumers = bus.start(stop.clone()).await.unwrap();
        let dispatcher = spawn_dispatcher(st.clone(), stop.clone());

        let (order, shipment) = (Uuid::now_v7(), Uuid::now_v7());
        let shipped = Envelope::new(sources::SHIPMENT, &ShipmentShipped {
            order_id: order, shipment_id: shipment, carrier: "UPS".into(), tracking_number: "1Z999AA10123456784".into(),
        }).unwrap();
        bus.publish(&shipped).await.unwrap();
        // Let the shipment event land first (different topics are not ordered).
        let st2 = st.clone();
        until(|| { let st = st2.clone(); async move { st.store.shipment(shipment).await.unwrap().is_some() } }).await;
        let ev = Envelope::new(sources::ORDER, &OrderShipped { order_id: order, user_id: user, shipment_id: shipment, carrier: None, tracking_number: None })
            .unwrap();
        bus.publish(&ev).await.unwrap();

        let log = st.log.clone().unwrap();
        until(|| { let log = log.clone(); async move { log.sent().len() == 1 } }).await;
        let sent = &log.sent()[0];
        assert_eq!(sent.recipient, "hal@example.com");
        assert!(sent.text.contains("UPS") && sent.text.contains("1Z999AA10123456784"), "{}", sent.text);
        assert!(sent.html.as_deref().unwrap().contains("1Z999AA10123456784"));

        // Redelivery (same event id): nothing twice.
        bus.publish(&ev).await.unwrap();
        assert!(!st.handle_event(&ev).await.unwrap());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(log.sent().len(), 1);
        let rows = st.store.by_event(ev.id).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, "SENT");
        assert!(bus.dead_letters().is_empty());

        consumers.stop().await;
        dispatcher.await.unwrap();
    }
}

async fn post_security_mail(
    app: &axum::Router,
    token: Option<&str>,
    body: serde_json::Value,
) -> axum::http::StatusCode {
    use tower::ServiceExt;
    let mut req =
        axum::http::Request::post("/internal/v1/security-mail").header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("x-internal-token", t);
    }
    let res = app.clone().oneshot(req.body(axum::body::Body::from(body.to_string())).unwrap()).await.unwrap();
    res.status()
}

kit::db_tests! { MIGRATIONS;
    async fn security_mails_reach_smtp_and_the_token_is_kept_only_until_sent(db) {
        use serde_json::json;
        let smtp = SmtpServer::start();
        let cfg = NotificationConfig {
            smtp: Some(smtp_config(smtp.port)),
            internal_token: Some("mail-secret".to_string().into()),
            app_url: "https://shop.example/".into(),
            ..Default::default()
        };
        let st = NotificationState::new(db.clone(), cfg).await.unwrap();
        let app = kit::http::service_app("notification", router(st.clone()), kit::health::Readiness::new());
        let token = "abcdefghijklmnopqrstuvwxyz0123456789-_ABCDE";
        let id = Uuid::now_v7();
        let mail = json!({
            "id": id, "kind": "PASSWORD_RESET", "userId": Uuid::now_v7(), "recipient": "ada@example.com",
            "name": "Ada", "token": token,
            "expiresAt": (time::OffsetDateTime::now_utc() + time::Duration::minutes(30)).format(&time::format_description::well_known::Rfc3339).unwrap(),
        });
        // Services only; a token in the shape the auth service makes.
        assert_eq!(post_security_mail(&app, None, mail.clone()).await, axum::http::StatusCode::UNAUTHORIZED);
        assert_eq!(post_security_mail(&app, Some("wrong"), mail.clone()).await, axum::http::StatusCode::UNAUTHORIZED);
        let mut bad = mail.clone();
        bad["token"] = json!("<script>");
        assert_eq!(post_security_mail(&app, Some("mail-secret"), bad).await, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        let mut injected = mail.clone();
        injected["recipient"] = json!("ada@example.com\r\nBcc: eve@example.com");
        assert_eq!(post_security_mail(&app, Some("mail-secret"), injected).await, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        // Accepted twice (a retried call), stored once.
        assert_eq!(post_security_mail(&app, Some("mail-secret"), mail.clone()).await, axum::http::StatusCode::ACCEPTED);
        assert_eq!(post_security_mail(&app, Some("mail-secret"), mail.clone()).await, axum::http::StatusCode::ACCEPTED);
        let notice = json!({ "id": Uuid::now_v7(), "kind": "ACCOUNT_EXISTS", "recipient": "bob@example.com" });
        assert_eq!(post_security_mail(&app, Some("mail-secret"), notice).await, axum::http::StatusCode::ACCEPTED);

        // Before sending, the stored content has a placeholder; the token waits apart.
        let stored: Vec<(String, Option<String>)> = kit::with_db!(&db, pool => sqlx::query_as(
            "SELECT content, secret FROM notifications WHERE recipient = 'ada@example.com'").fetch_all(pool).await).unwrap();
        assert_eq!(stored.len(), 1, "one row for one id");
        assert!(!stored[0].0.contains(token), "{}", stored[0].0);
        assert_eq!(stored[0].1.as_deref(), Some(token));

        let stop = CancellationToken::new();
        let task = spawn_dispatcher(st.clone(), stop.clone());
        let msgs = smtp.wait_for(2).await;
        let reset = msgs.iter().find(|m| m["rcptTos"] == json!(["ada@example.com"])).unwrap();
        assert!(reset["subject"].as_str().unwrap().starts_with("Reset your"), "{reset}");
        let text = reset["text"].as_str().unwrap();
        assert!(text.contains(&format!("https://shop.example/reset-password#token={token}")), "{text}");
        assert!(reset["html"].as_str().unwrap().contains(token));
        let exists = msgs.iter().find(|m| m["rcptTos"] == json!(["bob@example.com"])).unwrap();
        assert!(exists["subject"].as_str().unwrap().contains("already have"), "{exists}");
        until(|| async {
            let secrets: Vec<Option<String>> = kit::with_db!(&db, pool => sqlx::query_scalar(
                "SELECT secret FROM notifications WHERE recipient = 'ada@example.com' AND status = 'SENT'").fetch_all(pool).await).unwrap();
            secrets == vec![None]
        }).await;
        stop.cancel();
        task.await.unwrap();
    }
}
