//! The cart's API types.

use kit::money::Money;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A cart as the API shows it: stored lines refreshed from the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cart {
    /// `user` (signed in) or `guest`.
    #[schema(value_type = CartOwner)]
    pub owner: String,
    /// The guest cart token (guests only): send it back in `X-Cart-Token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$")]
    pub cart_token: Option<String>,
    /// Lines, oldest first.
    pub items: Vec<CartLine>,
    /// Number of lines.
    pub line_count: usize,
    /// Sum of the quantities of all lines.
    pub item_count: i64,
    /// Subtotal per currency over the available lines, by currency code.
    pub subtotals: Vec<Money>,
    /// True when the catalog could not be asked: prices and availability are the stored
    /// snapshot's, not the catalog's current ones.
    pub stale: bool,
    /// When the cart expires unless changed again (absent for an empty cart).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub limits: CartLimits,
}

/// The cart's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartLimits {
    pub max_quantity_per_line: i64,
    pub max_lines: usize,
}

/// One cart line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartLine {
    pub product_id: Uuid,
    pub name: String,
    pub sku: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub quantity: i64,
    /// The current unit price (the stored one when `stale` or when the catalog has none).
    pub unit_price: Money,
    /// `unitPrice × quantity`.
    pub line_total: Money,
    /// False when the product can no longer be bought; see `reason`.
    pub available: bool,
    /// Why the line is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LineReason>)]
    pub reason: Option<String>,
    /// True when the catalog's price differs from the price when the line was added.
    pub price_changed: bool,
    /// The unit price when the line was added (only when `priceChanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_price: Option<Money>,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

/// Whose cart it is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CartOwner {
    /// A signed-in user's.
    User,
    /// A guest's, named by its token.
    Guest,
}

/// Why a cart line cannot be bought.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineReason {
    Inactive,
    Deleted,
    NotFound,
}

/// Body of `POST /api/v1/cart/items`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddItem {
    pub product_id: Uuid,
    /// Added to the line's quantity: 1 to the per-line maximum (`limits.maxQuantityPerLine`, 99
    /// unless the shop configures another); the sum is capped at it.
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: i64,
}

/// Body of `PUT /api/v1/cart/items/{productId}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetQuantity {
    /// The new quantity: 1 to the per-line maximum (99 unless configured otherwise); remove a
    /// line with `DELETE`.
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: i64,
}

/// Body of `POST /api/v1/cart/merge`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MergeRequest {
    /// The guest cart token to merge into the caller's cart (as `X-Cart-Token` carries it: 43
    /// base64url characters, 32 bytes).
    #[schema(pattern = "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$")]
    pub cart_token: String,
}
