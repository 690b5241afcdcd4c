//! The webhook-style SMS/push provider against a real HTTP server on loopback.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use shop_notification::model::{ChannelKind, NotificationType};
use shop_notification::{Channel, OutgoingMessage, SendError, WebhookChannel};

type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A provider that records each request and answers with the given statuses in turn.
async fn provider(answers: Vec<StatusCode>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let record = seen.clone();
    let app = Router::new().route(
        "/sms",
        post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let record = record.clone();
            let answers = answers.clone();
            async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
                record.lock().unwrap().push((key, body.0));
                answers.lock().unwrap().next().unwrap_or(StatusCode::OK)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/sms"), seen)
}

fn message() -> OutgoingMessage {
    OutgoingMessage {
        id: uuid::Uuid::now_v7(),
        channel: ChannelKind::Sms,
        notification_type: NotificationType::ShippingUpdate,
        recipient: "+15555550100".into(),
        subject: "Your order has shipped".into(),
        text: "Tracking 1Z999".into(),
        html: None,
    }
}

#[tokio::test]
async fn delivers_json_with_an_idempotency_key_and_classifies_failures() {
    let (url, seen) = provider(vec![
        StatusCode::OK,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::BAD_REQUEST,
    ])
    .await;
    let channel = WebhookChannel::new(ChannelKind::Sms, url).unwrap();
    let msg = message();

    channel.send(&msg).await.unwrap();
    {
        let seen = seen.lock().unwrap();
        let (key, body) = &seen[0];
        assert_eq!(key.as_deref(), Some(msg.id.to_string().as_str()), "the provider can deduplicate retries");
        assert_eq!(body["recipient"], "+15555550100");
        assert_eq!(body["text"], "Tracking 1Z999");
        assert_eq!(body["type"], "SHIPPING_UPDATE");
    }
    assert!(matches!(channel.send(&msg).await, Err(SendError::Retryable(_))), "5xx is retried");
    assert!(matches!(channel.send(&msg).await, Err(SendError::Retryable(_))), "429 is retried");
    match channel.send(&msg).await {
        Err(SendError::Permanent(e)) => assert!(e.contains("400"), "{e}"),
        other => panic!("a 400 is permanent: {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_a_retryable_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let channel = WebhookChannel::new(ChannelKind::Sms, format!("http://127.0.0.1:{port}/sms")).unwrap();
    assert!(matches!(channel.send(&message()).await, Err(SendError::Retryable(_))));
}
