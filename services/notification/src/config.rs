//! Configuration of the notification service (`SHOP_NOTIFICATION__*`).

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (a local relay or a test server).
    None,
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    #[default]
    Starttls,
    /// Implicit TLS from the first byte (SMTPS), usually port 465.
    Tls,
}

/// The SMTP relay. Absent: email is captured by the log channel (embedded mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    #[serde(skip_serializing)]
    pub password: Option<SecretString>,
    /// The `From` mailbox, e.g. `Shop <no-reply@shop.example>`.
    pub from: String,
    /// Connect/command timeout in seconds.
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "localhost".into(),
            port: 587,
            tls: TlsMode::Starttls,
            username: None,
            password: None,
            from: "Shop <no-reply@shop.example>".into(),
            timeout_secs: 30,
        }
    }
}

/// Everything the notification service reads from its configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationConfig {
    /// SMTP relay; `None` selects the log channel (stored and logged, counted as SENT).
    pub smtp: Option<SmtpConfig>,
    /// Recipients of admin alerts (low stock).
    pub admin_emails: Vec<String>,
    /// Directory whose files replace the built-in templates of the same name.
    pub template_dir: Option<PathBuf>,
    /// Attempts per notification before it is marked FAILED.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to `backoff_max_secs`.
    pub backoff_base_secs: u64,
    pub backoff_max_secs: u64,
    /// SMS provider webhook (POST JSON); SMS is off when absent.
    pub sms_webhook_url: Option<String>,
    /// Push provider webhook (POST JSON); push is off when absent.
    pub push_webhook_url: Option<String>,
    /// Slow poll of the dispatcher, in milliseconds (it also wakes on new rows).
    pub poll_interval_ms: u64,
    /// Rows sent per dispatcher round.
    pub batch_size: u32,
    /// How long a claimed row is reserved for the dispatcher that took it (seconds). A crash
    /// mid-send makes the row due again after this lease.
    pub claim_lease_secs: u64,
    /// Shop name used in templates.
    pub shop_name: String,
    /// The storefront's address: links in security emails point at
    /// `<app_url>/reset-password#token=…` and `<app_url>/verify-email#token=…` (the token in
    /// the fragment, which browsers send to no server).
    pub app_url: String,
    /// The credential the auth service presents on `POST /internal/v1/security-mail`; the
    /// composer gives the platform's (`SHOP_INTERNAL_TOKEN`). Unset: the endpoint answers nobody.
    #[serde(skip_serializing)]
    pub internal_token: Option<SecretString>,
}

impl Default for NotificationConfig {
    fn default() -> Self {
        NotificationConfig {
            smtp: None,
            admin_emails: Vec::new(),
            template_dir: None,
            max_attempts: 8,
            backoff_base_secs: 30,
            backoff_max_secs: 3600,
            sms_webhook_url: None,
            push_webhook_url: None,
            poll_interval_ms: 5_000,
            batch_size: 50,
            claim_lease_secs: 300,
            shop_name: "ShopPlatform".into(),
            app_url: "http://localhost:3000".into(),
            internal_token: None,
        }
    }
}

impl NotificationConfig {
    /// Delay before the next attempt after `failures` failed attempts (1-based):
    /// `base · 2^(failures-1)`, capped at `backoff_max_secs`.
    pub fn backoff(&self, failures: u32) -> std::time::Duration {
        use std::time::Duration;
        kit::backoff::exponential(
            Duration::from_secs(self.backoff_base_secs),
            Duration::from_secs(self.backoff_max_secs),
            failures,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = NotificationConfig { backoff_base_secs: 10, backoff_max_secs: 100, ..Default::default() };
        let s: Vec<u64> = (1..=6).map(|n| c.backoff(n).as_secs()).collect();
        assert_eq!(s, vec![10, 20, 40, 80, 100, 100]);
    }
}
