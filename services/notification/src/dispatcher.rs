//! The dispatcher: sends due PENDING rows, retries with exponential backoff, marks FAILED
//! after `max_attempts`. Wakes on new rows (a `Notify`) and on a slow poll.

use std::time::Duration;

use kit::db::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::channel::{OutgoingMessage, SendError};
use crate::model::{NotificationRow, NotificationType, SECRET_PLACEHOLDER};
use crate::NotificationState;

/// Starts the dispatcher; it stops when `shutdown` is cancelled (after the row in flight).
pub fn spawn_dispatcher(
    state: NotificationState,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let poll = Duration::from_millis(state.config.poll_interval_ms.max(10));
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let full = match state.dispatch_once().await {
                Ok(n) => n >= state.config.batch_size.max(1) as usize,
                Err(e) => {
                    tracing::error!(error = %e, "notification dispatch round failed");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = state.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    })
}

impl NotificationState {
    /// One round: claims due rows and sends them. Returns how many rows it took.
    pub async fn dispatch_once(&self) -> anyhow::Result<usize> {
        let lease = Duration::from_secs(self.config.claim_lease_secs.max(1));
        let rows =
            self.store.claim_due(Timestamp::now(), lease, self.config.batch_size.max(1) as i64).await?;
        let n = rows.len();
        for row in rows {
            self.send_row(row).await?;
        }
        Ok(n)
    }

    async fn send_row(&self, row: NotificationRow) -> anyhow::Result<()> {
        let outcome = match (row.channel_kind(), NotificationType::parse(&row.notification_type)) {
            (Some(kind), Some(ty)) => match self.channels.get(kind) {
                Some(ch) => {
                    // A security email's token goes into the message only now, on its way out.
                    let reveal = |s: &str| match &row.secret {
                        Some(secret) => s.replace(SECRET_PLACEHOLDER, secret),
                        None => s.to_string(),
                    };
                    let msg = OutgoingMessage {
                        id: row.id,
                        channel: kind,
                        notification_type: ty,
                        recipient: row.recipient.clone(),
                        subject: row.subject.clone(),
                        text: reveal(&row.content),
                        html: row.html.as_deref().map(reveal),
                    };
                    ch.send(&msg).await
                }
                None => Err(SendError::Permanent(format!("channel {kind} is not configured"))),
            },
            _ => Err(SendError::Permanent(format!(
                "unknown channel `{}` or type `{}`",
                row.channel, row.notification_type
            ))),
        };
        match outcome {
            Ok(()) => {
                self.store.mark_sent(row.id, Timestamp::now()).await?;
                metrics::counter!(kit::contract::metrics::NOTIFICATIONS_SENT.name, "channel" => row.channel.clone()).increment(1);
                tracing::info!(notification_id = %row.id, channel = %row.channel, recipient = %row.recipient, "notification sent");
            }
            Err(err) => {
                let failures = row.retry_count as u32 + 1;
                let next = (err.is_retryable() && failures < self.config.max_attempts.max(1))
                    .then(|| Timestamp::now() + self.config.backoff(failures));
                self.store.mark_attempt_failed(row.id, &err.to_string(), next).await?;
                match next {
                    Some(at) => tracing::warn!(notification_id = %row.id, error = %err, attempt = failures,
                        next_attempt_at = %at.to_sqlite_text(), "notification send failed; will retry"),
                    None => {
                        metrics::counter!(kit::contract::metrics::NOTIFICATIONS_FAILED.name, "channel" => row.channel.clone())
                            .increment(1);
                        tracing::error!(notification_id = %row.id, error = %err, attempt = failures,
                            "notification failed permanently")
                    }
                }
            }
        }
        Ok(())
    }
}
