//! The inventory's API types (JSON, camelCase) and their validation.

use kit::openapi::strings;
use kit::problem::FieldError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, SchemaType, Type};
use utoipa::openapi::{Object, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

/// Most lines accepted in one reservation.
pub const MAX_RESERVATION_ITEMS: usize = 100;
/// Largest quantity of one line or one adjustment.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Longest SKU, in characters.
pub const MAX_SKU_LEN: usize = 64;
/// Longest reference or reason, in characters.
pub const MAX_NOTE_LEN: usize = 500;

fn sku_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    strings::text(MAX_SKU_LEN, "1 to 64 characters, not only whitespace, no control characters.")
}

fn sku_patch_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    strings::string(
        strings::TEXT,
        1,
        MAX_SKU_LEN,
        true,
        "1 to 64 characters, not only whitespace, no control characters; absent or null keeps it.",
    )
}

fn note_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    strings::string("", 0, MAX_NOTE_LEN, true, "At most 500 characters.")
}

fn fe(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// The stock of one product (admin view). `availableQuantity + reservedQuantity ==
/// totalQuantity` always holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stock {
    pub product_id: Uuid,
    pub sku: String,
    /// Units that can be reserved now.
    pub available_quantity: i64,
    /// Units held by active reservations.
    pub reserved_quantity: i64,
    /// Units in the warehouse (available + reserved).
    pub total_quantity: i64,
    /// `inventory.low_stock` is emitted when available falls to or below this level.
    pub reorder_level: i64,
    /// Suggested quantity of a re-order.
    pub reorder_quantity: i64,
    /// `availableQuantity <= reorderLevel`.
    pub low_stock: bool,
    pub in_stock: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What anyone may see of a product's stock (exactly these fields: an admin gets a [`Stock`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Availability {
    pub product_id: Uuid,
    pub available_quantity: i64,
    pub in_stock: bool,
}

impl From<&Stock> for Availability {
    fn from(s: &Stock) -> Self {
        Availability {
            product_id: s.product_id,
            available_quantity: s.available_quantity,
            in_stock: s.in_stock,
        }
    }
}

/// `GET /api/v1/inventory/{productId}`: the full row for admins, availability for others. The
/// two never both match: `Availability` admits no other fields, and `Stock` requires fields
/// `Availability` lacks.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StockView {
    Full(Stock),
    Public(Availability),
}

/// `POST /api/v1/inventory`: a stock row for a product.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewStock {
    pub product_id: Uuid,
    #[schema(schema_with = sku_schema)]
    pub sku: String,
    /// Units on hand (all available), 0 to 1,000,000, default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000, default = 0)]
    pub quantity: i64,
    /// 0 to 1,000,000, default 10.
    #[serde(default = "default_reorder_level")]
    #[schema(minimum = 0, maximum = 1_000_000, default = 10)]
    pub reorder_level: i64,
    /// 0 to 1,000,000, default 50.
    #[serde(default = "default_reorder_quantity")]
    #[schema(minimum = 0, maximum = 1_000_000, default = 50)]
    pub reorder_quantity: i64,
}

pub fn default_reorder_level() -> i64 {
    10
}
pub fn default_reorder_quantity() -> i64 {
    50
}

/// A SKU as sent: 1 to 64 characters, not only whitespace, no control characters
/// ([`strings::TEXT`]).
fn check_sku(sku: &str, errors: &mut Vec<FieldError>) {
    if sku.trim().is_empty() || sku.chars().count() > MAX_SKU_LEN || sku.chars().any(char::is_control) {
        errors.push(fe("sku", "must be 1 to 64 printable characters"));
    }
}

fn check_non_negative(field: &str, v: i64, errors: &mut Vec<FieldError>) {
    if !(0..=MAX_QUANTITY).contains(&v) {
        errors.push(fe(field, format!("must be between 0 and {MAX_QUANTITY}")));
    }
}

impl NewStock {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_sku(&self.sku, &mut errors);
        check_non_negative("quantity", self.quantity, &mut errors);
        check_non_negative("reorderLevel", self.reorder_level, &mut errors);
        check_non_negative("reorderQuantity", self.reorder_quantity, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// `PUT /api/v1/inventory/{productId}`: settings (quantities change only through adjustments
/// and reservations). Absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StockSettings {
    #[schema(schema_with = sku_patch_schema)]
    pub sku: Option<String>,
    /// 0 to 1,000,000.
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub reorder_level: Option<i64>,
    /// 0 to 1,000,000.
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub reorder_quantity: Option<i64>,
}

impl StockSettings {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(s) = &self.sku {
            check_sku(s, &mut errors);
        }
        if let Some(v) = self.reorder_level {
            check_non_negative("reorderLevel", v, &mut errors);
        }
        if let Some(v) = self.reorder_quantity {
            check_non_negative("reorderQuantity", v, &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Kinds of stock movement recorded in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionType {
    /// Goods received (adjustment, +).
    Purchase,
    /// Sold outside the reservation flow (adjustment, −).
    Sale,
    /// Goods returned by a customer (adjustment, +).
    Return,
    /// Written off (adjustment, −).
    Damage,
    /// Stock-take correction (adjustment, ±).
    Adjustment,
    /// Units moved from available to reserved.
    Reservation,
    /// Reserved units moved back to available (cancel / payment failure).
    Release,
    /// Reserved units left the warehouse (payment succeeded).
    Commit,
    /// Reserved units moved back to available because the reservation expired.
    Expiry,
}

impl TransactionType {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionType::Purchase => "PURCHASE",
            TransactionType::Sale => "SALE",
            TransactionType::Return => "RETURN",
            TransactionType::Damage => "DAMAGE",
            TransactionType::Adjustment => "ADJUSTMENT",
            TransactionType::Reservation => "RESERVATION",
            TransactionType::Release => "RELEASE",
            TransactionType::Commit => "COMMIT",
            TransactionType::Expiry => "EXPIRY",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PURCHASE" => TransactionType::Purchase,
            "SALE" => TransactionType::Sale,
            "RETURN" => TransactionType::Return,
            "DAMAGE" => TransactionType::Damage,
            "ADJUSTMENT" => TransactionType::Adjustment,
            "RESERVATION" => TransactionType::Reservation,
            "RELEASE" => TransactionType::Release,
            "COMMIT" => TransactionType::Commit,
            "EXPIRY" => TransactionType::Expiry,
            _ => return None,
        })
    }
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockTransaction {
    pub id: Uuid,
    pub product_id: Uuid,
    #[serde(rename = "type")]
    pub ty: TransactionType,
    /// Signed change of the quantity the type concerns (available for adjustments,
    /// reservations and releases; total for commits).
    pub quantity: i64,
    pub available_after: i64,
    pub reserved_after: i64,
    pub total_after: i64,
    /// Order id or free text.
    pub reference: Option<String>,
    pub reason: Option<String>,
    /// Who caused it: `user:<id>`, `service`, `event:<type>`, `system:sweeper`.
    pub actor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /api/v1/inventory/{productId}/adjust`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustRequest {
    /// PURCHASE or RETURN add `quantity`; DAMAGE or SALE subtract it; ADJUSTMENT applies a
    /// signed `quantity`.
    #[serde(rename = "type")]
    pub ty: TransactionType,
    pub quantity: i64,
    pub reference: Option<String>,
    pub reason: Option<String>,
}

/// The schema of [`AdjustRequest`]: which quantities a type takes, as one of two shapes.
impl PartialSchema for AdjustRequest {
    fn schema() -> RefOr<Schema> {
        let shape = |types: &[&str], quantity: RefOr<Schema>, description: &str| -> Object {
            ObjectBuilder::new()
                .description(Some(description))
                .property(
                    "type",
                    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(types.iter().copied())),
                )
                .required("type")
                .property("quantity", quantity)
                .required("quantity")
                .property("reference", note_schema())
                .property("reason", note_schema())
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::<Schema>::FreeForm(false),
                ))
                .build()
        };
        let positive = ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(MAX_QUANTITY))
            .description(Some("Units, 1 to 1,000,000"))
            .build();
        let range = |min: i64, max: i64| {
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::Integer))
                .minimum(Some(min))
                .maximum(Some(max))
        };
        let signed = OneOfBuilder::new()
            .description(Some("Signed units, -1,000,000 to 1,000,000, not 0"))
            .item(range(-MAX_QUANTITY, -1))
            .item(range(1, MAX_QUANTITY))
            .build();
        OneOfBuilder::new()
            .description(Some(
                "A stock movement: PURCHASE or RETURN add `quantity`, DAMAGE or SALE subtract it (available \
                 stock never goes below zero: 409 `insufficient_stock`), ADJUSTMENT applies a signed \
                 `quantity`. `reference` (an order id or free text) and `reason`: at most 500 characters.",
            ))
            .item(shape(&["PURCHASE", "SALE", "RETURN", "DAMAGE"], positive.into(), "Goods in or out"))
            .item(shape(&["ADJUSTMENT"], RefOr::T(Schema::OneOf(signed)), "A stock-take correction"))
            .into()
    }
}

impl ToSchema for AdjustRequest {}

impl AdjustRequest {
    /// The signed change of available (and total) stock.
    pub fn delta(&self) -> Result<i64, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (name, v) in [("reference", &self.reference), ("reason", &self.reason)] {
            if v.as_ref().is_some_and(|v| v.chars().count() > MAX_NOTE_LEN) {
                errors.push(fe(name, "must be at most 500 characters"));
            }
        }
        let q = self.quantity;
        let delta = match self.ty {
            TransactionType::Purchase | TransactionType::Return if q > 0 => q,
            TransactionType::Damage | TransactionType::Sale if q > 0 => -q,
            TransactionType::Adjustment if q != 0 => q,
            TransactionType::Adjustment => {
                errors.push(fe("quantity", "must not be 0"));
                0
            }
            TransactionType::Purchase
            | TransactionType::Return
            | TransactionType::Damage
            | TransactionType::Sale => {
                errors.push(fe("quantity", "must be positive"));
                0
            }
            _ => {
                errors.push(fe("type", "must be one of PURCHASE, SALE, RETURN, DAMAGE, ADJUSTMENT"));
                0
            }
        };
        if q.unsigned_abs() > MAX_QUANTITY.unsigned_abs() {
            errors.push(fe("quantity", format!("must be at most {MAX_QUANTITY} in magnitude")));
        }
        if errors.is_empty() {
            Ok(delta)
        } else {
            Err(errors)
        }
    }
}

/// One line of a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationLine {
    pub product_id: Uuid,
    /// 1 to 1,000,000 units.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: i64,
}

/// `POST /api/v1/inventory/reservations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveRequest {
    pub order_id: Uuid,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ReservationLine>,
}

impl ReserveRequest {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.items.is_empty() || self.items.len() > MAX_RESERVATION_ITEMS {
            errors.push(fe("items", format!("must hold 1 to {MAX_RESERVATION_ITEMS} lines")));
        }
        for (i, l) in self.items.iter().enumerate() {
            if !(1..=MAX_QUANTITY).contains(&l.quantity) {
                errors.push(fe(
                    format!("items[{i}].quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Lifecycle of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    /// Holding stock until `expiresAt`.
    Active,
    /// Payment succeeded: the units left the stock (terminal).
    Committed,
    /// Cancelled or payment failed: the units went back to available (terminal).
    Released,
    /// Not committed in time: the sweeper released the units (terminal).
    Expired,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Active => "ACTIVE",
            ReservationStatus::Committed => "COMMITTED",
            ReservationStatus::Released => "RELEASED",
            ReservationStatus::Expired => "EXPIRED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ACTIVE" => ReservationStatus::Active,
            "COMMITTED" => ReservationStatus::Committed,
            "RELEASED" => ReservationStatus::Released,
            "EXPIRED" => ReservationStatus::Expired,
            _ => return None,
        })
    }
}

/// A reservation of stock for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: ReservationStatus,
    /// Lines, one per product (quantities summed), by product id.
    pub items: Vec<ReservationLine>,
    /// Why it was released, when it was.
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the committed units came back to stock (order cancelled after payment).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub returned_at: Option<OffsetDateTime>,
}

/// A product a reservation could not get enough of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shortage {
    pub product_id: Uuid,
    pub requested: i64,
    /// Available at the time of the attempt (0 when the product has no stock row).
    pub available: i64,
}

/// `POST …/release` body (optional).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRequest {
    #[schema(schema_with = note_schema)]
    pub reason: Option<String>,
}
