//! The Stripe provider over HTTP against localstripe (a fake, stateful Stripe API from PyPI),
//! started through `scripts/stripe-test-server serve` on a free port (or the server in
//! `SHOP_TEST_STRIPE_API_BASE`). The compatibility patches the fake needs are in
//! `scripts/localstripe_compat.py`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;
use shop_payment::provider::{IntentStatus, NewIntent, NewRefund, PaymentProvider, ProviderError};
use shop_payment::{PaymentConfig, ProviderKind, StripeConfig, StripeProvider};
use support::*;
use uuid::Uuid;

const SECRET_KEY: &str = "sk_test_shop_payments";

struct StripeServer {
    base: String,
    child: Option<Child>,
}

impl StripeServer {
    fn start() -> StripeServer {
        if let Ok(base) = std::env::var("SHOP_TEST_STRIPE_API_BASE") {
            return StripeServer { base, child: None };
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut child = Command::new(root.join("scripts/stripe-test-server"))
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run scripts/stripe-test-server serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the server's first line");
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        StripeServer { base: format!("http://{addr}/"), child: Some(child) }
    }
}

impl Drop for StripeServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn intent_for(amount: i64) -> NewIntent {
    NewIntent { amount: kit::money::Money::new(amount, "USD"), order_id: Uuid::now_v7() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_provider_against_localstripe() {
    let server = StripeServer::start();
    let stripe = StripeProvider::with_key(&server.base, SECRET_KEY).unwrap();
    let key = |op: &str| format!("test:{}:{op}", Uuid::now_v7());

    // Create (manual capture), replayed by its idempotency key.
    let create_key = key("intent");
    let new = intent_for(5000);
    let i = stripe.create_intent(&new, &create_key).await.unwrap();
    assert_eq!((i.status, i.amount, i.currency.as_str()), (IntentStatus::RequiresPaymentMethod, 5000, "USD"));
    assert!(i.id.starts_with("pi_") && i.client_secret.is_some());
    assert_eq!(stripe.create_intent(&new, &create_key).await.unwrap().id, i.id);
    // The same key with other parameters is refused.
    assert!(matches!(
        stripe.create_intent(&intent_for(1), &create_key).await,
        Err(ProviderError::Refused(_))
    ));

    // Confirm with a good card → authorised; capture part; refund part of that.
    let c = stripe.confirm(&i.id, "pm_card_visa", &key("confirm")).await.unwrap();
    assert_eq!((c.status, c.amount_capturable, c.amount_received), (IntentStatus::RequiresCapture, 5000, 0));
    let cap = stripe.capture(&i.id, Some(4000), &key("capture")).await.unwrap();
    assert_eq!((cap.status, cap.amount_received, cap.amount_capturable), (IntentStatus::Succeeded, 4000, 0));
    let refund_key = key("refund");
    let new_refund = NewRefund {
        intent_id: i.id.clone(),
        amount: 1500,
        refund_id: Uuid::now_v7(),
        reason: Some("damaged".into()),
    };
    let r = stripe.refund(&new_refund, &refund_key).await.unwrap();
    assert!(r.id.starts_with("re_"), "{r:?}");
    assert_eq!((r.amount, r.status.as_str()), (1500, "succeeded"));
    assert_eq!(
        stripe.refund(&new_refund, &refund_key).await.unwrap().id,
        r.id,
        "replayed, not refunded twice"
    );
    assert_eq!(stripe.retrieve(&i.id).await.unwrap().status, IntentStatus::Succeeded);

    // A declined card.
    let d = stripe.create_intent(&intent_for(700), &key("intent")).await.unwrap();
    match stripe.confirm(&d.id, "pm_card_chargeDeclined", &key("confirm")).await {
        Err(ProviderError::Declined { code, message }) => {
            assert_eq!(code, "card_declined");
            assert!(message.contains("declined"), "{message}");
        }
        other => panic!("expected a decline, got {other:?}"),
    }
    let after = stripe.retrieve(&d.id).await.unwrap();
    assert_eq!(after.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(after.last_error.unwrap().code, "card_declined");

    // 3-D Secure, then voided.
    let a = stripe.create_intent(&intent_for(900), &key("intent")).await.unwrap();
    let action = stripe.confirm(&a.id, "pm_card_authenticationRequired", &key("confirm")).await.unwrap();
    assert_eq!(action.status, IntentStatus::RequiresAction);
    assert_eq!(action.next_action.unwrap()["type"], "use_stripe_sdk");
    assert_eq!(stripe.cancel(&a.id, &key("cancel")).await.unwrap().status, IntentStatus::Canceled);

    // Unknown intents and an unreachable server.
    assert!(matches!(stripe.retrieve("pi_nope").await, Err(ProviderError::Refused(_))));
    let down = StripeProvider::with_key("http://127.0.0.1:9/", SECRET_KEY).unwrap();
    assert!(matches!(down.retrieve(&i.id).await, Err(ProviderError::Unavailable(_))));
}

kit::db_tests! { shop_payment::MIGRATIONS;

    async fn the_service_on_stripe_end_to_end_with_signed_webhooks(db) {
        let server = StripeServer::start();
        let config = PaymentConfig {
            provider: ProviderKind::Stripe,
            webhook_secret: Some(SECRET.to_string().into()),
            stripe: StripeConfig {
                secret_key: Some(SECRET_KEY.to_string().into()),
                api_base: server.base.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let app = std::sync::Arc::new(App::with_config(db.clone(), config));
        // The service listens on a real socket; localstripe sends it webhooks signed with SECRET.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app.router.clone();
        let http = tokio::spawn(async move { axum::serve(listener, router).await });
        let hook = reqwest::Client::new()
            .post(format!("{}_config/webhooks/shop", server.base))
            .form(&[("url", format!("http://{addr}/api/v1/webhooks/stripe")), ("secret", SECRET.to_string())])
            .send().await.unwrap();
        assert!(hook.status().is_success(), "{}", hook.status());

        let order = app.order(&app.alice, 6400);
        let p = app.intent(&app.alice, order).await;
        assert_eq!((p["provider"].as_str(), p["status"].as_str()), (Some("stripe"), Some("REQUIRES_PAYMENT_METHOD")));
        let id = p["id"].as_str().unwrap().to_string();
        assert_eq!(app.confirm(&app.alice, &id, "pm_card_visa").await.ok(StatusCode::OK)["status"], "AUTHORIZED");
        let cap = app.call(&app.admin, Method::POST, &format!("/api/v1/payments/{id}/capture"), None, None).await;
        assert_eq!(cap.ok(StatusCode::OK)["capturedAmount"], 6400);
        let refund = app.call(&app.admin, Method::POST, &format!("/api/v1/payments/{id}/refund"), Some("stripe-r1"),
            Some(json!({"amount": 400}))).await;
        let refund = refund.ok(StatusCode::OK);
        assert_eq!((refund["status"].as_str(), refund["refundedAmount"].as_i64()), (Some("PARTIALLY_REFUNDED"), Some(400)));

        let declined = app.order(&app.bob, 100);
        let q = app.intent(&app.bob, declined).await;
        let r = app.confirm(&app.bob, q["id"].as_str().unwrap(), "pm_card_chargeDeclined").await;
        r.is_problem(StatusCode::PAYMENT_REQUIRED, "card-declined");
        assert_eq!(r.body["payment"]["failureCode"], "card_declined");

        // localstripe's own webhooks (payment_intent.succeeded, payment_intent.payment_failed),
        // signed by localstripe, pass our verifier; they change nothing that is already known.
        wait_for("localstripe's webhooks", || async {
            count(&db, "SELECT COUNT(*) FROM webhook_events WHERE event_type IN \
                ('payment_intent.succeeded', 'payment_intent.payment_failed')").await == 2
        }).await;
        assert_eq!(outbox_count(&db, "payment.captured").await, 1);
        assert_eq!(outbox_count(&db, "payment.failed").await, 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        http.abort();
    }
}
