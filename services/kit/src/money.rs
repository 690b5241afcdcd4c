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

/// The highest price of one unit, in minor units (100,000,000.00 in a two-decimal currency):
/// far above any product, and low enough that no order of at most 100 lines of 999 units can
/// overflow an amount. The catalog refuses higher prices (422).
pub const MAX_PRICE: i64 = 10_000_000_000;

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

impl std::fmt::Display for Money {
    /// For people: `$129.99`, `€0.05`, `¥500`, `10.00 CHF` ([`format`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format(self.amount, &self.currency))
    }
}

/// Money for people, the one formatter of the platform (emails, the hosted payment page, the
/// console): the currency's minor-unit exponent, its symbol when it has a well-known one
/// (`12999 USD` → `$129.99`; `500 JPY` → `¥500`), the code after the number otherwise
/// (`1000 CHF` → `10.00 CHF`).
pub fn format(amount: i64, currency: &str) -> String {
    let exp = u32::from(minor_units(currency).unwrap_or(2));
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    let number = if exp == 0 {
        abs.to_string()
    } else {
        let unit = 10u64.pow(exp);
        format!("{}.{:0width$}", abs / unit, abs % unit, width = exp as usize)
    };
    let symbol = match currency {
        "USD" => Some("$"),
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        "CAD" => Some("CA$"),
        "AUD" => Some("A$"),
        _ => None,
    };
    match symbol {
        Some(s) => format!("{sign}{s}{number}"),
        None => format!("{sign}{number} {currency}"),
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
    fn formats_for_people() {
        assert_eq!(format(12999, "USD"), "$129.99");
        assert_eq!(format(5, "EUR"), "€0.05");
        assert_eq!(format(500, "JPY"), "¥500");
        assert_eq!(format(1000, "CHF"), "10.00 CHF");
        assert_eq!(format(-250, "GBP"), "-£2.50");
        assert_eq!(Money::new(12999, "USD").to_string(), "$129.99");
    }

    #[test]
    fn validates() {
        assert!(Money::new(12999, "USD").validate().is_ok());
        assert!(Money::new(-1, "USD").validate().is_err());
        assert!(Money::new(1, "usd").validate().is_err());
        assert!(Money::new(1, "XXX").validate().is_err());
        assert_eq!(minor_units("JPY"), Some(0));
    }
}
