//! `shop-notification`: the Notification Service — templated email over SMTP (plus SMS/push
//! webhooks), a notification history with retries, and admin alerts. See `docs/notifications.md`.
//!
//! [`service`] describes it to the composer (`kit::component`): a [`NotificationState`],
//! [`router`], the event handler ([`events::handlers`]) and the dispatcher
//! ([`spawn_dispatcher`]).

pub mod api;
pub mod channel;
pub mod config;
pub mod dispatcher;
pub mod events;
pub mod model;
pub mod security;
pub mod store;
pub mod templates;

#[cfg(test)]
mod store_tests;

use std::sync::Arc;

pub use api::{openapi, router};
pub use channel::{Channel, Channels, EmailChannel, LogChannel, OutgoingMessage, SendError, WebhookChannel};
pub use config::{NotificationConfig, SmtpConfig, TlsMode};
pub use dispatcher::spawn_dispatcher;
pub use events::{handler, handlers, CONSUMER_GROUP, TOPICS};
pub use store::Store;

/// The notification service's migrations for both backends.
pub static MIGRATIONS: kit::db::Migrations = kit::db::Migrations {
    postgres: sqlx::migrate!("../../migrations/postgres/notification"),
    sqlite: sqlx::migrate!("../../migrations/sqlite/notification"),
};

/// Shared state of handlers, the event handler and the dispatcher.
#[derive(Clone)]
pub struct NotificationState {
    pub store: Store,
    pub config: Arc<NotificationConfig>,
    pub templates: Arc<templates::Templates>,
    pub channels: Channels,
    /// The email log channel when no SMTP relay is configured (embedded mode).
    pub log: Option<LogChannel>,
    wake: Arc<tokio::sync::Notify>,
}

impl NotificationState {
    /// Loads the templates (defaults plus overrides from `template_dir`) and builds the
    /// channels from `config`: SMTP email or the log channel, SMS/push webhooks when set.
    pub async fn new(db: kit::db::Db, config: NotificationConfig) -> anyhow::Result<Self> {
        let templates = templates::Templates::load(config.template_dir.as_deref())?;
        let mut channels = Channels::default();
        let mut log = None;
        match &config.smtp {
            Some(smtp) => channels.email = Some(Arc::new(EmailChannel::new(smtp)?)),
            None => {
                tracing::info!("no SMTP relay configured: email is captured by the log channel");
                let l = LogChannel::new(model::ChannelKind::Email);
                channels.email = Some(Arc::new(l.clone()));
                log = Some(l);
            }
        }
        if let Some(url) = &config.sms_webhook_url {
            channels.sms = Some(Arc::new(WebhookChannel::new(model::ChannelKind::Sms, url.clone())?));
        }
        if let Some(url) = &config.push_webhook_url {
            channels.push = Some(Arc::new(WebhookChannel::new(model::ChannelKind::Push, url.clone())?));
        }
        Ok(NotificationState {
            store: Store::new(db),
            config: Arc::new(config),
            templates: Arc::new(templates),
            channels,
            log,
            wake: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Replaces a channel (tests, or a custom provider).
    pub fn with_channel(mut self, kind: model::ChannelKind, channel: Arc<dyn Channel>) -> Self {
        match kind {
            model::ChannelKind::Email => self.channels.email = Some(channel),
            model::ChannelKind::Sms => self.channels.sms = Some(channel),
            model::ChannelKind::Push => self.channels.push = Some(channel),
        }
        self
    }

    /// Wakes the dispatcher (new rows are due).
    pub fn wake_dispatcher(&self) {
        self.wake.notify_one();
    }
}

/// The notification service as the composer sees it (`kit::component`).
pub fn service(config: NotificationConfig) -> kit::component::Service {
    kit::component::Service::new(kit::contract::ServiceName::Notification, Some(&MIGRATIONS), openapi, |cx| {
        component(cx, config)
    })
}

async fn component(
    cx: kit::component::Context,
    mut config: NotificationConfig,
) -> anyhow::Result<kit::component::Component> {
    // The auth service's security emails come with the platform's internal credential.
    if cx.embedded || config.internal_token.is_none() {
        config.internal_token = cx.internal_token.clone();
    }
    let state = NotificationState::new(cx.db()?, config).await?;
    let dispatcher = spawn_dispatcher(state.clone(), cx.shutdown.clone());
    // Tokens of security emails whose link expired unsent are forgotten.
    let store = state.store.clone();
    let expiry = kit::component::every(
        "unsent security email links expired",
        std::time::Duration::from_secs(60),
        cx.shutdown.clone(),
        move || {
            let store = store.clone();
            async move { store.expire_secrets(kit::db::Timestamp::now()).await }
        },
    );
    Ok(kit::component::Component::new(router(state.clone()))
        .subscribe(handlers(state))
        .task(dispatcher)
        .task(expiry)
        .with_outbox())
}
