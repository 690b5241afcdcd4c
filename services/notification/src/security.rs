//! Security emails for the auth service (ADR 0016): `POST /internal/v1/security-mail`, with the
//! platform's internal credential. Reset and verification links carry a single-use token; it
//! never travels through the event bus, and here it is kept apart from the stored message (whose
//! content shows [`SECRET_PLACEHOLDER`] in its place) only until the message is sent.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use kit::db::Timestamp;
use kit::extract::Json;
use kit::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::*;
use crate::NotificationState;

/// Path of the endpoint (not in the public API document; the gateway routes no `/internal/`).
pub const PATH: &str = "/internal/v1/security-mail";

/// What a security email is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    PasswordReset,
    EmailVerification,
    AccountExists,
    PasswordChanged,
}

impl Kind {
    fn notification_type(self) -> NotificationType {
        match self {
            Kind::PasswordReset => NotificationType::PasswordReset,
            Kind::EmailVerification => NotificationType::EmailVerification,
            Kind::AccountExists => NotificationType::AccountExists,
            Kind::PasswordChanged => NotificationType::PasswordChanged,
        }
    }

    /// The storefront page a link opens, for kinds that carry a token.
    fn link_page(self) -> Option<&'static str> {
        match self {
            Kind::PasswordReset => Some("/reset-password"),
            Kind::EmailVerification => Some("/verify-email"),
            Kind::AccountExists | Kind::PasswordChanged => None,
        }
    }
}

/// The request (mirrors `shop_auth::mail::SecurityMail`; the crates link each other not).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityMailRequest {
    /// The caller's id for this message: a retried call stores nothing twice.
    pub id: Uuid,
    pub kind: Kind,
    pub user_id: Option<Uuid>,
    pub recipient: String,
    pub name: Option<String>,
    pub token: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

fn bad(detail: &str) -> ApiError {
    ApiError::validation(detail.to_string())
}

/// A plausible single address: no whitespace or control characters (no header injection), one
/// `@`, at most 254 characters.
fn plausible_address(a: &str) -> bool {
    a.chars().count() <= 254
        && a.matches('@').count() == 1
        && !a.starts_with('@')
        && !a.ends_with('@')
        && !a.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
}

/// A token as the auth service makes them: base64url, 20–128 characters (anything else could
/// not be spliced into a link safely).
fn plausible_token(t: &str) -> bool {
    (20..=128).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Stores (and wakes the dispatcher for) a security email. 202 when stored or already stored.
pub async fn security_mail(
    State(st): State<NotificationState>,
    headers: HeaderMap,
    Json(req): Json<SecurityMailRequest>,
) -> ApiResult<StatusCode> {
    kit::client::verify_internal(&headers, st.config.internal_token.as_ref())
        .unwrap_or_else(|| Err(ApiError::unauthorized("this endpoint is for the platform's services")))?;
    let n = st.security_notification(&req)?;
    if st.store.insert_one(&n).await? {
        st.wake_dispatcher();
        tracing::info!(notification_id = %n.id, r#type = %n.notification_type, "security email queued");
    }
    Ok(StatusCode::ACCEPTED)
}

impl NotificationState {
    /// Renders a security email; its token goes into `secret`, the content keeps a placeholder.
    pub fn security_notification(&self, req: &SecurityMailRequest) -> ApiResult<NewNotification> {
        let recipient = req.recipient.trim().to_string();
        if !plausible_address(&recipient) {
            return Err(bad("recipient is not a single email address"));
        }
        let page = req.kind.link_page();
        let token = match (page, &req.token) {
            (Some(_), Some(t)) if plausible_token(t) => Some(t.clone()),
            (Some(_), _) => {
                return Err(bad("this kind of email needs a token (base64url, 20–128 characters)"))
            }
            (None, Some(_)) => return Err(bad("this kind of email carries no token")),
            (None, None) => None,
        };
        let app = self.config.app_url.trim_end_matches('/');
        let link = page.map(|p| format!("{app}{p}#token={SECRET_PLACEHOLDER}"));
        let minutes = req
            .expires_at
            .map(|at| ((at - OffsetDateTime::now_utc()).whole_seconds().max(60) + 59) / 60)
            .unwrap_or(30);
        let name = req.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or("there");
        let ctx = json!({
            "shop_name": self.config.shop_name,
            "name": name,
            "link": link,
            "reset_url": format!("{app}/forgot-password"),
            "expires_in_minutes": minutes,
            "expires_in_hours": (minutes + 59) / 60,
        });
        let ty = req.kind.notification_type();
        let rendered = self.templates.render(ty, &ctx).map_err(ApiError::internal)?;
        Ok(NewNotification {
            id: Uuid::now_v7(),
            event_id: req.id,
            event_type: format!("auth.{}", ty.as_str().to_ascii_lowercase()),
            user_id: req.user_id,
            order_id: None,
            recipient,
            notification_type: ty,
            channel: ChannelKind::Email,
            subject: rendered.subject,
            content: rendered.text,
            html: Some(rendered.html),
            status: Status::Pending,
            last_error: None,
            secret: token,
            secret_expires_at: req.expires_at.map(Timestamp::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_tokens() {
        assert!(plausible_address("ada@example.com"));
        for bad in ["", "ada", "a@b@c", "ada@example.com\r\nBcc: x@y.z", "a b@c.d", "<a@b.c>", "a@b.c, d@e.f"]
        {
            assert!(!plausible_address(bad), "{bad:?}");
        }
        assert!(plausible_token("abcdefghijklmnopqrstuvwxyz-_0123456789ABCDEF"));
        assert!(!plausible_token("short"));
        assert!(!plausible_token("abcdefghijklmnopqrstuvwxyz<script>"));
    }
}
