//! Hosted checkout with the simulated provider, through the real router with real tokens, on
//! SQLite and PostgreSQL: session creation (allow-list, idempotency, one live session per
//! order), the hosted page, paying (the signed `checkout.session.completed` self-webhook makes
//! the payment AUTHORIZED, once), declines, cancellation, order cancellation and expiry.

mod support;

use axum::http::{header, Method, StatusCode};
use kit::db::Timestamp;
use kit::events::contract::sources;
use kit::events::payloads::OrderCancelled;
use kit::events::Envelope;
use kit::with_db;
use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

const URI: &str = "/api/v1/payments/checkout-session";

async fn payment(app: &App, id: &str) -> Value {
    app.call(&app.admin, Method::GET, &format!("/api/v1/payments/{id}"), None, None)
        .await
        .ok(StatusCode::OK)
        .clone()
}

fn history_to(p: &Value, status: &str) -> usize {
    p["history"].as_array().unwrap().iter().filter(|h| h["to"] == status).count()
}

/// The same event under another event id (a second delivery of the same fact).
fn renamed(event: &str, id: &str) -> String {
    let mut v: Value = serde_json::from_str(event).unwrap();
    v["id"] = json!(id);
    v.to_string()
}

fn cancelled(order: Uuid, user: Uuid) -> Envelope {
    Envelope::new(
        sources::ORDER,
        &OrderCancelled {
            order_id: order,
            user_id: user,
            reason: "customer".into(),
            items: vec![],
            refund: false,
        },
    )
    .unwrap()
}

async fn session_status(app: &App, session: &str) -> String {
    with_db!(&app.db, pool => sqlx::query_scalar("SELECT status FROM simulated_checkout_sessions WHERE id = $1")
        .bind(session).fetch_one(pool).await)
    .unwrap()
}

/// Moves a session's expiry (at the provider and on the payment) into the past.
async fn lapse(app: &App, session: &str) {
    let past = Timestamp::now() - std::time::Duration::from_secs(60);
    with_db!(&app.db, pool => async {
        sqlx::query("UPDATE simulated_checkout_sessions SET expires_at = $1 WHERE id = $2")
            .bind(past).bind(session).execute(pool).await?;
        sqlx::query("UPDATE payments SET checkout_expires_at = $1 WHERE checkout_session_id = $2")
            .bind(past).bind(session).execute(pool).await.map(|_| ())
    }.await)
    .unwrap();
}

kit::db_tests! { shop_payment::MIGRATIONS;

    async fn hosted_checkout_is_authorised_once_by_its_signed_webhook(db) {
        let app = App::new(db.clone()).await;
        let order = app.order(&app.alice, 12999);
        let body = json!({"orderId": order, "successUrl": SUCCESS_URL, "cancelUrl": CANCEL_URL});
        app.request(Method::POST, URI, &[], Some(body.to_string())).await.is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        app.call(&app.alice, Method::POST, URI, None, Some(body.clone())).await
            .is_problem(StatusCode::BAD_REQUEST, "idempotency_key_required");
        app.call(&app.bob, Method::POST, URI, Some("b1"), Some(body.clone())).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        // Redirect targets outside the allow-list: 422 naming the field, nothing created.
        let evil = app.call(&app.alice, Method::POST, URI, Some("e1"),
            Some(json!({"orderId": order, "successUrl": "https://evil.example/ok", "cancelUrl": CANCEL_URL}))).await;
        evil.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(evil.body["errors"][0]["field"], "successUrl", "{}", evil.body);
        let both = app.call(&app.alice, Method::POST, URI, Some("e2"),
            Some(json!({"orderId": order, "successUrl": "/relative", "cancelUrl": "javascript:alert(1)"}))).await;
        both.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let fields: Vec<&str> = both.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["successUrl", "cancelUrl"]);
        app.call(&app.alice, Method::POST, URI, Some("e3"), Some(json!({"orderId": order, "successUrl": SUCCESS_URL}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM simulated_checkout_sessions").await, 0);

        let created = app.call(&app.alice, Method::POST, URI, Some("k1"), Some(body.clone())).await;
        let s = created.ok(StatusCode::CREATED).clone();
        let sid = s["sessionId"].as_str().unwrap().to_string();
        let pid = s["paymentId"].as_str().unwrap().to_string();
        assert!(sid.starts_with("cs_test_") && sid.len() > 40, "{sid}");
        let url = format!("/api/v1/payments/hosted/{sid}");
        assert_eq!(s["url"], url.as_str());
        let expires = time::OffsetDateTime::parse(s["expiresAt"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
        assert!(expires > time::OffsetDateTime::now_utc() + time::Duration::hours(23), "{expires}");
        let p = &s["payment"];
        assert_eq!(p["id"], pid.as_str());
        assert_eq!((p["status"].as_str(), p["provider"].as_str()), (Some("REQUIRES_PAYMENT_METHOD"), Some("simulated")));
        assert_eq!(p["amount"], json!({"amount": 12999, "currency": "USD"}));
        assert_eq!(p["checkoutSessionId"], sid.as_str());
        assert_eq!(p["providerPaymentId"], sid.as_str(), "the intent does not exist before the customer pays");
        assert!(p.get("clientSecret").is_none() && p.get("chargeId").is_none() && p.get("authorizedAt").is_none(), "{p}");
        assert_eq!(p["history"][0]["reason"], "checkout session created");
        // Same key and body: the stored answer. Same key, other body: refused. Another key or
        // the admin: the order's live session, 200.
        let replay = app.call(&app.alice, Method::POST, URI, Some("k1"), Some(body.clone())).await;
        assert_eq!((replay.status, &replay.body), (StatusCode::CREATED, &s));
        app.call(&app.alice, Method::POST, URI, Some("k1"),
            Some(json!({"orderId": order, "successUrl": "http://localhost:3000/other", "cancelUrl": CANCEL_URL}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
        assert_eq!(app.call(&app.alice, Method::POST, URI, Some("k2"), Some(body.clone())).await.ok(StatusCode::OK)["sessionId"], sid.as_str());
        assert_eq!(app.call(&app.admin, Method::POST, URI, Some("k3"), Some(body.clone())).await.ok(StatusCode::OK)["sessionId"], sid.as_str());
        assert_eq!(count(&db, "SELECT COUNT(*) FROM simulated_checkout_sessions").await, 1);
        // The order's one live payment is this one; it is paid on the page, not confirmed.
        let intent = app.call(&app.alice, Method::POST, "/api/v1/payments/intent", Some("i1"), Some(json!({"orderId": order}))).await;
        assert_eq!(intent.ok(StatusCode::OK)["id"], pid.as_str());
        app.confirm(&app.alice, &pid, "pm_card_visa").await.is_problem(StatusCode::CONFLICT, "payment_not_confirmable");

        // The hosted page: no token, HTML with the amount, the order and the forms.
        let page = app.raw(Method::GET, &url, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
        assert!(page.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'none'"));
        for part in ["$129.99", &order.to_string(), &format!(r#"<form method="post" action="{url}/pay">"#),
                     &format!(r#"action="{url}/cancel""#), r#"<option value="pm_card_visa">"#,
                     r#"<option value="pm_card_chargeDeclined">"#, r#"name="paymentMethod""#] {
            assert!(page.body.contains(part), "{part} missing from {}", page.body);
        }
        // Only the page's test cards (authorised or declined) are accepted.
        for form in ["paymentMethod=pm_card_bogus", "", "paymentMethod=pm_card_authenticationRequired"] {
            let r = app.raw(Method::POST, &format!("{url}/pay"), Some(form)).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {}", r.body);
            assert_eq!(r.json()["code"], "payment_method_invalid");
        }

        // Pay with the good card: 303 back to the shop with the session id.
        let paid = app.raw(Method::POST, &format!("{url}/pay"), Some("paymentMethod=pm_card_visa")).await;
        assert_eq!(paid.see_other(), format!("{SUCCESS_URL}?session_id={sid}"));
        // The payment follows the provider's signed webhook, not the redirect.
        assert_eq!(payment(&app, &pid).await["status"], "REQUIRES_PAYMENT_METHOD");
        let completed = simulated_webhooks(&db, "checkout.session.completed").await;
        let capturable = simulated_webhooks(&db, "payment_intent.amount_capturable_updated").await;
        assert_eq!((completed.len(), capturable.len()), (1, 1));
        // Delivered in the order queued: the intent's event first (the payment does not know
        // the intent yet: ignored), then the session's.
        assert!(app.state.deliver_simulated_webhooks().await.unwrap() >= 3);
        let p = payment(&app, &pid).await;
        assert_eq!(p["status"], "AUTHORIZED", "{p}");
        let charge = p["chargeId"].as_str().unwrap().to_string();
        let intent_id = p["providerPaymentId"].as_str().unwrap().to_string();
        assert!(charge.starts_with("ch_") && intent_id.starts_with("pi_"), "{p}");
        assert!(p["authorizedAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(p["checkoutSessionId"], sid.as_str());
        let last = p["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["from"].as_str(), last["source"].as_str()), (Some("REQUIRES_PAYMENT_METHOD"), Some("webhook")));
        assert_eq!(last["reason"], "webhook checkout.session.completed");
        let events = outbox_data(&db, "payment.authorized").await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["chargeId"], charge.as_str(), "{}", events[0]);
        assert_eq!(events[0]["paymentId"], pid.as_str());
        assert_eq!(events[0]["amount"], json!({"amount": 12999, "currency": "USD"}));

        // A duplicate delivery, the same fact under a new event id, and the intent's event
        // after the session's: no second transition, no second event.
        let dup = app.webhook(&completed[0], SECRET, now()).await;
        assert_eq!(dup.ok(StatusCode::OK)["result"], "duplicate");
        let again = app.webhook(&renamed(&completed[0], "evt_completed_again"), SECRET, now()).await;
        assert_eq!(again.ok(StatusCode::OK)["result"], "ignored");
        let late = app.webhook(&renamed(&capturable[0], "evt_capturable_late"), SECRET, now()).await;
        assert_eq!(late.ok(StatusCode::OK)["result"], "ignored");
        assert_eq!(outbox_count(&db, "payment.authorized").await, 1);
        assert_eq!(history_to(&payment(&app, &pid).await, "AUTHORIZED"), 1);

        // The session is finished: the page is a 409 problem; the same card again (a double
        // submit) replays the redirect; another card or a cancellation is refused.
        let gone = app.raw(Method::GET, &url, None).await;
        assert_eq!((gone.status, gone.json()["code"].as_str()), (StatusCode::CONFLICT, Some("checkout_session_not_open")));
        let twice = app.raw(Method::POST, &format!("{url}/pay"), Some("paymentMethod=pm_card_visa")).await;
        assert_eq!(twice.see_other(), format!("{SUCCESS_URL}?session_id={sid}"));
        assert_eq!(app.raw(Method::POST, &format!("{url}/pay"), Some("paymentMethod=pm_card_chargeDeclined")).await.status, StatusCode::CONFLICT);
        assert_eq!(app.raw(Method::POST, &format!("{url}/cancel"), None).await.status, StatusCode::CONFLICT);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM simulated_intents").await, 1);
        // Another request for a session gets the authorised one.
        let live = app.checkout(&app.alice, order).await;
        assert_eq!(live.ok(StatusCode::OK)["payment"]["status"], "AUTHORIZED");

        // The order is confirmed (here: the admin captures): the same charge is reported.
        let cap = app.call(&app.admin, Method::POST, &format!("/api/v1/payments/{pid}/capture"), None, None).await;
        assert_eq!(cap.ok(StatusCode::OK)["capturedAmount"], 12999);
        let captured = outbox_data(&db, "payment.captured").await;
        assert_eq!(captured[0]["chargeId"], charge.as_str());
    }

    async fn declined_and_cancelled_checkouts(db) {
        let app = App::new(db.clone()).await;
        let order = app.order(&app.alice, 4200);
        let s1 = app.checkout(&app.alice, order).await.ok(StatusCode::CREATED).clone();
        let (sid1, pid1) = (s1["sessionId"].as_str().unwrap().to_string(), s1["paymentId"].as_str().unwrap().to_string());
        let url1 = s1["url"].as_str().unwrap().to_string();
        // Declined: back to the shop with the error; the payment is FAILED at once.
        let declined = app.raw(Method::POST, &format!("{url1}/pay"), Some("paymentMethod=pm_card_chargeDeclined")).await;
        assert_eq!(declined.see_other(), format!("{CANCEL_URL}?session_id={sid1}&error=card_declined"));
        let p = payment(&app, &pid1).await;
        assert_eq!((p["status"].as_str(), p["failureCode"].as_str()), (Some("FAILED"), Some("card_declined")), "{p}");
        assert_eq!(p["failureReason"], "Your card was declined.");
        assert!(p["providerPaymentId"].as_str().unwrap().starts_with("pi_"), "{p}");
        assert_eq!(outbox_count(&db, "payment.failed").await, 1);
        assert_eq!(outbox_data(&db, "payment.failed").await[0]["paymentId"], pid1.as_str());
        // The provider's webhooks (payment_intent.payment_failed, checkout.session.expired),
        // delivered and delivered again, change nothing.
        app.state.deliver_simulated_webhooks().await.unwrap();
        let expired = simulated_webhooks(&db, "checkout.session.expired").await;
        assert_eq!(expired.len(), 1);
        assert_eq!(app.webhook(&expired[0], SECRET, now()).await.ok(StatusCode::OK)["result"], "duplicate");
        assert_eq!(app.webhook(&renamed(&expired[0], "evt_expired_2"), SECRET, now()).await.ok(StatusCode::OK)["result"], "ignored");
        let p = payment(&app, &pid1).await;
        assert_eq!((p["status"].as_str(), history_to(&p, "FAILED")), (Some("FAILED"), 1));
        assert_eq!(outbox_count(&db, "payment.failed").await, 1);
        let gone = app.raw(Method::GET, &url1, None).await;
        assert_eq!((gone.status, gone.json()["code"].as_str()), (StatusCode::CONFLICT, Some("checkout_session_not_open")));

        // A new attempt for the order: a new session, cancelled on its page.
        let s2 = app.checkout(&app.alice, order).await.ok(StatusCode::CREATED).clone();
        let (sid2, pid2) = (s2["sessionId"].as_str().unwrap().to_string(), s2["paymentId"].as_str().unwrap().to_string());
        assert_ne!(sid2, sid1);
        let url2 = s2["url"].as_str().unwrap().to_string();
        let back = app.raw(Method::POST, &format!("{url2}/cancel"), None).await;
        assert_eq!(back.see_other(), format!("{CANCEL_URL}?session_id={sid2}"));
        let p2 = payment(&app, &pid2).await;
        assert_eq!(p2["status"], "CANCELLED");
        let last = p2["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["source"].as_str(), last["reason"].as_str()), (Some("api"), Some("cancelled on the hosted checkout page")));
        app.state.deliver_simulated_webhooks().await.unwrap();
        assert_eq!(history_to(&payment(&app, &pid2).await, "CANCELLED"), 1);
        assert_eq!(app.raw(Method::GET, &url2, None).await.status, StatusCode::CONFLICT);
        assert_eq!(app.raw(Method::POST, &format!("{url2}/pay"), Some("paymentMethod=pm_card_visa")).await.status, StatusCode::CONFLICT);
        assert_eq!(outbox_count(&db, "payment.failed").await, 1);
        assert_eq!(outbox_count(&db, "payment.authorized").await, 0);

        // Unknown sessions and ids that are not session ids: 404 problems.
        for uri in ["/api/v1/payments/hosted/cs_test_unknown", "/api/v1/payments/hosted/nope"] {
            let r = app.raw(Method::GET, uri, None).await;
            assert_eq!((r.status, r.json()["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{uri}");
        }
        let r = app.raw(Method::POST, "/api/v1/payments/hosted/cs_test_unknown/pay", Some("paymentMethod=pm_card_visa")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(app.raw(Method::POST, "/api/v1/payments/hosted/cs_test_unknown/cancel", None).await.status, StatusCode::NOT_FOUND);

        // Orders that cannot get a session.
        let paid = app.order(&app.alice, 100);
        app.orders.set_status(paid, "PAID");
        app.checkout(&app.alice, paid).await.is_problem(StatusCode::CONFLICT, "order_not_awaiting_payment");
        let with_intent = app.order(&app.alice, 500);
        app.intent(&app.alice, with_intent).await;
        app.checkout(&app.alice, with_intent).await.is_problem(StatusCode::CONFLICT, "order_has_payment");
        app.checkout(&app.alice, Uuid::now_v7()).await.is_problem(StatusCode::NOT_FOUND, "not_found");
    }

    async fn order_cancellation_and_expiry_end_sessions(db) {
        let app = App::new(db.clone()).await;
        let alice = app.alice.id;
        // order.cancelled while the session is open: expired at the provider, payment CANCELLED.
        let a = app.order(&app.alice, 1000);
        let sa = app.checkout(&app.alice, a).await.ok(StatusCode::CREATED).clone();
        shop_payment::events::handle(&app.state, cancelled(a, alice)).await.unwrap();
        assert_eq!(payment(&app, sa["paymentId"].as_str().unwrap()).await["status"], "CANCELLED");
        assert_eq!(session_status(&app, sa["sessionId"].as_str().unwrap()).await, "expired");
        assert_eq!(app.raw(Method::GET, sa["url"].as_str().unwrap(), None).await.status, StatusCode::CONFLICT);

        // order.cancelled after the customer paid, before the completion webhook: the
        // authorisation is voided; the late webhook changes nothing.
        let b = app.order(&app.alice, 2000);
        let sb = app.checkout(&app.alice, b).await.ok(StatusCode::CREATED).clone();
        let pay = format!("{}/pay", sb["url"].as_str().unwrap());
        app.raw(Method::POST, &pay, Some("paymentMethod=pm_card_visa")).await.see_other();
        shop_payment::events::handle(&app.state, cancelled(b, alice)).await.unwrap();
        let pb = payment(&app, sb["paymentId"].as_str().unwrap()).await;
        assert_eq!(pb["status"], "CANCELLED");
        let intent = pb["providerPaymentId"].as_str().unwrap().to_string();
        assert!(intent.starts_with("pi_"), "{pb}");
        let intent_status: String = with_db!(&app.db, pool => sqlx::query_scalar(
            "SELECT status FROM simulated_intents WHERE id = $1").bind(&intent).fetch_one(pool).await).unwrap();
        assert_eq!(intent_status, "canceled");
        app.state.deliver_simulated_webhooks().await.unwrap();
        assert_eq!(payment(&app, sb["paymentId"].as_str().unwrap()).await["status"], "CANCELLED");
        assert_eq!(outbox_count(&db, "payment.authorized").await, 0);

        // A session past its expiry: the page expires it (and cancels the payment) ...
        let c = app.order(&app.alice, 3000);
        let sc = app.checkout(&app.alice, c).await.ok(StatusCode::CREATED).clone();
        lapse(&app, sc["sessionId"].as_str().unwrap()).await;
        let r = app.raw(Method::GET, sc["url"].as_str().unwrap(), None).await;
        assert_eq!((r.status, r.json()["code"].as_str()), (StatusCode::CONFLICT, Some("checkout_session_not_open")));
        assert_eq!(payment(&app, sc["paymentId"].as_str().unwrap()).await["status"], "CANCELLED");
        // ... the sweeper expires the others, whose webhooks cancel their payments ...
        let d = app.order(&app.alice, 4000);
        let sd = app.checkout(&app.alice, d).await.ok(StatusCode::CREATED).clone();
        lapse(&app, sd["sessionId"].as_str().unwrap()).await;
        assert_eq!(app.state.expire_due_checkout_sessions().await.unwrap(), 1);
        assert_eq!(app.state.expire_due_checkout_sessions().await.unwrap(), 0);
        app.state.deliver_simulated_webhooks().await.unwrap();
        let pd = payment(&app, sd["paymentId"].as_str().unwrap()).await;
        assert_eq!(pd["status"], "CANCELLED");
        assert_eq!(pd["history"].as_array().unwrap().last().unwrap()["source"], "webhook");
        // ... and asking again for an order whose session lapsed makes a new one.
        let e = app.order(&app.alice, 5000);
        let se = app.checkout(&app.alice, e).await.ok(StatusCode::CREATED).clone();
        lapse(&app, se["sessionId"].as_str().unwrap()).await;
        let fresh = app.checkout(&app.alice, e).await.ok(StatusCode::CREATED).clone();
        assert_ne!(fresh["sessionId"], se["sessionId"]);
        assert_eq!(payment(&app, se["paymentId"].as_str().unwrap()).await["status"], "CANCELLED");
        assert_eq!(outbox_count(&db, "payment.failed").await, 0);
    }

    async fn parallel_session_requests_make_one_session(db) {
        let app = std::sync::Arc::new(App::new(db.clone()).await);
        let order = app.order(&app.alice, 777);
        let mut tasks = Vec::new();
        for i in 0..20 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let key = if i % 2 == 0 { "shared".to_string() } else { format!("own-{i}") };
                let body = json!({"orderId": order, "successUrl": SUCCESS_URL, "cancelUrl": CANCEL_URL});
                let r = app.call(&app.alice, Method::POST, URI, Some(&key), Some(body)).await;
                (r.status, r.body["sessionId"].as_str().map(str::to_string))
            }));
        }
        let mut sessions = std::collections::HashSet::new();
        for t in tasks {
            let (status, session) = t.await.unwrap();
            assert!(status == StatusCode::CREATED || status == StatusCode::OK, "{status}");
            sessions.insert(session.expect("a session"));
        }
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM payments").await, 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM simulated_checkout_sessions").await, 1);
    }
}
