//! Configuration of the order service: shipping methods and rates (data, not code), the tax
//! calculator, and the saga's timings.

use kit::money::Money;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::Address;

/// One price band of a shipping method: subtotals below `up_to` (minor units) pay `price`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateBand {
    pub up_to: i64,
    pub price: i64,
}

/// A shipping method and its rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShippingMethod {
    /// What clients send as `shippingMethod`, e.g. `standard`.
    pub code: String,
    pub name: String,
    pub carrier: String,
    /// The flat rate, in the currency's minor units.
    pub price: Money,
    /// Prices by order subtotal, checked in order: the first band whose `upTo` exceeds the
    /// subtotal gives the price; above every band, `price` applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<RateBand>,
    /// Orders whose subtotal reaches this amount (same currency) ship free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_over: Option<i64>,
    /// ISO 3166-1 alpha-2 countries served; empty = everywhere.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Estimated days in transit, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_days: Option<String>,
}

impl ShippingMethod {
    /// Whether the method delivers to `address`.
    pub fn serves(&self, address: &Address) -> bool {
        self.countries.is_empty() || self.countries.iter().any(|c| c.eq_ignore_ascii_case(&address.country))
    }

    /// The shipping cost of an order with `subtotal`; `None` when the method's rate is in
    /// another currency.
    pub fn cost(&self, subtotal: &Money) -> Option<Money> {
        if self.price.currency != subtotal.currency {
            return None;
        }
        let free = self.free_over.is_some_and(|t| subtotal.amount >= t);
        let banded = self.bands.iter().find(|b| subtotal.amount < b.up_to).map(|b| b.price);
        Some(Money::new(if free { 0 } else { banded.unwrap_or(self.price.amount) }, &subtotal.currency))
    }
}

/// The default table: standard (free over $50), express, overnight (US only).
pub fn default_shipping_methods() -> Vec<ShippingMethod> {
    let m = |code: &str,
             name: &str,
             carrier: &str,
             price: i64,
             free_over: Option<i64>,
             countries: &[&str],
             days: &str| {
        ShippingMethod {
            code: code.into(),
            name: name.into(),
            carrier: carrier.into(),
            price: Money::new(price, "USD"),
            bands: Vec::new(),
            free_over,
            countries: countries.iter().map(|c| c.to_string()).collect(),
            estimated_days: Some(days.into()),
        }
    };
    let mut economy = m("economy", "Economy", "USPS", 899, Some(5000), &["US"], "5-8");
    // Small orders ship cheaper.
    economy.bands = vec![RateBand { up_to: 1000, price: 399 }, RateBand { up_to: 2500, price: 599 }];
    vec![
        m("standard", "Standard", "UPS", 599, Some(5000), &[], "3-5"),
        economy,
        m("express", "Express", "FedEx", 1499, None, &[], "1-2"),
        m("overnight", "Overnight", "FedEx", 2999, None, &["US"], "1"),
    ]
}

/// How tax is computed. The default charges none; `flat` applies one rate (in basis points)
/// to the subtotal plus shipping. A deployment with real tax rules plugs in its own
/// [`TaxCalculator`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TaxConfig {
    #[default]
    None,
    Flat {
        /// 825 = 8.25 %.
        rate_bps: u32,
    },
}

/// Computes an order's tax (minor units of the order's currency).
pub trait TaxCalculator: Send + Sync {
    fn tax(&self, subtotal: &Money, shipping: &Money, address: &Address) -> i64;
}

/// No tax.
pub struct ZeroTax;

impl TaxCalculator for ZeroTax {
    fn tax(&self, _: &Money, _: &Money, _: &Address) -> i64 {
        0
    }
}

/// One rate on subtotal + shipping, rounded half up.
pub struct FlatTax(pub u32);

impl TaxCalculator for FlatTax {
    fn tax(&self, subtotal: &Money, shipping: &Money, _: &Address) -> i64 {
        // In i128: no overflow; a tax an amount cannot hold saturates, and the checked total
        // refuses the order.
        let base = i128::from(subtotal.amount) + i128::from(shipping.amount);
        i64::try_from((base * i128::from(self.0) + 5_000) / 10_000).unwrap_or(i64::MAX)
    }
}

impl TaxConfig {
    pub fn calculator(&self) -> Box<dyn TaxCalculator> {
        match self {
            TaxConfig::None => Box::new(ZeroTax),
            TaxConfig::Flat { rate_bps } => Box::new(FlatTax(*rate_bps)),
        }
    }
}

/// Configuration of the order service (`[order]` / `SHOP_ORDER__*`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderConfig {
    pub shipping_methods: Vec<ShippingMethod>,
    pub tax: TaxConfig,
    /// How often the saga worker resumes stalled orders and cancels unpaid ones (default 5 s).
    pub saga_interval_secs: u64,
    /// A `PENDING` order untouched this long is resumed by the worker (default 10 s).
    pub resume_after_secs: u64,
    /// The credential other services send in `x-internal-token` (and this one sends to the
    /// inventory). Unset: only bearer tokens are accepted.
    #[serde(skip_serializing)]
    pub internal_token: Option<SecretString>,
    /// Orders one customer may have unpaid (`PENDING` or `AWAITING_PAYMENT`) at once; the next
    /// is refused with 409 `unpaid_order_limit` (default 3; 0: no limit).
    pub max_unpaid_orders_per_user: u32,
    /// Units one customer's unpaid orders may reserve together; an order past it is refused
    /// with 409 `unpaid_unit_limit` (default 500; 0: no limit).
    pub max_unpaid_units_per_user: i64,
}

impl OrderConfig {
    /// The store's limits from [`OrderConfig::max_unpaid_orders_per_user`] and
    /// [`OrderConfig::max_unpaid_units_per_user`] (0 is none).
    pub fn unpaid_limits(&self) -> crate::store::UnpaidLimits {
        crate::store::UnpaidLimits {
            orders: Some(self.max_unpaid_orders_per_user).filter(|n| *n > 0),
            units: Some(self.max_unpaid_units_per_user).filter(|n| *n > 0),
        }
    }
}

impl Default for OrderConfig {
    fn default() -> Self {
        OrderConfig {
            shipping_methods: default_shipping_methods(),
            tax: TaxConfig::None,
            saga_interval_secs: 5,
            resume_after_secs: 10,
            internal_token: None,
            max_unpaid_orders_per_user: 3,
            max_unpaid_units_per_user: 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(country: &str) -> Address {
        Address {
            name: "A".into(),
            line1: "1".into(),
            line2: None,
            city: "C".into(),
            state: None,
            postal_code: "1".into(),
            country: country.into(),
            phone: None,
        }
    }

    #[test]
    fn rates_thresholds_and_countries() {
        let methods = default_shipping_methods();
        let standard = &methods[0];
        assert_eq!(standard.cost(&Money::new(4999, "USD")), Some(Money::new(599, "USD")));
        assert_eq!(standard.cost(&Money::new(5000, "USD")), Some(Money::new(0, "USD")));
        assert_eq!(standard.cost(&Money::new(5000, "EUR")), None);
        let overnight = &methods[3];
        let economy = &methods[1];
        assert_eq!(economy.cost(&Money::new(999, "USD")), Some(Money::new(399, "USD")));
        assert_eq!(economy.cost(&Money::new(1000, "USD")), Some(Money::new(599, "USD")));
        assert_eq!(economy.cost(&Money::new(4999, "USD")), Some(Money::new(899, "USD")));
        assert_eq!(economy.cost(&Money::new(5000, "USD")), Some(Money::new(0, "USD")));
        assert!(overnight.serves(&address("US")) && !overnight.serves(&address("GB")));
        assert!(standard.serves(&address("GB")));
    }

    #[test]
    fn flat_tax_rounds_half_up() {
        let t = FlatTax(825);
        assert_eq!(t.tax(&Money::new(1000, "USD"), &Money::new(0, "USD"), &address("US")), 83);
        assert_eq!(ZeroTax.tax(&Money::new(1000, "USD"), &Money::new(0, "USD"), &address("US")), 0);
        // No overflow at the largest amounts: the tax saturates, the checked total refuses.
        let max = Money::new(i64::MAX, "USD");
        assert_eq!(FlatTax(10_000).tax(&max, &max, &address("US")), i64::MAX);
        assert_eq!(FlatTax(0).tax(&max, &max, &address("US")), 0);
    }
}
