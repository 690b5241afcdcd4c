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
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Amount in the currency's minor units (cents for USD); never negative.
    #[schema(example = 12999, minimum = 0, maximum = 9223372036854775807_i64)]
    pub amount: i64,
    #[schema(schema_with = currency_schema, example = "USD")]
    pub currency: String,
}

/// The codes [`validate_currency`] accepts, in the table's order.
pub fn currency_codes() -> impl Iterator<Item = &'static str> {
    CURRENCIES.iter().map(|(c, _)| *c)
}

/// The schema of a currency code: an enum of the supported ISO 4217 codes.
pub fn currency_schema() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(currency_codes()))
        .description(Some("ISO 4217 currency code, upper case (the currencies the platform supports)."))
        .build()
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
