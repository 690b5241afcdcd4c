//! Configuration of the payment service (`SHOP_PAYMENT__*`).

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::model::ProviderKind;

/// The Stripe account (`SHOP_PAYMENT__STRIPE__*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StripeConfig {
    /// Secret API key (`sk_live_…` / `sk_test_…`). Required when `provider = "stripe"`.
    #[serde(skip_serializing)]
    pub secret_key: Option<SecretString>,
    /// Base URL of the API (a Stripe-compatible test server in tests).
    pub api_base: String,
    /// Timeout of one API call, in seconds.
    pub timeout_secs: u64,
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig { secret_key: None, api_base: "https://api.stripe.com/".into(), timeout_secs: 20 }
    }
}

/// Everything the payment service reads from its configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentConfig {
    /// `stripe` (real payments) or `simulated` (nobody is charged: development and demos).
    /// Required: there is no default outside `shop up`, which chooses `simulated`
    /// (`SHOP_PAYMENT__PROVIDER`).
    pub provider: Option<ProviderKind>,
    /// The webhook signing secret (`whsec_…`). With the simulated provider a random one is
    /// generated at start when absent; with Stripe, webhooks are refused until it is set.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<SecretString>,
    /// How old a webhook's signed timestamp may be (seconds); older deliveries are refused.
    pub webhook_tolerance_secs: u64,
    pub stripe: StripeConfig,
    /// Delay before the simulated provider delivers a webhook (milliseconds).
    pub simulated_webhook_delay_ms: u64,
    /// Origins hosted checkout may send the customer back to (`successUrl` / `cancelUrl`), see
    /// [`RedirectPolicy`]. A list, or one string of comma-separated origins (environment).
    #[serde(deserialize_with = "one_or_many")]
    pub redirect_origins: Vec<String>,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            provider: None,
            webhook_secret: None,
            webhook_tolerance_secs: 300,
            stripe: StripeConfig::default(),
            simulated_webhook_delay_ms: 50,
            redirect_origins: vec!["http://localhost".into(), "http://127.0.0.1".into()],
        }
    }
}

/// A list of strings, or one string of comma-separated values
/// (`SHOP_PAYMENT__REDIRECT_ORIGINS=https://shop.example,http://localhost`).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<String>),
        One(String),
    }
    let list = match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
    };
    Ok(list.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// Longest redirect URL accepted.
pub const MAX_REDIRECT_URL_LEN: usize = 2048;

/// Hosts whose allow-list entries without a port match every port (development servers).
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginRule {
    scheme: String,
    host: String,
    /// `None`: any port (a loopback entry written without a port).
    port: Option<u16>,
}

/// The allow-list of the URLs hosted checkout redirects to, built from
/// [`PaymentConfig::redirect_origins`]. An entry is an origin (`https://shop.example`,
/// `http://localhost:5173`): a target URL must be absolute `http`/`https` without credentials
/// and have exactly that scheme, host and port (the scheme's default port when none is written).
/// The loopback hosts `localhost`, `127.0.0.1` and `[::1]` written *without* a port match every
/// port of that scheme and host, so `http://localhost` admits any local development server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectPolicy {
    rules: Vec<OriginRule>,
}

impl RedirectPolicy {
    /// Parses the entries; an entry that is not a bare `http(s)` origin is an error.
    pub fn new(entries: &[String]) -> Result<RedirectPolicy, String> {
        let mut rules = Vec::with_capacity(entries.len());
        for entry in entries {
            let bad = |why: &str| format!("SHOP_PAYMENT__REDIRECT_ORIGINS: `{entry}` {why}");
            let url = url::Url::parse(entry).map_err(|e| bad(&format!("is not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad("must be an http or https origin"));
            }
            let host = url.host_str().ok_or_else(|| bad("has no host"))?.to_ascii_lowercase();
            if !url.username().is_empty()
                || url.password().is_some()
                || url.path() != "/"
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err(bad("must be an origin only (scheme, host and optional port)"));
            }
            // `Url::port` hides a default port; whether one was written is in the text.
            let authority = entry.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
            let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
            let host_part_end = authority.rfind(']').map(|i| i + 1).unwrap_or(0);
            let written_port = authority[host_part_end..].contains(':');
            let port = if !written_port && LOOPBACK_HOSTS.contains(&host.as_str()) {
                None
            } else {
                Some(url.port_or_known_default().ok_or_else(|| bad("has no port"))?)
            };
            rules.push(OriginRule { scheme: url.scheme().to_string(), host, port });
        }
        Ok(RedirectPolicy { rules })
    }

    /// Checks a redirect target; the error says why it is refused.
    pub fn check(&self, target: &str) -> Result<url::Url, String> {
        if target.len() > MAX_REDIRECT_URL_LEN {
            return Err(format!("must be at most {MAX_REDIRECT_URL_LEN} characters"));
        }
        let url = url::Url::parse(target).map_err(|e| format!("must be an absolute URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http or https URL".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials".into());
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default();
        let allowed = self
            .rules
            .iter()
            .any(|r| r.scheme == url.scheme() && r.host == host && (r.port.is_none() || r.port == port));
        if !allowed {
            return Err(format!(
                "origin `{}` is not allowed (SHOP_PAYMENT__REDIRECT_ORIGINS)",
                url.origin().ascii_serialization()
            ));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_documents() {
        let c: PaymentConfig =
            serde_json::from_value(serde_json::json!({"provider": "stripe", "stripe": {"secret_key": null}}))
                .unwrap();
        assert_eq!(c.provider, Some(ProviderKind::Stripe));
        assert_eq!(PaymentConfig::default().provider, None, "no provider unless chosen");
        assert_eq!(c.webhook_tolerance_secs, 300);
        assert_eq!(c.stripe.api_base, "https://api.stripe.com/");
        let json = serde_json::to_string(&PaymentConfig {
            webhook_secret: Some("whsec_hidden".to_string().into()),
            ..Default::default()
        })
        .unwrap();
        assert!(!json.contains("whsec_hidden"), "{json}");
        assert_eq!(c.redirect_origins, ["http://localhost", "http://127.0.0.1"]);
        // The environment gives one string: comma-separated origins.
        let c: PaymentConfig = serde_json::from_value(
            serde_json::json!({"redirect_origins": " https://shop.example, http://localhost:8080 ,"}),
        )
        .unwrap();
        assert_eq!(c.redirect_origins, ["https://shop.example", "http://localhost:8080"]);
        let c: PaymentConfig =
            serde_json::from_value(serde_json::json!({"redirect_origins": ["https://a.example"]})).unwrap();
        assert_eq!(c.redirect_origins, ["https://a.example"]);
    }

    /// Through the platform's configuration layering (`kit::config`): the environment variable
    /// as a comma-separated string and as a TOML-style array. Only this test sets the variable.
    #[test]
    fn redirect_origins_from_the_environment() {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Settings {
            payment: PaymentConfig,
        }
        const VAR: &str = "SHOP_PAYMENT__REDIRECT_ORIGINS";
        std::env::set_var(VAR, "https://shop.example, http://localhost:5173");
        let comma = kit::config::load::<Settings>().map(|s| s.payment.redirect_origins);
        std::env::set_var(VAR, r#"["https://shop.example"]"#);
        let array = kit::config::load::<Settings>().map(|s| s.payment.redirect_origins);
        std::env::remove_var(VAR);
        assert_eq!(comma.unwrap(), ["https://shop.example", "http://localhost:5173"]);
        assert_eq!(array.unwrap(), ["https://shop.example"]);
        let default = kit::config::load::<Settings>().unwrap().payment.redirect_origins;
        assert_eq!(default, ["http://localhost", "http://127.0.0.1"]);
    }

    #[test]
    fn redirect_allow_list() {
        let p = RedirectPolicy::new(&PaymentConfig::default().redirect_origins).unwrap();
        for ok in [
            "http://localhost/done",
            "http://localhost:3000/checkout/success?x=1#top",
            "http://127.0.0.1:9/",
            "http://LOCALHOST:5173/",
        ] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://localhost/", // another scheme
            "http://localhost.evil.example/",
            "http://evil.example/?http://localhost",
            "http://user:pw@localhost/",
            "/relative/path",
            "javascript:alert(1)",
            "ftp://localhost/",
            "",
        ] {
            assert!(p.check(bad).is_err(), "{bad}");
        }
        assert!(p.check(&format!("http://localhost/{}", "a".repeat(MAX_REDIRECT_URL_LEN))).is_err());

        // Configured origins are exact: scheme, host and port (default port when none is written).
        let p = RedirectPolicy::new(&[
            "https://shop.example".to_string(),
            "http://localhost:8080".to_string(),
            "http://[::1]".to_string(),
        ])
        .unwrap();
        assert!(p.check("https://shop.example/thanks").is_ok());
        assert!(p.check("https://shop.example:443/thanks").is_ok());
        assert!(p.check("https://shop.example:8443/thanks").is_err());
        assert!(p.check("http://shop.example/thanks").is_err());
        assert!(p.check("http://localhost:8080/").is_ok());
        assert!(p.check("http://localhost:8081/").is_err());
        assert!(p.check("http://[::1]:4000/").is_ok());
        assert!(p.check("http://localhost/").is_err(), "the default list was replaced");

        for bad in ["shop.example", "ftp://x.example", "https://x.example/path", "https://u@x.example"] {
            assert!(RedirectPolicy::new(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
