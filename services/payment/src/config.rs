//! Configuration of the payment service (`SHOP_PAYMENT__*`).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

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
    /// `simulated` (embedded default) or `stripe`.
    pub provider: ProviderKind,
    /// The webhook signing secret (`whsec_…`). With the simulated provider a random one is
    /// generated at start when absent; with Stripe, webhooks are refused until it is set.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<SecretString>,
    /// How old a webhook's signed timestamp may be (seconds); older deliveries are refused.
    pub webhook_tolerance_secs: u64,
    pub stripe: StripeConfig,
    /// Delay before the simulated provider delivers a webhook (milliseconds).
    pub simulated_webhook_delay_ms: u64,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            provider: ProviderKind::Simulated,
            webhook_secret: None,
            webhook_tolerance_secs: 300,
            stripe: StripeConfig::default(),
            simulated_webhook_delay_ms: 50,
        }
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
        assert_eq!(c.provider, ProviderKind::Stripe);
        assert_eq!(c.webhook_tolerance_secs, 300);
        assert_eq!(c.stripe.api_base, "https://api.stripe.com/");
        let json = serde_json::to_string(&PaymentConfig {
            webhook_secret: Some("whsec_hidden".to_string().into()),
            ..Default::default()
        })
        .unwrap();
        assert!(!json.contains("whsec_hidden"), "{json}");
    }
}
