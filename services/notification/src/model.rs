//! Notification records and their API representation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use kit::db::Timestamp;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $s:literal),* $(,)? }) => {
        // `rename_all` gives the schema the same names as the variants' `rename` (which the
        // schema derive does not read through the macro).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        $(#[$m])*
        pub enum $name { $(#[serde(rename = $s)] $var),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$var => $s),* }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$var),)* _ => None }
            }
            /// The accepted values, for error messages.
            pub fn names() -> String {
                [$($s),*].join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// What a notification is about (one template each).
    NotificationType {
        OrderConfirmation = "ORDER_CONFIRMATION",
        PaymentConfirmation = "PAYMENT_CONFIRMATION",
        ShippingUpdate = "SHIPPING_UPDATE",
        DeliveryConfirmation = "DELIVERY_CONFIRMATION",
        OrderCancelled = "ORDER_CANCELLED",
        RefundIssued = "REFUND_ISSUED",
        PaymentFailed = "PAYMENT_FAILED",
        LowStockAlert = "LOW_STOCK_ALERT",
        PasswordReset = "PASSWORD_RESET",
        EmailVerification = "EMAIL_VERIFICATION",
        AccountExists = "ACCOUNT_EXISTS",
        PasswordChanged = "PASSWORD_CHANGED",
    }
);

/// What stands in the stored message where a security email's token goes: the token itself is
/// kept apart (`notifications.secret`) only until the message is sent (ADR 0016), and neither
/// the history API nor a database dump shows it.
pub const SECRET_PLACEHOLDER: &str = "[redacted]";

string_enum!(
    /// Delivery channel.
    ChannelKind { Email = "EMAIL", Sms = "SMS", Push = "PUSH" }
);

string_enum!(
    /// PENDING → SENT, or → FAILED after the last attempt (or a permanent error).
    #[schema(as = NotificationStatus)]
    Status { Pending = "PENDING", Sent = "SENT", Failed = "FAILED" }
);

impl NotificationType {
    /// Base name of the template files: `<name>.subject.txt`, `<name>.txt`, `<name>.html`.
    pub fn template_name(&self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

/// A notification as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: Uuid,
    /// The customer it was sent to; absent for admin alerts.
    pub user_id: Option<Uuid>,
    /// Email address(es), phone number or push target.
    pub recipient: String,
    #[serde(rename = "type")]
    pub notification_type: NotificationType,
    pub channel: ChannelKind,
    pub subject: String,
    /// Plain-text content.
    pub content: String,
    /// HTML alternative (email only).
    pub html: Option<String>,
    pub status: Status,
    /// Failed attempts so far.
    #[schema(minimum = 0)]
    pub retry_count: i64,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<Timestamp>,
    /// The event that caused it.
    pub event_id: Uuid,
    pub event_type: String,
    pub order_id: Option<Uuid>,
}

/// A database row of `notifications`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub user_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub recipient: String,
    pub notification_type: String,
    pub channel: String,
    pub subject: String,
    pub content: String,
    pub html: Option<String>,
    pub status: String,
    pub retry_count: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    /// The token of a security email until it is sent (never returned by the API).
    pub secret: Option<String>,
    pub secret_expires_at: Option<Timestamp>,
}

impl NotificationRow {
    pub fn channel_kind(&self) -> Option<ChannelKind> {
        ChannelKind::parse(&self.channel)
    }

    pub fn into_api(self) -> Result<Notification, String> {
        Ok(Notification {
            notification_type: NotificationType::parse(&self.notification_type)
                .ok_or_else(|| format!("unknown notification type {}", self.notification_type))?,
            channel: ChannelKind::parse(&self.channel)
                .ok_or_else(|| format!("unknown channel {}", self.channel))?,
            status: Status::parse(&self.status).ok_or_else(|| format!("unknown status {}", self.status))?,
            id: self.id,
            user_id: self.user_id,
            recipient: self.recipient,
            subject: self.subject,
            content: self.content,
            html: self.html,
            retry_count: self.retry_count,
            last_error: self.last_error,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            sent_at: self.sent_at,
            event_id: self.event_id,
            event_type: self.event_type,
            order_id: self.order_id,
        })
    }
}

/// A notification to insert (PENDING, or FAILED when it cannot be addressed).
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub user_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub recipient: String,
    pub notification_type: NotificationType,
    pub channel: ChannelKind,
    pub subject: String,
    pub content: String,
    pub html: Option<String>,
    pub status: Status,
    pub last_error: Option<String>,
    /// A security email's token (its place in the content is [`SECRET_PLACEHOLDER`]).
    pub secret: Option<String>,
    pub secret_expires_at: Option<Timestamp>,
}

/// Where to reach a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Contact {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// Carrier and tracking of a shipment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Shipment {
    pub shipment_id: Uuid,
    pub order_id: Uuid,
    pub carrier: String,
    pub tracking_number: String,
}
