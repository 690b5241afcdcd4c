//! Store and dispatcher tests, run on SQLite and PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kit::db::Timestamp;
use kit::events::contract::sources;
use kit::events::payloads::{InventoryLowStock, OrderPlaced};
use kit::events::Envelope;
use kit::money::Money;
use kit::pagination::PageRequest;
use uuid::Uuid;

use crate::channel::{Channel, OutgoingMessage, SendError};
use crate::model::*;
use crate::store::AdminFilter;
use crate::{NotificationConfig, NotificationState, MIGRATIONS};

/// A channel that fails (retryable or permanent) and counts calls.
struct Failing {
    permanent: bool,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Channel for Failing {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }
    async fn send(&self, _msg: &OutgoingMessage) -> Result<(), SendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.permanent {
            Err(SendError::Permanent("550 no such user".into()))
        } else {
            Err(SendError::Retryable("connection refused".into()))
        }
    }
}

async fn state(db: kit::db::Db, cfg: NotificationConfig) -> NotificationState {
    NotificationState::new(db, cfg).await.unwrap()
}

fn placed(user: Uuid) -> Envelope {
    Envelope::new(
        sources::ORDER,
        &OrderPlaced {
            order_id: Uuid::now_v7(),
            user_id: user,
            items: vec![],
            total: Money::new(12999, "USD"),
            customer_email: None,
            customer_name: None,
        },
    )
    .unwrap()
}

async fn customer(st: &NotificationState, name: &str) -> Uuid {
    let user = Uuid::now_v7();
    st.store
        .upsert_contact(&Contact {
            user_id: user,
            email: Some(format!("{}@example.com", name.to_lowercase())),
            name: Some(name.into()),
            phone: None,
        })
        .await
        .unwrap();
    user
}

const PAGE: PageRequest = PageRequest { page: 1, page_size: 50 };

kit::db_tests! { MIGRATIONS;
    async fn idempotent_per_event_and_channel(db) {
        let st = state(db, NotificationConfig::default()).await;
        let user = customer(&st, "Ada").await;
        let ev = placed(user);
        assert!(st.handle_event(&ev).await.unwrap());
        assert!(!st.handle_event(&ev).await.unwrap(), "redelivery is a no-op");
        let rows = st.store.by_event(ev.id).await.unwrap();
        assert_eq!(rows.len(), 1);
        let n = rows[0].clone().into_api().unwrap();
        assert_eq!(n.notification_type, NotificationType::OrderConfirmation);
        assert_eq!(n.status, Status::Pending);
        assert_eq!(n.recipient, "ada@example.com");
        assert!(n.subject.contains("received"), "{}", n.subject);
        assert!(n.content.contains("$129.99"), "{}", n.content);
        assert_eq!(n.id.get_version_num(), 7);

        // Even without the inbox (a second consumer group), the unique (event, channel) holds.
        let fx = crate::store::Effects {
            notifications: vec![NewNotification {
                id: Uuid::now_v7(), event_id: ev.id, event_type: ev.ty.clone(), user_id: Some(user),
                order_id: None, recipient: "x@example.com".into(),
                notification_type: NotificationType::OrderConfirmation, channel: ChannelKind::Email,
                subject: "dup".into(), content: "dup".into(), html: None, status: Status::Pending, last_error: None,
                secret: None, secret_expires_at: None,
            }],
            ..Default::default()
        };
        assert!(st.store.apply_event("other-group", ev.id, &fx).await.unwrap());
        assert_eq!(st.store.by_event(ev.id).await.unwrap().len(), 1);
    }

    async fn claim_gives_each_row_to_one_dispatcher(db) {
        let st = state(db, NotificationConfig::default()).await;
        let user = customer(&st, "Bo").await;
        for _ in 0..6 {
            st.handle_event(&placed(user)).await.unwrap();
        }
        let now = Timestamp::now();
        let lease = Duration::from_secs(60);
        let (a, b) = tokio::join!(st.store.claim_due(now, lease, 4), st.store.claim_due(now, lease, 4));
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut ids: Vec<Uuid> = a.iter().chain(b.iter()).map(|r| r.id).collect();
        assert_eq!(ids.len(), 6, "every row claimed once: {} + {}", a.len(), b.len());
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6, "no row claimed twice");
        assert!(st.store.claim_due(now, lease, 10).await.unwrap().is_empty(), "leased rows are not due");
        // After the lease they are due again (a crashed dispatcher loses nothing).
        assert_eq!(st.store.claim_due(now + Duration::from_secs(61), lease, 10).await.unwrap().len(), 6);
    }

    async fn dispatch_sends_with_the_log_channel(db) {
        let st = state(db, NotificationConfig::default()).await;
        let user = customer(&st, "Cy").await;
        let ev = placed(user);
        st.handle_event(&ev).await.unwrap();
        assert_eq!(st.dispatch_once().await.unwrap(), 1);
        assert_eq!(st.dispatch_once().await.unwrap(), 0);
        let row = st.store.by_event(ev.id).await.unwrap().remove(0);
        assert_eq!(row.status, "SENT");
        assert!(row.sent_at.is_some());
        // `notification.sent` in the same transaction, keyed by the notification.
        let events = outbox_events(&st).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0]["type"].as_str(), events[0]["source"].as_str()), (Some("notification.sent"), Some("/shop/notification")));
        assert_eq!(events[0]["data"]["notificationId"], row.id.to_string());
        assert_eq!(events[0]["data"]["userId"], user.to_string());
        assert_eq!(events[0]["data"]["template"], row.notification_type);
        assert_eq!(events[0]["data"]["orderId"], ev.data["orderId"]);
        let log = st.log.as_ref().unwrap().sent();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].recipient, "cy@example.com");
        assert!(log[0].html.as_deref().unwrap().contains("$129.99"));
    }

    async fn retries_with_backoff_then_fails(db) {
        let cfg = NotificationConfig { max_attempts: 3, backoff_base_secs: 10, backoff_max_secs: 15, ..Default::default() };
        let failing = Arc::new(Failing { permanent: false, calls: AtomicUsize::new(0) });
        let st = state(db, cfg).await.with_channel(ChannelKind::Email, failing.clone());
        let user = customer(&st, "Di").await;
        let ev = placed(user);
        st.handle_event(&ev).await.unwrap();

        let before = Timestamp::now();
        assert_eq!(st.dispatch_once().await.unwrap(), 1);
        let row = st.store.by_event(ev.id).await.unwrap().remove(0);
        assert_eq!((row.status.as_str(), row.retry_count), ("PENDING", 1));
        assert_eq!(row.last_error.as_deref(), Some("connection refused"));
        let delay = row.next_attempt_at.0 - before.0;
        assert!(delay >= time::Duration::seconds(9) && delay <= time::Duration::seconds(11), "{delay}");
        assert_eq!(st.dispatch_once().await.unwrap(), 0, "not due before the backoff");

        // Second failure: 20 s capped at 15 s.
        let t1 = row.next_attempt_at + Duration::from_millis(1);
        let claimed = st.store.claim_due(t1, Duration::from_secs(60), 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        st.store.mark_attempt_failed(row.id, "again", Some(t1 + st.config.backoff(2))).await.unwrap();
        let row = st.store.get(row.id).await.unwrap().unwrap();
        assert_eq!(row.retry_count, 2);
        assert_eq!(row.next_attempt_at, t1 + Duration::from_secs(15));

        // Make it due now; the third attempt is the last.
        st.store.mark_attempt_failed(row.id, "x", Some(Timestamp::now() - Duration::from_secs(1))).await.unwrap();
        let row = st.store.get(row.id).await.unwrap().unwrap();
        assert_eq!(row.retry_count, 3);
        // retry_count is 3 = max_attempts: the next failure is final.
        assert_eq!(st.dispatch_once().await.unwrap(), 1);
        let row = st.store.get(row.id).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.retry_count), ("FAILED", 4));
        assert_eq!(st.store.count_by_status(Status::Pending).await.unwrap(), 0);
        // Given up: `notification.failed` in the outbox (once; retries published nothing).
        let events = outbox_events(&st).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], "notification.failed");
        assert_eq!(events[0]["data"]["notificationId"], row.id.to_string());
        assert_eq!((events[0]["data"]["attempts"].as_i64(), events[0]["data"]["channel"].as_str()), (Some(4), Some("EMAIL")));
    }

    async fn permanent_errors_fail_at_once(db) {
        let failing = Arc::new(Failing { permanent: true, calls: AtomicUsize::new(0) });
        let st = state(db, NotificationConfig::default()).await.with_channel(ChannelKind::Email, failing.clone());
        let user = customer(&st, "Ed").await;
        let ev = placed(user);
        st.handle_event(&ev).await.unwrap();
        st.dispatch_once().await.unwrap();
        let row = st.store.by_event(ev.id).await.unwrap().remove(0);
        assert_eq!((row.status.as_str(), row.retry_count), ("FAILED", 1));
        assert_eq!(failing.calls.load(Ordering::SeqCst), 1);
    }

    async fn unknown_address_is_recorded_as_failed(db) {
        let st = state(db, NotificationConfig::default()).await;
        let ev = placed(Uuid::now_v7());
        st.handle_event(&ev).await.unwrap();
        let row = st.store.by_event(ev.id).await.unwrap().remove(0);
        assert_eq!(row.status, "FAILED");
        assert!(row.last_error.unwrap().contains("no email address"));
    }

    async fn admin_alerts_and_filters(db) {
        let cfg = NotificationConfig {
            admin_emails: vec!["ops@example.com".into(), "boss@example.com".into()],
            ..Default::default()
        };
        let st = state(db, cfg).await;
        let user = customer(&st, "Fe").await;
        st.handle_event(&placed(user)).await.unwrap();
        st.handle_event(&placed(user)).await.unwrap();
        let low = Envelope::new(
            sources::INVENTORY,
            &InventoryLowStock { product_id: Uuid::now_v7(), available: 2, threshold: 5 },
        )
        .unwrap();
        st.handle_event(&low).await.unwrap();
        st.handle_event(&placed(Uuid::now_v7())).await.unwrap(); // FAILED: no address

        let alert = st.store.by_event(low.id).await.unwrap().remove(0);
        assert_eq!(alert.user_id, None);
        assert_eq!(alert.recipient, "ops@example.com, boss@example.com");
        assert!(alert.subject.contains("Low stock"), "{}", alert.subject);

        let all = |f: AdminFilter| {
            let st = st.clone();
            async move { st.store.list_all(&f, PAGE).await.unwrap() }
        };
        assert_eq!(all(AdminFilter::default()).await.1, 4);
        let (rows, total) = all(AdminFilter { status: Some(Status::Failed), ..Default::default() }).await;
        assert_eq!((rows.len(), total), (1, 1));
        let (_, total) = all(AdminFilter { notification_type: Some(NotificationType::LowStockAlert), ..Default::default() }).await;
        assert_eq!(total, 1);
        let (_, total) = all(AdminFilter {
            status: Some(Status::Pending),
            notification_type: Some(NotificationType::OrderConfirmation),
            channel: Some(ChannelKind::Email),
        })
        .await;
        assert_eq!(total, 2);
        let (_, total) = all(AdminFilter { channel: Some(ChannelKind::Sms), ..Default::default() }).await;
        assert_eq!(total, 0);
        let (rows, total) = st.store.list_for_user(user, PageRequest { page: 1, page_size: 1 }).await.unwrap();
        assert_eq!((rows.len(), total), (1, 2));
    }
}

/// The events in the notification service's outbox, oldest first (as JSON envelopes).
async fn outbox_events(st: &crate::NotificationState) -> Vec<serde_json::Value> {
    let rows: Vec<String> =
        kit::with_db!(st.store.db(), pool => sqlx::query_scalar("SELECT envelope FROM outbox ORDER BY seq")
        .fetch_all(pool).await)
        .unwrap();
    rows.iter().map(|r| serde_json::from_str(r).unwrap()).collect()
}
