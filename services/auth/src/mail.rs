//! Security emails: how a reset or verification link reaches its owner (ADR 0016).
//!
//! The auth service asks the notification service over an internal call
//! (`POST /internal/v1/security-mail`, `x-internal-token`), never through an event: the token
//! then never sits in the outbox, on Kafka (for the topic's retention) or in a dead-letter
//! topic. The notification service stores the message with the token replaced by a placeholder
//! and keeps the token only until the message is sent. Sends run in the background, after the
//! answer, so whether a mail was sent (or an account exists) shows in neither the status nor the
//! timing of the request that caused it.

use std::sync::Arc;

use kit::client::{Call, ServiceClient};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Path of the notification service's endpoint.
pub const SECURITY_MAIL_PATH: &str = "/internal/v1/security-mail";

/// What a security email is about (the notification service has one template each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MailKind {
    /// A link to set a new password (carries a token).
    PasswordReset,
    /// A link that proves the address (carries a token).
    EmailVerification,
    /// Someone tried to register an address that already has an account.
    AccountExists,
    /// The password was changed or reset (no token: "if it was not you …").
    PasswordChanged,
}

/// The request body (the notification service mirrors it; the crates link each other not).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityMail {
    /// Deduplicates a retried call.
    pub id: Uuid,
    pub kind: MailKind,
    pub user_id: Option<Uuid>,
    pub recipient: String,
    pub name: Option<String>,
    /// The single-use token of a reset or verification link.
    pub token: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Display for SecurityMail {
    /// For logs: never the token, nor the address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} mail {}", self.kind, self.id)
    }
}

/// Delivers security emails.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &SecurityMail) -> Result<(), String>;
}

/// Through the notification service.
pub struct NotificationMailer(pub ServiceClient);

#[async_trait::async_trait]
impl Mailer for NotificationMailer {
    async fn send(&self, mail: &SecurityMail) -> Result<(), String> {
        // Idempotent: the notification service deduplicates by `id`.
        let reply = self
            .0
            .send(Call::post(SECURITY_MAIL_PATH, mail).idempotent())
            .await
            .map_err(|e| e.to_string())?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(format!("the notification service answered {}", reply.status))
        }
    }
}

/// No notification service (a test, or an auth service run without one): logged, not sent.
pub struct NoMailer;

#[async_trait::async_trait]
impl Mailer for NoMailer {
    async fn send(&self, mail: &SecurityMail) -> Result<(), String> {
        tracing::warn!(%mail, "no notification service configured: security email not sent");
        Ok(())
    }
}

/// Records every mail (tests).
#[derive(Default)]
pub struct MemoryMailer(pub std::sync::Mutex<Vec<SecurityMail>>);

#[async_trait::async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, mail: &SecurityMail) -> Result<(), String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(mail.clone());
        Ok(())
    }
}

/// Sends in the background; a failure is logged (the user may ask again).
pub fn send_later(mailer: &Arc<dyn Mailer>, mail: SecurityMail) {
    let mailer = mailer.clone();
    tokio::spawn(async move {
        match mailer.send(&mail).await {
            Ok(()) => tracing::debug!(%mail, "security email handed to the notification service"),
            Err(e) => {
                metrics::counter!(kit::contract::metrics::AUTH_SECURITY_MAIL_FAILURES.name).increment(1);
                tracing::error!(%mail, error = %e, "security email could not be handed over")
            }
        }
    });
}
