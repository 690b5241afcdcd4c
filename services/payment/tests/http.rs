//! HTTP tests through the real router, the shared middleware and real tokens, on SQLite and
//! PostgreSQL, with the simulated provider (the order service is a fake: the boundary).

mod support;

use std::sync::atomic::Ordering;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::*;
use uuid::Uuid;

kit::db_tests! { shop_payment::MIGRATIONS;

    async fn intent_creation_rules(db) {
        let app = App::new(db.clone()).await;
        let order = app.order(&app.alice, 12999);
        let body = Some(json!({"orderId": order}));
        let uri = "/api/v1/payments/intent";
        // No token, no key, someone else's order, no such order.
        app.request(Method::POST, uri, &[], Some(json!({"orderId": order}).to_string())).await
            .is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        app.call(&app.alice, Method::POST, uri, None, body.clone()).await
            .is_problem(StatusCode::BAD_REQUEST, "idempotency_key_required");
        app.call(&app.bob, Method::POST, uri, Some("k-bob"), body.clone()).await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.call(&app.alice, Method::POST, uri, Some("k-x"), Some(json!({"orderId": Uuid::now_v7()}))).await
            .is_problem(StatusCode::NOT_FOUND, "not_found");
        app.call(&app.alice, Method::POST, uri, Some("k-y"), Some(json!({"orderId": "nope"}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        // The client cannot choose the amount.
        app.call(&app.alice, Method::POST, uri, Some("k-z"), Some(json!({"orderId": order, "amount": 1}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        // The order service is down: 503, and the key is free again afterwards.
        app.orders.down.store(true, Ordering::SeqCst);
        app.call(&app.alice, Method::POST, uri, Some("k1"), body.clone()).await
            .is_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
        app.orders.down.store(false, Ordering::SeqCst);

        let r = app.call(&app.alice, Method::POST, uri, Some("k1"), body.clone()).await;
        let p = r.ok(StatusCode::CREATED).clone();
        assert_eq!(p["orderId"], order.to_string());
        assert_eq!(p["userId"], app.alice.id.to_string());
        assert_eq!(p["amount"], json!({"amount": 12999, "currency": "USD"}));
        assert_eq!(p["status"], "REQUIRES_PAYMENT_METHOD");
        assert_eq!(p["provider"], "simulated");
        assert!(p["providerPaymentId"].as_str().unwrap().starts_with("pi_"));
        assert!(p["clientSecret"].as_str().unwrap().contains("_secret_"));
        assert_eq!((p["capturedAmount"].as_i64(), p["refundedAmount"].as_i64()), (Some(0), Some(0)));
        assert_eq!(p["history"][0]["to"], "REQUIRES_PAYMENT_METHOD");
        assert_eq!(p["history"][0]["source"], "api");
        assert!(p["history"][0].get("from").is_none());
        assert!(p["createdAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(p["refunds"], json!([]));
        // Same key, same body: the stored answer. Same key, other body: 422.
        let again = app.call(&app.alice, Method::POST, uri, Some("k1"), body.clone()).await;
        assert_eq!((again.status, &again.body), (StatusCode::CREATED, &p));
        let other = app.order(&app.alice, 5);
        app.call(&app.alice, Method::POST, uri, Some("k1"), Some(json!({"orderId": other}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
        // A new key for the same order: its live payment, 200.
        let existing = app.call(&app.alice, Method::POST, uri, Some("k2"), body.clone()).await;
        assert_eq!(existing.ok(StatusCode::OK)["id"], p["id"]);
        // An admin may create it too (for the owner), and gets the same payment.
        let by_admin = app.call(&app.admin, Method::POST, uri, Some("k3"), body.clone()).await;
        assert_eq!(by_admin.ok(StatusCode::OK)["id"], p["id"]);
        // Orders not awaiting payment: 409.
        let shipped = app.order(&app.alice, 100);
        app.orders.set_status(shipped, "SHIPPED");
        app.call(&app.alice, Method::POST, uri, Some("k4"), Some(json!({"orderId": shipped}))).await
            .is_problem(StatusCode::CONFLICT, "order_not_awaiting_payment");

        // Reading: owner and admin; others 404.
        let id = p["id"].as_str().unwrap();
        let got = app.call(&app.alice, Method::GET, &format!("/api/v1/payments/{id}"), None, None).await;
        assert_eq!(got.ok(StatusCode::OK)["id"], p["id"]);
        app.call(&app.bob, Method::GET, &format!("/api/v1/payments/{id}"), None, None).await
            .is_problem(StatusCode::NOT_FOUND, "not_found");
        app.call(&app.admin, Method::GET, &format!("/api/v1/payments/{id}"), None, None).await.ok(StatusCode::OK);
        app.call(&app.alice, Method::GET, "/api/v1/payments/xyz", None, None).await
            .is_problem(StatusCode::BAD_REQUEST, "invalid_path");
        let list = app.call(&app.alice, Method::GET, &format!("/api/v1/payments/order/{order}"), None, None).await;
        assert_eq!(list.ok(StatusCode::OK).as_array().unwrap().len(), 1);
        app.call(&app.bob, Method::GET, &format!("/api/v1/payments/order/{order}"), None, None).await
            .is_problem(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM payments").await, 1);
    }

    async fn confirm_capture_refund_lifecycle(db) {
        let app = App::new(db.clone()).await;
        let order = app.order(&app.alice, 10000);
        let p = app.intent(&app.alice, order).await;
        let id = p["id"].as_str().unwrap().to_string();
        app.confirm(&app.bob, &id, "pm_card_visa").await.is_problem(StatusCode::NOT_FOUND, "not_found");
        app.confirm(&app.alice, &id, "").await.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.confirm(&app.alice, &id, "pm_made_up").await.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "payment_method_invalid");
        let c = app.confirm(&app.alice, &id, "pm_card_visa").await;
        assert_eq!(c.ok(StatusCode::OK)["status"], "AUTHORIZED");
        assert_eq!(outbox_count(&db, "payment.authorized").await, 1);
        // Confirming again answers the payment unchanged.
        let again = app.confirm(&app.alice, &id, "pm_card_visa").await;
        assert_eq!(again.ok(StatusCode::OK)["status"], "AUTHORIZED");
        assert_eq!(outbox_count(&db, "payment.authorized").await, 1);
        // Refund before capture: 409.
        let refund_uri = format!("/api/v1/payments/{id}/refund");
        app.call(&app.admin, Method::POST, &refund_uri, Some("r0"), None).await
            .is_problem(StatusCode::CONFLICT, "payment_not_refundable");

        // Capture: admin only, at most the authorised amount.
        let capture_uri = format!("/api/v1/payments/{id}/capture");
        app.call(&app.alice, Method::POST, &capture_uri, None, None).await.is_problem(StatusCode::FORBIDDEN, "forbidden");
        app.call(&app.admin, Method::POST, &capture_uri, None, Some(json!({"amountToCapture": 10001}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let cap = app.call(&app.admin, Method::POST, &capture_uri, None, Some(json!({"amountToCapture": 9000}))).await;
        let cap = cap.ok(StatusCode::OK);
        assert_eq!((cap["status"].as_str(), cap["capturedAmount"].as_i64()), (Some("CAPTURED"), Some(9000)));
        let cap2 = app.call(&app.admin, Method::POST, &capture_uri, None, None).await;
        assert_eq!(cap2.ok(StatusCode::OK)["capturedAmount"], 9000);
        assert_eq!(outbox_count(&db, "payment.captured").await, 1);

        // Refunds: key required, customers refused, never above captured minus refunded.
        app.call(&app.admin, Method::POST, &refund_uri, None, Some(json!({"amount": 100}))).await
            .is_problem(StatusCode::BAD_REQUEST, "idempotency_key_required");
        app.call(&app.alice, Method::POST, &refund_uri, Some("r1"), Some(json!({"amount": 100}))).await
            .is_problem(StatusCode::FORBIDDEN, "forbidden");
        let too_much = app.call(&app.admin, Method::POST, &refund_uri, Some("r1"), Some(json!({"amount": 9001}))).await;
        too_much.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_captured");
        assert!(too_much.body["detail"].as_str().unwrap().contains("9000"), "{}", too_much.body);
        app.call(&app.admin, Method::POST, &refund_uri, Some("r1b"), Some(json!({"amount": 0}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let part = app.call(&app.admin, Method::POST, &refund_uri, Some("r2"), Some(json!({"amount": 2500, "reason": "damaged"}))).await;
        let part = part.ok(StatusCode::OK).clone();
        assert_eq!((part["status"].as_str(), part["refundedAmount"].as_i64()), (Some("PARTIALLY_REFUNDED"), Some(2500)));
        assert_eq!(part["refunds"][0]["amount"], json!({"amount": 2500, "currency": "USD"}));
        assert_eq!(part["refunds"][0]["reason"], "damaged");
        assert_eq!(part["refunds"][0]["status"], "SUCCEEDED");
        // The same key again: the same answer, no second refund.
        let replay = app.call(&app.admin, Method::POST, &refund_uri, Some("r2"), Some(json!({"amount": 2500, "reason": "damaged"}))).await;
        assert_eq!(replay.ok(StatusCode::OK), &part);
        app.call(&app.admin, Method::POST, &refund_uri, Some("r3"), Some(json!({"amount": 6501}))).await
            .is_problem(StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_captured");
        let rest = app.call(&app.admin, Method::POST, &refund_uri, Some("r4"), None).await;
        let rest = rest.ok(StatusCode::OK);
        assert_eq!((rest["status"].as_str(), rest["refundedAmount"].as_i64()), (Some("REFUNDED"), Some(9000)));
        assert_eq!(rest["refunds"].as_array().unwrap().len(), 2);
        app.call(&app.admin, Method::POST, &refund_uri, Some("r5"), None).await
            .is_problem(StatusCode::CONFLICT, "payment_not_refundable");
        assert_eq!(outbox_count(&db, "payment.refunded").await, 2);
        let statuses: Vec<String> = rest["history"].as_array().unwrap().iter().map(|h| h["to"].as_str().unwrap().to_string()).collect();
        assert_eq!(statuses, ["REQUIRES_PAYMENT_METHOD", "AUTHORIZED", "CAPTURED", "PARTIALLY_REFUNDED", "REFUNDED"]);

        // The simulated provider's webhooks for all of this arrive later and change nothing.
        let delivered = app.state.deliver_simulated_webhooks().await.unwrap();
        assert!(delivered >= 5, "{delivered}");
        let after = app.call(&app.alice, Method::GET, &format!("/api/v1/payments/{id}"), None, None).await;
        assert_eq!(after.ok(StatusCode::OK)["history"].as_array().unwrap().len(), 5);
        assert_eq!(outbox_count(&db, "payment.refunded").await, 2);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM simulated_webhooks WHERE delivered_at IS NULL").await, 0);
    }

    async fn declined_cards_and_three_d_secure(db) {
        let app = App::new(db.clone()).await;
        let order = app.order(&app.alice, 4200);
        let p = app.intent(&app.alice, order).await;
        let id = p["id"].as_str().unwrap().to_string();
        let r = app.confirm(&app.alice, &id, "4000000000000002").await;
        r.is_problem(StatusCode::PAYMENT_REQUIRED, "card_declined");
        assert_eq!(r.body["type"], "https://shop.example/problems/card_declined");
        assert_eq!(r.body["paymentId"], id.as_str());
        assert_eq!(r.body["payment"]["status"], "FAILED");
        assert_eq!(r.body["payment"]["failureCode"], "card_declined");
        assert_eq!(r.body["payment"]["failureReason"], "Your card was declined.");
        assert_eq!(outbox_count(&db, "payment.failed").await, 1);
        // A failed payment cannot be confirmed again; the order may get a new payment.
        app.confirm(&app.alice, &id, "pm_card_visa").await.is_problem(StatusCode::CONFLICT, "payment_not_confirmable");
        let second = app.intent(&app.alice, order).await;
        assert_ne!(second["id"], p["id"]);
        assert_ne!(second["providerPaymentId"], p["providerPaymentId"]);
        let id2 = second["id"].as_str().unwrap().to_string();
        let action = app.confirm(&app.alice, &id2, "pm_card_authenticationRequired").await;
        let action = action.ok(StatusCode::OK);
        assert_eq!(action["status"], "REQUIRES_ACTION");
        assert_eq!(action["nextAction"]["type"], "use_stripe_sdk");
        // Another card after the challenge was abandoned.
        let ok = app.confirm(&app.alice, &id2, "pm_card_visa").await;
        assert_eq!(ok.ok(StatusCode::OK)["status"], "AUTHORIZED");
        assert!(ok.body.get("nextAction").is_none(), "{}", ok.body);
        let list = app.call(&app.alice, Method::GET, &format!("/api/v1/payments/order/{order}"), None, None).await;
        let ids: Vec<&str> = list.ok(StatusCode::OK).as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![id2.as_str(), id.as_str()], "newest first");
        app.state.deliver_simulated_webhooks().await.unwrap();
        assert_eq!(outbox_count(&db, "payment.failed").await, 1);
        assert_eq!(outbox_count(&db, "payment.authorized").await, 1);
    }

    async fn fifty_parallel_intents_make_one_payment(db) {
        let app = std::sync::Arc::new(App::new(db.clone()).await);
        let order = app.order(&app.alice, 777);
        let mut tasks = Vec::new();
        for i in 0..50 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                // Half share one key, half use their own.
                let key = if i % 2 == 0 { "shared".to_string() } else { format!("own-{i}") };
                let r = app.call(&app.alice, Method::POST, "/api/v1/payments/intent", Some(&key),
                    Some(json!({"orderId": order}))).await;
                (r.status, r.body["id"].as_str().map(str::to_string))
            }));
        }
        let mut ids = std::collections::HashSet::new();
        let mut created = 0;
        for t in tasks {
            let (status, id) = t.await.unwrap();
            assert!(status == StatusCode::CREATED || status == StatusCode::OK, "{status}");
            created += usize::from(status == StatusCode::CREATED);
            ids.insert(id.expect("a payment"));
        }
        assert_eq!(ids.len(), 1, "one payment: {ids:?}");
        assert!((1..=25).contains(&created), "201 for the first and for replays of its key: {created}");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM payments").await, 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM simulated_intents").await, 1, "one provider intent");
    }

    async fn webhook_signatures_and_duplicates(db) {
        let app = App::new(db.clone()).await;
        let order = app.order(&app.alice, 3000);
        let p = app.intent(&app.alice, order).await;
        let intent = p["providerPaymentId"].as_str().unwrap();
        let body = intent_event("evt_auth_1", "payment_intent.amount_capturable_updated", intent, "requires_capture",
            json!({"amount_capturable": 3000}));
        let uri = "/api/v1/webhooks/stripe";
        // Missing, wrong secret, tampered, expired, future, malformed signatures: 400, nothing happens.
        app.request(Method::POST, uri, &[], Some(body.clone())).await.is_problem(StatusCode::BAD_REQUEST, "webhook_signature_missing");
        app.webhook(&body, "whsec_wrong", now()).await.is_problem(StatusCode::BAD_REQUEST, "webhook_signature_invalid");
        let sig = stripe_signature(SECRET, now(), &body);
        app.request(Method::POST, uri, &[("stripe-signature", &sig)], Some(body.replace("3000", "1"))).await
            .is_problem(StatusCode::BAD_REQUEST, "webhook_signature_invalid");
        app.webhook(&body, SECRET, now() - 301).await.is_problem(StatusCode::BAD_REQUEST, "webhook_signature_expired");
        app.webhook(&body, SECRET, now() + 301).await.is_problem(StatusCode::BAD_REQUEST, "webhook_signature_expired");
        app.request(Method::POST, uri, &[("stripe-signature", "t=abc,v1=zz")], Some(body.clone())).await
            .is_problem(StatusCode::BAD_REQUEST, "webhook_signature_invalid");
        app.webhook("not json", SECRET, now()).await.is_problem(StatusCode::BAD_REQUEST, "malformed_json");
        assert_eq!(outbox_count(&db, "payment.authorized").await, 0);
        // Valid and within the tolerance (signed 250 s ago): applied once; a duplicate is harmless.
        let r = app.webhook(&body, SECRET, now() - 250).await;
        assert_eq!(r.ok(StatusCode::OK), &json!({"received": true, "result": "applied"}));
        let r = app.webhook(&body, SECRET, now()).await;
        assert_eq!(r.ok(StatusCode::OK)["result"], "duplicate");
        // The same change under another event id (a retry of Stripe's): no second effect.
        let other = intent_event("evt_auth_2", "payment_intent.amount_capturable_updated", intent, "requires_capture", json!({}));
        assert_eq!(app.webhook(&other, SECRET, now()).await.ok(StatusCode::OK)["result"], "ignored");
        assert_eq!(outbox_count(&db, "payment.authorized").await, 1);
        // Out of order: a late `requires_action` after the authorisation is ignored.
        let late = intent_event("evt_late", "payment_intent.requires_action", intent, "requires_action", json!({}));
        assert_eq!(app.webhook(&late, SECRET, now()).await.ok(StatusCode::OK)["result"], "ignored");
        // Unknown types and unknown intents: 200, ignored.
        let unknown = json!({"id": "evt_x", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).to_string();
        assert_eq!(app.webhook(&unknown, SECRET, now()).await.ok(StatusCode::OK)["result"], "ignored");
        let stranger = intent_event("evt_y", "payment_intent.succeeded", "pi_unknown", "succeeded", json!({}));
        assert_eq!(app.webhook(&stranger, SECRET, now()).await.ok(StatusCode::OK)["result"], "ignored");
        // Capture at the provider's dashboard → CAPTURED; a refund there → recorded.
        let succeeded = intent_event("evt_cap", "payment_intent.succeeded", intent, "succeeded", json!({"amount_received": 3000}));
        assert_eq!(app.webhook(&succeeded, SECRET, now()).await.ok(StatusCode::OK)["result"], "applied");
        let refunded = json!({"id": "evt_ref", "type": "charge.refunded", "data": {"object": {
            "id": "ch_1", "object": "charge", "payment_intent": intent, "amount_refunded": 1000,
            "refunds": {"object": "list", "data": [{"id": "re_dash_1", "amount": 1000, "status": "succeeded", "metadata": {}}]}}}}).to_string();
        assert_eq!(app.webhook(&refunded, SECRET, now()).await.ok(StatusCode::OK)["result"], "applied");
        assert_eq!(app.webhook(&refunded, SECRET, now()).await.ok(StatusCode::OK)["result"], "duplicate");
        // An API version without the refund list: the difference to what is known.
        let without_list = json!({"id": "evt_ref2", "type": "charge.refunded", "data": {"object": {
            "id": "ch_1", "object": "charge", "payment_intent": intent, "amount_refunded": 1500}}}).to_string();
        assert_eq!(app.webhook(&without_list, SECRET, now()).await.ok(StatusCode::OK)["result"], "applied");
        let id = p["id"].as_str().unwrap();
        let got = app.call(&app.alice, Method::GET, &format!("/api/v1/payments/{id}"), None, None).await;
        let got = got.ok(StatusCode::OK);
        assert_eq!((got["status"].as_str(), got["refundedAmount"].as_i64()), (Some("PARTIALLY_REFUNDED"), Some(1500)));
        assert_eq!(got["history"][1]["source"], "webhook");
        assert_eq!(outbox_count(&db, "payment.refunded").await, 2);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM webhook_events").await, 8);
        // A failure for another payment, with Stripe's last_payment_error.
        let q = app.intent(&app.bob, app.order(&app.bob, 50)).await;
        let failed = intent_event("evt_fail", "payment_intent.payment_failed", q["providerPaymentId"].as_str().unwrap(),
            "requires_payment_method", json!({"last_payment_error": {"type": "card_error", "code": "card_declined", "message": "Insufficient funds."}}));
        assert_eq!(app.webhook(&failed, SECRET, now()).await.ok(StatusCode::OK)["result"], "applied");
        let q = app.call(&app.bob, Method::GET, &format!("/api/v1/payments/{}", q["id"].as_str().unwrap()), None, None).await;
        assert_eq!(q.body["status"], "FAILED");
        assert_eq!(q.body["failureReason"], "Insufficient funds.");
    }

    async fn confirm_racing_a_webhook_makes_one_transition(db) {
        let app = std::sync::Arc::new(App::new(db.clone()).await);
        for round in 0..5 {
            let order = app.order(&app.alice, 1000 + round);
            let p = app.intent(&app.alice, order).await;
            let id = p["id"].as_str().unwrap().to_string();
            let intent = p["providerPaymentId"].as_str().unwrap().to_string();
            let body = intent_event(&format!("evt_race_{round}"), "payment_intent.amount_capturable_updated", &intent,
                "requires_capture", json!({}));
            let (a, b) = (app.clone(), app.clone());
            let id2 = id.clone();
            let confirm = tokio::spawn(async move { a.confirm(&a.alice, &id2, "pm_card_visa").await });
            let hook = tokio::spawn(async move { b.webhook(&body, SECRET, now()).await });
            let (c, h) = (confirm.await.unwrap(), hook.await.unwrap());
            assert_eq!(c.ok(StatusCode::OK)["status"], "AUTHORIZED");
            h.ok(StatusCode::OK);
            // The provider's own webhook comes afterwards, too.
            app.state.deliver_simulated_webhooks().await.unwrap();
            let got = app.call(&app.alice, Method::GET, &format!("/api/v1/payments/{id}"), None, None).await;
            let to_authorized = got.body["history"].as_array().unwrap().iter().filter(|h| h["to"] == "AUTHORIZED").count();
            assert_eq!(to_authorized, 1, "one transition: {}", got.body);
        }
        assert_eq!(outbox_count(&db, "payment.authorized").await, 5, "one event per payment");
    }
    async fn admins_list_payments_with_filters(db) {
        let app = App::new(db.clone()).await;
        let uri = "/api/v1/payments";
        let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
        let first = app.intent(&app.alice, app.order(&app.alice, 1000)).await;
        let second = app.intent(&app.bob, app.order(&app.bob, 2000)).await;
        let declined_order = app.order(&app.alice, 3000);
        let declined = app.intent(&app.alice, declined_order).await;
        app.confirm(&app.alice, declined["id"].as_str().unwrap(), "pm_card_chargeDeclined").await
            .is_problem(StatusCode::PAYMENT_REQUIRED, "card_declined");
        app.confirm(&app.bob, second["id"].as_str().unwrap(), "pm_card_visa").await.ok(StatusCode::OK);

        // Admins only.
        app.request(Method::GET, uri, &[], None).await.is_problem(StatusCode::UNAUTHORIZED, "token_missing");
        app.call(&app.alice, Method::GET, uri, None, None).await.is_problem(StatusCode::FORBIDDEN, "forbidden");

        // Everything, newest first, with history and refunds.
        let all = app.call(&app.admin, Method::GET, uri, None, None).await;
        let all = all.ok(StatusCode::OK);
        assert_eq!((all["total"].as_i64(), all["page"].as_i64(), all["pageSize"].as_i64()), (Some(3), Some(1), Some(20)));
        let ids: Vec<&str> = all["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [declined["id"].as_str().unwrap(), second["id"].as_str().unwrap(), first["id"].as_str().unwrap()]);
        assert!(all["items"][0]["history"].as_array().unwrap().len() >= 2);

        // By status, provider, order and time; pages.
        let failed = app.call(&app.admin, Method::GET, &format!("{uri}?status=FAILED"), None, None).await;
        let failed = failed.ok(StatusCode::OK);
        assert_eq!(failed["total"], 1);
        assert_eq!(failed["items"][0]["id"], declined["id"]);
        let authorized = app.call(&app.admin, Method::GET, &format!("{uri}?status=AUTHORIZED&provider=simulated"), None, None).await;
        assert_eq!(authorized.ok(StatusCode::OK)["items"][0]["id"], second["id"]);
        let stripe = app.call(&app.admin, Method::GET, &format!("{uri}?provider=stripe"), None, None).await;
        assert_eq!(stripe.ok(StatusCode::OK)["total"], 0);
        let by_order = app.call(&app.admin, Method::GET, &format!("{uri}?orderId={declined_order}"), None, None).await;
        assert_eq!(by_order.ok(StatusCode::OK)["items"][0]["id"], declined["id"]);
        let rfc = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap().replace('+', "%2B");
        let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(1);
        let window = app.call(&app.admin, Method::GET, &format!("{uri}?from={}&to={}", rfc(before), rfc(later)), None, None).await;
        assert_eq!(window.ok(StatusCode::OK)["total"], 3);
        let future = app.call(&app.admin, Method::GET, &format!("{uri}?from={}", rfc(later)), None, None).await;
        assert_eq!(future.ok(StatusCode::OK)["total"], 0);
        let paged = app.call(&app.admin, Method::GET, &format!("{uri}?page=2&pageSize=2"), None, None).await;
        let paged = paged.ok(StatusCode::OK);
        assert_eq!((paged["items"].as_array().unwrap().len(), paged["totalPages"].as_i64()), (1, Some(2)));
        assert_eq!(paged["items"][0]["id"], first["id"]);

        // Bad filters: one field error each.
        let bad = app.call(&app.admin, Method::GET, &format!("{uri}?from=yesterday&pageSize=500"), None, None).await;
        bad.is_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let fields: Vec<&str> = bad.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["pageSize", "from"]);
        // Values outside the document's enums, unknown parameters and ids that are not UUIDs
        // do not parse.
        for q in ["status=PAID", "status=failed", "provider=paypal", "orderId=nope", "colour=red"] {
            app.call(&app.admin, Method::GET, &format!("{uri}?{q}"), None, None).await
                .is_problem(StatusCode::BAD_REQUEST, "invalid_query");
        }
    }

}
