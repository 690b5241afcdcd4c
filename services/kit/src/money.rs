//! Money is an integer amount of minor units plus an ISO 4217 currency code.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// ISO 4217 currencies the platform accepts, with their minor-unit exponent.
const CURRENCIES: &[(&str, u8)] = &[
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("CAD", 2),
    ("AUD", 2),
    ("NZD", 2),
    ("SEK", 2),
    ("NOK", 2),
    ("DKK", 2),
    ("PLN", 2),
    ("CZK", 2),
    ("HUF", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("CNY", 2),
    ("INR", 2),
    ("BRL", 2),
    ("MXN", 2),
    ("SGD", 2),
    ("HKD", 2),
    ("ZAR", 2),
];

/// An amount of money: `{ "amount": 12999, "currency": "USD" }` is $129.99.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Amount in the currency's minor units (cents for USD).
    #[schema(example = 12999)]
    pub amount: i64,
    /// ISO 4217 currency code, upper case.
    #[schema(example = "USD")]
    pub currency: String,
}

impl Money {
    pub fn new(amount: i64, currency: &str) -> Self {
        Money { amount, currency: currency.to_string() }
    }

    /// Checks the currency code and that the amount is not negative.
    pub fn validate(&self) -> Result<(), String> {
        validate_currency(&self.currency)?;
        if self.amount < 0 {
            return Err("amount must not be negative".into());
        }
        Ok(())
    }
}

/// Checks that `code` is an ISO 4217 code the platform accepts.
pub fn validate_currency(code: &str) -> Result<(), String> {
    if CURRENCIES.iter().any(|(c, _)| *c == code) {
        Ok(())
    } else {
        Err(format!("`{code}` is not a supported ISO 4217 currency code"))
    }
}

/// Minor-unit exponent of a supported currency (2 for USD, 0 for JPY).
pub fn minor_units(code: &str) -> Option<u8> {
    CURRENCIES.iter().find(|(c, _)| *c == code).map(|(_, e)| *e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(Money::new(12999, "USD").validate().is_ok());
        assert!(Money::new(-1, "USD").validate().is_err());
        assert!(Money::new(1, "usd").validate().is_err());
        assert!(Money::new(1, "XXX").validate().is_err());
        assert_eq!(minor_units("JPY"), Some(0));
    }
}
