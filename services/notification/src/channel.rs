//! Delivery channels: SMTP email, the log channel (embedded mode), and webhook-style SMS/push.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::config::{SmtpConfig, TlsMode};
use crate::model::{ChannelKind, NotificationType};

/// One message to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingMessage {
    pub id: uuid::Uuid,
    pub channel: ChannelKind,
    #[serde(rename = "type")]
    pub notification_type: NotificationType,
    /// Email addresses (comma-separated for several), a phone number or a push target.
    pub recipient: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

impl OutgoingMessage {
    /// The recipients, split on commas.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.recipient.split(',').map(str::trim).filter(|s| !s.is_empty())
    }
}

/// Why a send failed: retry later, or never.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider is unreachable or answered a transient error (SMTP 4xx, HTTP 5xx/429).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help (invalid address, SMTP 5xx, HTTP 4xx).
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable(_))
    }
}

/// A way to deliver messages.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    async fn send(&self, msg: &OutgoingMessage) -> Result<(), SendError>;
}

/// Email over SMTP (`lettre`, rustls).
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailChannel {
    pub fn new(cfg: &SmtpConfig) -> anyhow::Result<EmailChannel> {
        let builder = match cfg.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)?,
        };
        let mut builder = builder.port(cfg.port).timeout(Some(Duration::from_secs(cfg.timeout_secs.max(1))));
        if let Some(user) = &cfg.username {
            let password = cfg.password.as_ref().map(|p| p.expose_secret().to_string()).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp.from `{}` is not a mailbox: {e}", cfg.from))?;
        Ok(EmailChannel { transport: builder.build(), from })
    }

    fn build(&self, msg: &OutgoingMessage) -> Result<Message, SendError> {
        let mut b = Message::builder().from(self.from.clone()).subject(msg.subject.clone());
        let mut any = false;
        for to in msg.recipients() {
            let mb: Mailbox =
                to.parse().map_err(|e| SendError::Permanent(format!("invalid recipient `{to}`: {e}")))?;
            b = b.to(mb);
            any = true;
        }
        if !any {
            return Err(SendError::Permanent("no recipient".into()));
        }
        let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(msg.text.clone());
        let built = match &msg.html {
            Some(html) => b.multipart(
                MultiPart::alternative()
                    .singlepart(text)
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html.clone())),
            ),
            None => b.singlepart(text),
        };
        built.map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
    }
}

#[async_trait::async_trait]
impl Channel for EmailChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<(), SendError> {
        let email = self.build(msg)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Retryable(format!("SMTP: {e}"))),
        }
    }
}

/// Embedded mode without SMTP: the message is logged and kept in memory (the notification
/// row itself is the stored copy); counted as SENT.
#[derive(Clone, Default)]
pub struct LogChannel {
    kind: Option<ChannelKind>,
    sent: Arc<Mutex<Vec<OutgoingMessage>>>,
}

/// Messages kept by a [`LogChannel`] (the most recent ones).
const LOG_KEEP: usize = 1000;

impl LogChannel {
    pub fn new(kind: ChannelKind) -> LogChannel {
        LogChannel { kind: Some(kind), sent: Arc::default() }
    }

    /// What was "sent" so far (the last 1000).
    pub fn sent(&self) -> Vec<OutgoingMessage> {
        self.sent.lock().expect("log channel lock").clone()
    }
}

#[async_trait::async_trait]
impl Channel for LogChannel {
    fn kind(&self) -> ChannelKind {
        self.kind.unwrap_or(ChannelKind::Email)
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<(), SendError> {
        tracing::info!(
            notification_id = %msg.id, channel = %msg.channel, r#type = %msg.notification_type,
            recipient = %msg.recipient, subject = %msg.subject,
            "notification captured by the log channel (no provider configured)"
        );
        let mut sent = self.sent.lock().expect("log channel lock");
        if sent.len() >= LOG_KEEP {
            sent.remove(0);
        }
        sent.push(msg.clone());
        Ok(())
    }
}

/// SMS or push through a provider webhook: `POST <url>` with the JSON of [`OutgoingMessage`]
/// (`id`, `channel`, `type`, `recipient`, `subject`, `text`). 2xx = sent; 408/429/5xx and
/// connection errors are retried; other 4xx are permanent.
pub struct WebhookChannel {
    kind: ChannelKind,
    url: String,
    client: reqwest::Client,
}

impl WebhookChannel {
    pub fn new(kind: ChannelKind, url: impl Into<String>) -> anyhow::Result<WebhookChannel> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
        Ok(WebhookChannel { kind, url: url.into(), client })
    }
}

#[async_trait::async_trait]
impl Channel for WebhookChannel {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    async fn send(&self, msg: &OutgoingMessage) -> Result<(), SendError> {
        let res = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", msg.id.to_string())
            .json(msg)
            .send()
            .await
            .map_err(|e| SendError::Retryable(format!("{} webhook: {e}", self.kind)))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let body: String = res.text().await.unwrap_or_default().chars().take(300).collect();
        let err = format!("{} webhook answered {status}: {body}", self.kind);
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(SendError::Retryable(err))
        } else {
            Err(SendError::Permanent(err))
        }
    }
}

/// The configured channels, by kind.
#[derive(Clone, Default)]
pub struct Channels {
    pub email: Option<Arc<dyn Channel>>,
    pub sms: Option<Arc<dyn Channel>>,
    pub push: Option<Arc<dyn Channel>>,
}

impl Channels {
    pub fn get(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        match kind {
            ChannelKind::Email => self.email.as_ref(),
            ChannelKind::Sms => self.sms.as_ref(),
            ChannelKind::Push => self.push.as_ref(),
        }
    }
}
