//! The Stripe provider over HTTP against localstripe (a fake, stateful Stripe API from PyPI),
//! started through `scripts/stripe-test-server serve` on a free port (or the server in
//! `SHOP_TEST_STRIPE_API_BASE`). The compatibility patches the fake needs are in
//! `scripts/localstripe_compat.py`.
//!
//! localstripe 1.15.10 has no Checkout Sessions at all, so hosted checkout is tested against
//! [`CheckoutStandIn`]: a small HTTP server in this file that answers `/v1/checkout/sessions`
//! like Stripe (recording the form `async-stripe` sends) and passes every other request on to
//! localstripe, where the session's payment intent is authorised and later captured.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kit::events::contract::sources;
use kit::events::payloads::OrderCancelled;
use kit::events::Envelope;
use serde_json::{json, Value};
use shop_payment::provider::{
    IntentStatus, NewCheckoutSession, NewIntent, NewRefund, PaymentProvider, ProviderError, SessionStatus,
};
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
            provider: Some(ProviderKind::Stripe),
            webhook_secret: Some(SECRET.to_string().into()),
            stripe: StripeConfig {
                secret_key: Some(SECRET_KEY.to_string().into()),
                api_base: server.base.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let app = std::sync::Arc::new(App::with_config(db.clone(), config).await);
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
        r.is_problem(StatusCode::PAYMENT_REQUIRED, "card_declined");
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

/// What the stand-in saw of one `POST /v1/checkout/sessions`.
#[derive(Debug, Clone)]
struct SessionRequest {
    idempotency_key: Option<String>,
    form: HashMap<String, String>,
}

#[derive(Default)]
struct StandInState {
    upstream: String,
    sessions: Mutex<HashMap<String, Value>>,
    requests: Mutex<Vec<SessionRequest>>,
    /// Idempotency-Key → session id (Stripe replays a key's first answer).
    keys: Mutex<HashMap<String, String>>,
    /// Idempotency keys of `…/expire` calls.
    expire_keys: Mutex<Vec<String>>,
}

/// Stripe's Checkout Sessions API, as far as the service uses it, in front of localstripe.
struct CheckoutStandIn {
    base: String,
    state: Arc<StandInState>,
    server: tokio::task::JoinHandle<()>,
}

fn stripe_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"type": "invalid_request_error", "message": message}})))
        .into_response()
}

impl CheckoutStandIn {
    async fn start(upstream: &str) -> CheckoutStandIn {
        let state = Arc::new(StandInState {
            upstream: upstream.trim_end_matches('/').to_string(),
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/v1/checkout/sessions", axum::routing::post(Self::create))
            .route("/v1/checkout/sessions/{id}", axum::routing::get(Self::retrieve))
            .route("/v1/checkout/sessions/{id}/expire", axum::routing::post(Self::expire))
            .fallback(Self::proxy)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        CheckoutStandIn { base: format!("http://{addr}/"), state, server }
    }

    async fn create(State(st): State<Arc<StandInState>>, headers: HeaderMap, body: Bytes) -> Response {
        let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
        st.requests.lock().unwrap().push(SessionRequest { idempotency_key: key.clone(), form: form.clone() });
        if let Some(id) = key.as_ref().and_then(|k| st.keys.lock().unwrap().get(k).cloned()) {
            return axum::Json(st.sessions.lock().unwrap()[&id].clone()).into_response();
        }
        let field = |k: &str| form.get(k).cloned();
        let (Some(success_url), Some(cancel_url), Some(amount)) =
            (field("success_url"), field("cancel_url"), field("line_items[0][price_data][unit_amount]"))
        else {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "success_url, cancel_url and a line item are required",
            );
        };
        let id = format!("cs_test_{}", Uuid::new_v4().simple());
        let now = now();
        let session = json!({
            "id": id, "object": "checkout.session",
            "amount_subtotal": amount.parse::<i64>().unwrap(), "amount_total": amount.parse::<i64>().unwrap(),
            "automatic_tax": {"enabled": false, "liability": null, "status": null},
            "cancel_url": cancel_url, "client_reference_id": field("client_reference_id"), "created": now,
            "currency": field("line_items[0][price_data][currency]"), "custom_fields": [], "custom_text": {},
            "expires_at": now + 24 * 3600, "livemode": false,
            "metadata": {"order_id": field("metadata[order_id]")}, "mode": field("mode"),
            "payment_intent": null, "payment_method_types": ["card"], "payment_status": "unpaid",
            "shipping_options": [], "status": "open", "success_url": success_url,
            "url": format!("https://checkout.stripe.com/c/pay/{id}"),
        });
        st.sessions.lock().unwrap().insert(id.clone(), session.clone());
        if let Some(k) = key {
            st.keys.lock().unwrap().insert(k, id);
        }
        axum::Json(session).into_response()
    }

    async fn retrieve(State(st): State<Arc<StandInState>>, AxPath(id): AxPath<String>) -> Response {
        match st.sessions.lock().unwrap().get(&id) {
            Some(s) => axum::Json(s.clone()).into_response(),
            None => stripe_error(StatusCode::NOT_FOUND, &format!("No such checkout.session: '{id}'")),
        }
    }

    async fn expire(
        State(st): State<Arc<StandInState>>,
        AxPath(id): AxPath<String>,
        headers: HeaderMap,
    ) -> Response {
        if let Some(k) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
            st.expire_keys.lock().unwrap().push(k.to_string());
        }
        let mut sessions = st.sessions.lock().unwrap();
        let Some(s) = sessions.get_mut(&id) else {
            return stripe_error(StatusCode::NOT_FOUND, &format!("No such checkout.session: '{id}'"));
        };
        if s["status"] != "open" {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "Only Checkout Sessions with a status in [\"open\"] can be expired.",
            );
        }
        s["status"] = json!("expired");
        s["url"] = Value::Null;
        axum::Json(s.clone()).into_response()
    }

    /// Everything else (payment intents, refunds) goes to localstripe.
    async fn proxy(
        State(st): State<Arc<StandInState>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let url = format!("{}{}", st.upstream, uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let mut req = reqwest::Client::new().request(method, url).body(body);
        for name in ["authorization", "idempotency-key", "stripe-version", "content-type"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                req = req.header(name, v);
            }
        }
        let res = req.send().await.unwrap();
        let status = StatusCode::from_u16(res.status().as_u16()).unwrap();
        let text = res.text().await.unwrap();
        (status, [("content-type", "application/json")], text).into_response()
    }

    /// The customer paid on Stripe's page with `intent`: the session is complete.
    fn complete(&self, id: &str, intent: &str) -> Value {
        let mut sessions = self.state.sessions.lock().unwrap();
        let s = sessions.get_mut(id).unwrap();
        s["status"] = json!("complete");
        s["payment_intent"] = json!(intent);
        s["url"] = Value::Null;
        s.clone()
    }

    /// Stripe expired the session (its time was up).
    fn lapse(&self, id: &str) -> Value {
        let mut sessions = self.state.sessions.lock().unwrap();
        let s = sessions.get_mut(id).unwrap();
        s["status"] = json!("expired");
        s["url"] = Value::Null;
        s.clone()
    }

    fn session(&self, id: &str) -> Value {
        self.state.sessions.lock().unwrap()[id].clone()
    }

    fn requests(&self) -> Vec<SessionRequest> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for CheckoutStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn stripe_event(id: &str, event_type: &str, object: Value) -> String {
    json!({"id": id, "object": "event", "type": event_type, "data": {"object": object}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_provider_checkout_sessions_over_http() {
    let server = StripeServer::start();
    let stand_in = CheckoutStandIn::start(&server.base).await;
    let stripe = StripeProvider::with_key(&stand_in.base, SECRET_KEY).unwrap();
    let order = Uuid::now_v7();
    let new = NewCheckoutSession {
        amount: kit::money::Money::new(2599, "EUR"),
        order_id: order,
        success_url: "http://localhost/ok?session_id={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "http://localhost/no".into(),
    };
    let s = stripe.create_checkout_session(&new, "test:session:1").await.unwrap();
    assert!(
        s.id.starts_with("cs_test_") && s.url.as_deref().unwrap().starts_with("https://checkout.stripe.com/"),
        "{s:?}"
    );
    assert_eq!((s.status, s.payment_intent.as_deref()), (SessionStatus::Open, None));
    // The form async-stripe sends: one line with the total, manual capture, the order.
    let sent = &stand_in.requests()[0];
    assert_eq!(sent.idempotency_key.as_deref(), Some("test:session:1"));
    let order_s = order.to_string();
    for (k, v) in [
        ("mode", "payment"),
        ("line_items[0][price_data][unit_amount]", "2599"),
        ("line_items[0][price_data][currency]", "eur"),
        ("line_items[0][price_data][product_data][name]", &format!("Order {order}")),
        ("line_items[0][quantity]", "1"),
        ("payment_intent_data[capture_method]", "manual"),
        ("payment_intent_data[metadata][order_id]", &order_s),
        ("payment_method_types[0]", "card"),
        ("client_reference_id", &order_s),
        ("metadata[order_id]", &order_s),
        ("success_url", "http://localhost/ok?session_id={CHECKOUT_SESSION_ID}"),
        ("cancel_url", "http://localhost/no"),
    ] {
        assert_eq!(sent.form.get(k).map(String::as_str), Some(v), "{k} in {:?}", sent.form);
    }
    assert_eq!(stripe.retrieve_checkout_session(&s.id).await.unwrap(), s);
    let expired = stripe.expire_checkout_session(&s.id, "test:expire:1").await.unwrap();
    assert_eq!((expired.status, expired.url), (SessionStatus::Expired, None));
    assert!(matches!(
        stripe.expire_checkout_session(&s.id, "test:expire:2").await,
        Err(ProviderError::Refused(_))
    ));
    assert!(matches!(stripe.retrieve_checkout_session("cs_test_nope").await, Err(ProviderError::Refused(_))));
    assert!(matches!(
        stripe.retrieve_checkout_session("pi_not_a_session").await,
        Err(ProviderError::Refused(_))
    ));
    // Payment intents pass through to localstripe, with their charge.
    let pi = stripe.create_intent(&intent_for(2599), "test:pi:1").await.unwrap();
    let authorised = stripe.confirm(&pi.id, "pm_card_visa", "test:pi:1:confirm").await.unwrap();
    assert_eq!(authorised.status, IntentStatus::RequiresCapture);
    assert!(authorised.charge_id.as_deref().is_some_and(|c| c.starts_with("ch_")), "{authorised:?}");
    assert_eq!(pi.charge_id, None);
}

kit::db_tests! { shop_payment::MIGRATIONS;

    async fn hosted_checkout_on_stripe_with_signed_webhooks(db) {
        let server = StripeServer::start();
        let stand_in = CheckoutStandIn::start(&server.base).await;
        let config = PaymentConfig {
            provider: Some(ProviderKind::Stripe),
            webhook_secret: Some(SECRET.to_string().into()),
            stripe: StripeConfig {
                secret_key: Some(SECRET_KEY.to_string().into()),
                api_base: stand_in.base.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let app = App::with_config(db.clone(), config).await;
        let order = app.order(&app.alice, 6400);
        let s = app.checkout(&app.alice, order).await.ok(StatusCode::CREATED).clone();
        let sid = s["sessionId"].as_str().unwrap().to_string();
        let pid = s["paymentId"].as_str().unwrap().to_string();
        assert_eq!(s["url"], format!("https://checkout.stripe.com/c/pay/{sid}"));
        assert_eq!((s["payment"]["provider"].as_str(), s["payment"]["providerPaymentId"].as_str()), (Some("stripe"), Some(sid.as_str())));
        let sent = stand_in.requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].idempotency_key, Some(format!("order:{order}:session:1")));
        assert_eq!(sent[0].form["success_url"], format!("{SUCCESS_URL}?session_id={{CHECKOUT_SESSION_ID}}"));
        assert_eq!(sent[0].form["line_items[0][price_data][unit_amount]"], "6400");
        assert_eq!(sent[0].form["payment_intent_data[capture_method]"], "manual");
        // The live session is returned without asking Stripe again; bad targets never reach it.
        assert_eq!(app.checkout(&app.alice, order).await.ok(StatusCode::OK)["sessionId"], sid.as_str());
        app.call(&app.alice, Method::POST, "/api/v1/payments/checkout-session", Some("bad"),
            Some(json!({"orderId": order, "successUrl": SUCCESS_URL, "cancelUrl": "https://evil.example/"}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(stand_in.requests().len(), 1);
        // Stripe hosts the page: the simulated page's routes are 404 here.
        assert_eq!(app.raw(Method::GET, &format!("/api/v1/payments/hosted/{sid}"), None).await.status, StatusCode::NOT_FOUND);

        // The customer pays on Stripe's page: Stripe creates the session's intent (manual
        // capture, at localstripe) and authorises it.
        let stripe = StripeProvider::with_key(&server.base, SECRET_KEY).unwrap();
        let new = NewIntent { amount: kit::money::Money::new(6400, "USD"), order_id: order };
        let pi = stripe.create_intent(&new, &format!("test:{sid}:intent")).await.unwrap();
        let pi = stripe.confirm(&pi.id, "pm_card_visa", &format!("test:{sid}:confirm")).await.unwrap();
        let charge = pi.charge_id.clone().unwrap();
        let session = stand_in.complete(&sid, &pi.id);
        // Stripe's webhooks, signed the Stripe way: the intent's first (the payment does not
        // know the intent yet), then the session's; the intent is read from Stripe.
        let capturable = intent_event("evt_cap_1", "payment_intent.amount_capturable_updated", &pi.id,
            "requires_capture", json!({"latest_charge": charge}));
        assert_eq!(app.webhook(&capturable, SECRET, now()).await.ok(StatusCode::OK)["result"], "ignored");
        let completed = stripe_event("evt_cs_1", "checkout.session.completed", session);
        assert_eq!(app.webhook(&completed, SECRET, now()).await.ok(StatusCode::OK)["result"], "applied");
        let p = app.call(&app.alice, Method::GET, &format!("/api/v1/payments/{pid}"), None, None).await.ok(StatusCode::OK).clone();
        assert_eq!((p["status"].as_str(), p["providerPaymentId"].as_str()), (Some("AUTHORIZED"), Some(pi.id.as_str())), "{p}");
        assert_eq!((p["chargeId"].as_str(), p["checkoutSessionId"].as_str()), (Some(charge.as_str()), Some(sid.as_str())));
        assert!(p["authorizedAt"].is_string());
        // Redelivered, and the intent's event again after it: nothing more.
        assert_eq!(app.webhook(&completed, SECRET, now()).await.ok(StatusCode::OK)["result"], "duplicate");
        let again = intent_event("evt_cap_2", "payment_intent.amount_capturable_updated", &pi.id, "requires_capture", json!({}));
        assert_eq!(app.webhook(&again, SECRET, now()).await.ok(StatusCode::OK)["result"], "ignored");
        // A signature by another secret is refused.
        app.webhook(&completed.replace("evt_cs_1", "evt_cs_forged"), "whsec_other", now()).await
            .is_problem(StatusCode::BAD_REQUEST, "webhook_signature_invalid");
        let authorized = outbox_data(&db, "payment.authorized").await;
        assert_eq!(authorized.len(), 1);
        assert_eq!(authorized[0]["chargeId"], charge.as_str());

        // Captured at Stripe (localstripe) when the order is confirmed (here: the admin).
        let cap = app.call(&app.admin, Method::POST, &format!("/api/v1/payments/{pid}/capture"), None, None).await;
        assert_eq!(cap.ok(StatusCode::OK)["capturedAmount"], 6400);
        assert_eq!(outbox_data(&db, "payment.captured").await[0]["chargeId"], charge.as_str());

        // The order is cancelled while its session is open: the session is expired at Stripe.
        let o2 = app.order(&app.bob, 900);
        let s2 = app.checkout(&app.bob, o2).await.ok(StatusCode::CREATED).clone();
        let (sid2, pid2) = (s2["sessionId"].as_str().unwrap().to_string(), s2["paymentId"].as_str().unwrap().to_string());
        let ev = Envelope::new(sources::ORDER, &OrderCancelled {
            order_id: o2, user_id: app.bob.id, reason: "customer".into(), items: vec![], refund: false }).unwrap();
        shop_payment::events::handle(&app.state, ev).await.unwrap();
        assert_eq!(stand_in.session(&sid2)["status"], "expired");
        assert!(stand_in.state.expire_keys.lock().unwrap().contains(&format!("order:{o2}:expire:{pid2}")));
        let got = app.call(&app.bob, Method::GET, &format!("/api/v1/payments/{pid2}"), None, None).await;
        assert_eq!(got.ok(StatusCode::OK)["status"], "CANCELLED");
        // Stripe's `checkout.session.expired` for it afterwards changes nothing.
        let expired = stripe_event("evt_cs_2", "checkout.session.expired", stand_in.session(&sid2));
        assert_eq!(app.webhook(&expired, SECRET, now()).await.ok(StatusCode::OK)["result"], "ignored");

        // A session that expires unpaid at Stripe: its webhook cancels the payment.
        let o3 = app.order(&app.bob, 300);
        let s3 = app.checkout(&app.bob, o3).await.ok(StatusCode::CREATED).clone();
        let sid3 = s3["sessionId"].as_str().unwrap().to_string();
        let expired = stripe_event("evt_cs_3", "checkout.session.expired", stand_in.lapse(&sid3));
        assert_eq!(app.webhook(&expired, SECRET, now()).await.ok(StatusCode::OK)["result"], "applied");
        let got = app.call(&app.bob, Method::GET, &format!("/api/v1/payments/{}", s3["paymentId"].as_str().unwrap()), None, None).await;
        assert_eq!(got.ok(StatusCode::OK)["status"], "CANCELLED");
        assert_eq!(outbox_count(&db, "payment.authorized").await, 1);
        assert_eq!(outbox_count(&db, "payment.failed").await, 0);
    }
}
