//! Stripe through `async-stripe` (API version pinned by the crate): payment intents with
//! `capture_method=manual`, confirm with a payment method, capture, cancel, refunds, and hosted
//! Checkout Sessions (mode `payment`, the intent with manual capture). Each state-changing call
//! carries an `Idempotency-Key` (`RequestStrategy::Idempotent`).

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use ::stripe::{
    CancelPaymentIntent, CapturePaymentIntent, CheckoutSession, CheckoutSessionId, CheckoutSessionMode,
    CheckoutSessionStatus, Client, CreateCheckoutSession, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionLineItemsPriceDataProductData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionPaymentIntentDataCaptureMethod,
    CreateCheckoutSessionPaymentMethodTypes, CreatePaymentIntent, CreateRefund, Currency, ErrorType,
    Metadata, PaymentIntent, PaymentIntentCaptureMethod, PaymentIntentId, PaymentIntentStatus,
    RequestStrategy, StripeError,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::*;
use crate::config::StripeConfig;
use crate::model::ProviderKind;

/// The Stripe provider.
pub struct StripeProvider {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProvider").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// `POST /v1/payment_intents/{id}/confirm` with a payment method (async-stripe's own confirm
/// parameters lack `payment_method`).
#[derive(Serialize)]
struct ConfirmParams<'a> {
    payment_method: &'a str,
}

impl StripeProvider {
    /// A client for `config.api_base` with `config.secret_key`; fails without a key.
    pub fn new(config: &StripeConfig) -> Result<StripeProvider, String> {
        let key = config
            .secret_key
            .as_ref()
            .map(|k| k.expose_secret().trim().to_string())
            .filter(|k| !k.is_empty())
            .ok_or("payment provider `stripe` needs a secret key: set SHOP_PAYMENT__STRIPE__SECRET_KEY")?;
        url::Url::parse(&config.api_base)
            .map_err(|e| format!("SHOP_PAYMENT__STRIPE__API_BASE `{}`: {e}", config.api_base))?;
        Ok(StripeProvider {
            client: Client::from_url(config.api_base.as_str(), key),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
        })
    }

    /// Shorthand for tests and tools: a provider for `api_base` with `secret_key`.
    pub fn with_key(api_base: &str, secret_key: &str) -> Result<StripeProvider, String> {
        StripeProvider::new(&StripeConfig {
            secret_key: Some(SecretString::from(secret_key.to_string())),
            api_base: api_base.to_string(),
            ..Default::default()
        })
    }

    fn idempotent(&self, key: &str) -> Client {
        self.client.clone().with_strategy(RequestStrategy::Idempotent(key.to_string()))
    }

    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, StripeError>>,
    ) -> Result<T, ProviderError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(ProviderError::Unavailable(format!("{what}: no answer within {:?}", self.timeout))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(what, e)),
        }
    }
}

fn map_error(what: &str, e: StripeError) -> ProviderError {
    match e {
        StripeError::Stripe(e) => {
            let message = e.message.clone().unwrap_or_else(|| e.to_string());
            if e.error_type == ErrorType::Card || e.http_status == 402 {
                let code = e
                    .code
                    .map(|c| c.to_string())
                    .or(e.decline_code.clone())
                    .unwrap_or_else(|| "card_declined".into());
                ProviderError::Declined { code, message }
            } else if (400..500).contains(&e.http_status) && e.http_status != 429 {
                ProviderError::Refused(format!("{what}: {message}"))
            } else {
                ProviderError::Unavailable(format!("{what}: {} {message}", e.http_status))
            }
        }
        other => ProviderError::Unavailable(format!("{what}: {other}")),
    }
}

fn intent_id(id: &str) -> Result<PaymentIntentId, ProviderError> {
    PaymentIntentId::from_str(id)
        .map_err(|e| ProviderError::Refused(format!("`{id}` is not a payment intent id: {e}")))
}

fn session_id(id: &str) -> Result<CheckoutSessionId, ProviderError> {
    CheckoutSessionId::from_str(id)
        .map_err(|e| ProviderError::Refused(format!("`{id}` is not a checkout session id: {e}")))
}

fn currency(code: &str) -> Result<Currency, ProviderError> {
    Currency::from_str(&code.to_ascii_lowercase())
        .map_err(|_| ProviderError::Refused(format!("currency {code} is not supported")))
}

fn to_session(s: CheckoutSession) -> ProviderSession {
    ProviderSession {
        id: s.id.to_string(),
        status: match s.status {
            Some(CheckoutSessionStatus::Complete) => SessionStatus::Complete,
            Some(CheckoutSessionStatus::Expired) => SessionStatus::Expired,
            Some(CheckoutSessionStatus::Open) | None => SessionStatus::Open,
        },
        url: s.url,
        expires_at: s.expires_at,
        payment_intent: s.payment_intent.map(|pi| pi.id().to_string()),
        success_url: s.success_url,
        cancel_url: s.cancel_url,
    }
}

fn status(s: PaymentIntentStatus) -> IntentStatus {
    match s {
        PaymentIntentStatus::Canceled => IntentStatus::Canceled,
        PaymentIntentStatus::Processing => IntentStatus::Processing,
        PaymentIntentStatus::RequiresAction => IntentStatus::RequiresAction,
        PaymentIntentStatus::RequiresCapture => IntentStatus::RequiresCapture,
        PaymentIntentStatus::RequiresConfirmation => IntentStatus::RequiresConfirmation,
        PaymentIntentStatus::RequiresPaymentMethod => IntentStatus::RequiresPaymentMethod,
        PaymentIntentStatus::Succeeded => IntentStatus::Succeeded,
    }
}

fn to_intent(pi: PaymentIntent) -> Intent {
    let last_error = pi.last_payment_error.as_ref().map(|e| PaymentError {
        code: e
            .code
            .and_then(|c| serde_json::to_value(c).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .or_else(|| e.decline_code.clone())
            .unwrap_or_else(|| "payment_failed".into()),
        message: e.message.clone().unwrap_or_else(|| "the payment failed".into()),
    });
    Intent {
        id: pi.id.to_string(),
        status: status(pi.status),
        amount: pi.amount,
        amount_capturable: pi.amount_capturable,
        amount_received: pi.amount_received,
        currency: pi.currency.to_string().to_ascii_uppercase(),
        client_secret: pi.client_secret,
        next_action: pi.next_action.and_then(|a| serde_json::to_value(a).ok()),
        last_error,
        charge_id: pi.latest_charge.map(|c| c.id().to_string()),
    }
}

#[async_trait::async_trait]
impl PaymentProvider for StripeProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Stripe
    }

    async fn create_intent(&self, new: &NewIntent, idempotency_key: &str) -> Result<Intent, ProviderError> {
        let currency = self::currency(&new.amount.currency)?;
        let mut params = CreatePaymentIntent::new(new.amount.amount, currency);
        params.capture_method = Some(PaymentIntentCaptureMethod::Manual);
        params.payment_method_types = Some(vec!["card".to_string()]);
        params.metadata = Some(Metadata::from([("order_id".to_string(), new.order_id.to_string())]));
        let client = self.idempotent(idempotency_key);
        self.call("create payment intent", PaymentIntent::create(&client, params)).await.map(to_intent)
    }

    async fn confirm(
        &self,
        intent_id: &str,
        payment_method: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        let id = self::intent_id(intent_id)?;
        let client = self.idempotent(idempotency_key);
        let path = format!("/payment_intents/{id}/confirm");
        let res = self
            .call(
                "confirm payment intent",
                client.post_form::<PaymentIntent, _>(&path, ConfirmParams { payment_method }),
            )
            .await;
        match res {
            Ok(pi) => Ok(to_intent(pi)),
            Err(e @ ProviderError::Declined { .. }) => Err(e),
            Err(e) => {
                // An error body this client cannot parse (an error code it does not know) must
                // not hide a decline: the intent's own state says what happened.
                match self.retrieve(intent_id).await {
                    Ok(Intent {
                        status: IntentStatus::RequiresPaymentMethod, last_error: Some(err), ..
                    }) => Err(ProviderError::Declined { code: err.code, message: err.message }),
                    _ => Err(e),
                }
            }
        }
    }

    async fn capture(
        &self,
        intent_id: &str,
        amount: Option<i64>,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        let id = self::intent_id(intent_id)?;
        let params = CapturePaymentIntent {
            amount_to_capture: amount.map(|a| a.max(0) as u64),
            application_fee_amount: None,
        };
        let client = self.idempotent(idempotency_key);
        self.call("capture payment intent", PaymentIntent::capture(&client, id.as_str(), params))
            .await
            .map(to_intent)
    }

    async fn cancel(&self, intent_id: &str, idempotency_key: &str) -> Result<Intent, ProviderError> {
        let id = self::intent_id(intent_id)?;
        let client = self.idempotent(idempotency_key);
        self.call(
            "cancel payment intent",
            PaymentIntent::cancel(&client, id.as_str(), CancelPaymentIntent::default()),
        )
        .await
        .map(to_intent)
    }

    async fn refund(
        &self,
        refund: &NewRefund,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        let mut params = CreateRefund::new();
        params.payment_intent = Some(self::intent_id(&refund.intent_id)?);
        params.amount = Some(refund.amount);
        let mut metadata = Metadata::from([("refund_id".to_string(), refund.refund_id.to_string())]);
        if let Some(reason) = &refund.reason {
            // Stripe's `reason` is an enum; the service's free text goes into the metadata.
            metadata.insert("reason".into(), reason.chars().take(500).collect());
        }
        params.metadata = Some(metadata);
        let client = self.idempotent(idempotency_key);
        let r = self.call("create refund", ::stripe::Refund::create(&client, params)).await?;
        Ok(ProviderRefund {
            id: r.id.to_string(),
            amount: r.amount,
            status: r.status.unwrap_or_else(|| "succeeded".into()),
        })
    }

    async fn retrieve(&self, intent_id: &str) -> Result<Intent, ProviderError> {
        let id = self::intent_id(intent_id)?;
        self.call("retrieve payment intent", PaymentIntent::retrieve(&self.client, &id, &[]))
            .await
            .map(to_intent)
    }

    async fn create_checkout_session(
        &self,
        new: &NewCheckoutSession,
        idempotency_key: &str,
    ) -> Result<ProviderSession, ProviderError> {
        let currency = self::currency(&new.amount.currency)?;
        let order = new.order_id.to_string();
        let order_metadata = || Metadata::from([("order_id".to_string(), order.clone())]);
        let mut params = CreateCheckoutSession::new();
        params.mode = Some(CheckoutSessionMode::Payment);
        params.success_url = Some(&new.success_url);
        params.cancel_url = Some(&new.cancel_url);
        params.client_reference_id = Some(&order);
        params.metadata = Some(order_metadata());
        params.payment_method_types = Some(vec![CreateCheckoutSessionPaymentMethodTypes::Card]);
        params.line_items = Some(vec![CreateCheckoutSessionLineItems {
            price_data: Some(CreateCheckoutSessionLineItemsPriceData {
                currency,
                unit_amount: Some(new.amount.amount),
                product_data: Some(CreateCheckoutSessionLineItemsPriceDataProductData {
                    name: format!("Order {}", new.order_id),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            quantity: Some(1),
            ..Default::default()
        }]);
        // The intent the session creates when the customer pays: authorise only; the service
        // captures once the order is confirmed.
        params.payment_intent_data = Some(CreateCheckoutSessionPaymentIntentData {
            capture_method: Some(CreateCheckoutSessionPaymentIntentDataCaptureMethod::Manual),
            metadata: Some(order_metadata()),
            ..Default::default()
        });
        let client = self.idempotent(idempotency_key);
        let session = self
            .call("create checkout session", CheckoutSession::create(&client, params))
            .await
            .map(to_session)?;
        if session.url.is_none() {
            return Err(ProviderError::Unavailable(format!(
                "create checkout session: session {} has no hosted page URL",
                session.id
            )));
        }
        Ok(session)
    }

    async fn expire_checkout_session(
        &self,
        session_id: &str,
        idempotency_key: &str,
    ) -> Result<ProviderSession, ProviderError> {
        let id = self::session_id(session_id)?;
        let client = self.idempotent(idempotency_key);
        self.call("expire checkout session", CheckoutSession::expire(&client, &id)).await.map(to_session)
    }

    async fn retrieve_checkout_session(&self, session_id: &str) -> Result<ProviderSession, ProviderError> {
        let id = self::session_id(session_id)?;
        self.call("retrieve checkout session", CheckoutSession::retrieve(&self.client, &id, &[]))
            .await
            .map(to_session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_start_without_a_key() {
        let err = StripeProvider::new(&StripeConfig::default()).unwrap_err();
        assert!(err.contains("SHOP_PAYMENT__STRIPE__SECRET_KEY"), "{err}");
        assert!(StripeProvider::with_key("not a url", "sk_test_x").is_err());
        assert!(StripeProvider::with_key("http://127.0.0.1:1/", "sk_test_x").is_ok());
    }

    #[test]
    fn maps_stripe_errors() {
        let card = ::stripe::RequestError {
            http_status: 402,
            error_type: ErrorType::Card,
            message: Some("Your card was declined.".into()),
            code: Some(::stripe::ErrorCode::CardDeclined),
            decline_code: Some("generic_decline".into()),
            charge: None,
        };
        match map_error("confirm", StripeError::Stripe(card)) {
            ProviderError::Declined { code, message } => {
                assert_eq!(code, "card_declined");
                assert_eq!(message, "Your card was declined.");
            }
            other => panic!("{other:?}"),
        }
        let bad = ::stripe::RequestError {
            http_status: 400,
            error_type: ErrorType::InvalidRequest,
            ..Default::default()
        };
        assert!(matches!(map_error("x", StripeError::Stripe(bad)), ProviderError::Refused(_)));
        let down =
            ::stripe::RequestError { http_status: 503, error_type: ErrorType::Api, ..Default::default() };
        assert!(matches!(map_error("x", StripeError::Stripe(down)), ProviderError::Unavailable(_)));
        assert!(matches!(map_error("x", StripeError::Timeout), ProviderError::Unavailable(_)));
    }
}
