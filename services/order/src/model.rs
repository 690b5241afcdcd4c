//! The order's wire types and its status machine.

use kit::money::Money;
use kit::openapi::strings;
use kit::problem::FieldError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, SchemaType, Type};
use utoipa::openapi::{Object, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

/// Most lines in one order.
pub const MAX_LINES: usize = 100;
/// Most units of one product in one line of an order.
pub const MAX_QUANTITY: i64 = 999;
/// Longest order notes, in characters.
pub const MAX_NOTES_LEN: usize = 1000;
/// Longest reason of a cancellation or status change, in characters.
pub const MAX_REASON_LEN: usize = 500;
/// Longest carrier name or tracking number, in characters.
pub const MAX_SHIPPING_REF_LEN: usize = 100;

pub(crate) mod schemas {
    //! Field schemas for rules a `#[schema(pattern = …)]` literal cannot hold.
    use super::*;

    fn required(max: usize) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(strings::NOT_BLANK, 1, max, false, "")
    }
    fn optional(max: usize) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string("", 0, max, true, "")
    }
    pub fn line_200() -> RefOr<Schema> {
        required(200)
    }
    pub fn line_100() -> RefOr<Schema> {
        required(100)
    }
    pub fn postal_code() -> RefOr<Schema> {
        required(20)
    }
    pub fn optional_200() -> RefOr<Schema> {
        optional(200)
    }
    pub fn notes() -> RefOr<Schema> {
        optional(MAX_NOTES_LEN)
    }
    pub fn reason() -> RefOr<Schema> {
        optional(MAX_REASON_LEN)
    }
    pub fn shipping_ref() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(
            strings::NOT_BLANK,
            1,
            MAX_SHIPPING_REF_LEN,
            false,
            "1 to 100 characters, not only whitespace; trimmed.",
        )
    }
}
/// Where an order is in its life. See `docs/orders.md` for the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Accepted; stock not reserved yet.
    Pending,
    /// Stock reserved until `reservationExpiresAt`; waiting for the payment.
    AwaitingPayment,
    /// Payment authorised and stock committed.
    Paid,
    /// Being picked and packed.
    Processing,
    /// Handed to the carrier.
    Shipped,
    /// Delivered (terminal).
    Delivered,
    /// Cancelled by the customer, an admin or the saga (terminal).
    Cancelled,
    /// The saga could not complete: no stock, or the payment failed (terminal).
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Pending,
        OrderStatus::AwaitingPayment,
        OrderStatus::Paid,
        OrderStatus::Processing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::AwaitingPayment => "AWAITING_PAYMENT",
            OrderStatus::Paid => "PAID",
            OrderStatus::Processing => "PROCESSING",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, OrderStatus::Delivered | OrderStatus::Cancelled | OrderStatus::Failed)
    }

    /// Whether money was taken (a cancellation must refund).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::Processing | OrderStatus::Shipped | OrderStatus::Delivered
        )
    }

    /// The status machine: every legal transition, whoever asks.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (Pending, AwaitingPayment | Failed | Cancelled)
                | (AwaitingPayment, Paid | Failed | Cancelled)
                | (Paid, Processing | Shipped | Cancelled)
                | (Processing, Shipped | Cancelled)
                | (Shipped, Delivered | Cancelled)
        )
    }

    /// Whether the customer may still cancel (before shipping); admins may until delivery.
    pub fn customer_may_cancel(self) -> bool {
        matches!(
            self,
            OrderStatus::Pending | OrderStatus::AwaitingPayment | OrderStatus::Paid | OrderStatus::Processing
        )
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    /// 1 to 200 characters, not only whitespace.
    #[schema(schema_with = schemas::line_200, example = "Ada Lovelace")]
    pub name: String,
    /// 1 to 200 characters, not only whitespace.
    #[schema(schema_with = schemas::line_200, example = "12 Analytical Row")]
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::optional_200)]
    pub line2: Option<String>,
    #[schema(schema_with = schemas::line_100, example = "London")]
    pub city: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::optional_200)]
    pub state: Option<String>,
    #[schema(schema_with = schemas::postal_code, example = "N1 9GU")]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, e.g. `US`, `GB`.
    #[schema(example = "GB", pattern = "^[A-Z]{2}$")]
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::optional_200)]
    pub phone: Option<String>,
}

fn fe(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

impl Address {
    /// Checks lengths (in characters) and the country code; `prefix` names the field in errors.
    pub fn validate(&self, prefix: &str, errors: &mut Vec<FieldError>) {
        let required = [
            ("name", &self.name, 200),
            ("line1", &self.line1, 200),
            ("city", &self.city, 100),
            ("postalCode", &self.postal_code, 20),
        ];
        for (field, value, max) in required {
            if value.trim().is_empty() || value.chars().count() > max {
                errors.push(fe(format!("{prefix}.{field}"), format!("must be 1 to {max} characters")));
            }
        }
        for (field, value) in [("line2", &self.line2), ("state", &self.state), ("phone", &self.phone)] {
            if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
                errors.push(fe(format!("{prefix}.{field}"), "must be at most 200 characters"));
            }
        }
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            errors
                .push(fe(format!("{prefix}.country"), "must be an ISO 3166-1 alpha-2 code such as US or GB"));
        }
    }
}

/// `POST /api/v1/orders/checkout`: order what is in the caller's cart.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRequest {
    pub shipping_address: Address,
    /// A shipping method code (see `GET /api/v1/orders/shipping-methods`) that delivers to the
    /// address's country in the order's currency (422 otherwise); default `standard`.
    #[serde(default)]
    pub shipping_method: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::notes)]
    pub notes: Option<String>,
}

/// One requested line of `POST /api/v1/orders`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLineRequest {
    pub product_id: Uuid,
    /// 1 to 999 units (lines of one product are added up).
    #[schema(minimum = 1, maximum = 999)]
    pub quantity: i64,
    /// Accepted for compatibility and ignored: prices always come from the catalog.
    #[serde(default, alias = "price")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub unit_price: Option<serde_json::Value>,
}

/// `POST /api/v1/orders`: order explicit items.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<OrderLineRequest>,
    pub shipping_address: Address,
    /// As in `CheckoutRequest`.
    #[serde(default)]
    pub shipping_method: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::notes)]
    pub notes: Option<String>,
    /// Accepted for compatibility and ignored: the order belongs to the caller.
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub user_id: Option<serde_json::Value>,
}

/// Checks what both order requests share; lines are merged per product by the caller. `lines`
/// is `None` for a checkout before its cart is read: a request is judged on its own fields
/// before any stored state (so an invalid body is a 422, never a 409 `cart_empty`).
pub fn validate_order_input(
    lines: Option<&[(Uuid, i64)]>,
    address: &Address,
    notes: Option<&str>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Some(lines) = lines {
        if lines.is_empty() {
            errors.push(fe("items", "must hold at least one line"));
        }
        if lines.len() > MAX_LINES {
            errors.push(fe("items", format!("must hold at most {MAX_LINES} lines")));
        }
        for (i, (_, q)) in lines.iter().enumerate() {
            if !(1..=MAX_QUANTITY).contains(q) {
                errors.push(fe(
                    format!("items[{i}].quantity"),
                    format!("must be between 1 and {MAX_QUANTITY}"),
                ));
            }
        }
    }
    address.validate("shippingAddress", &mut errors);
    if notes.is_some_and(|n| n.chars().count() > MAX_NOTES_LEN) {
        errors.push(fe("notes", "must be at most 1000 characters"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Sums quantities per product, keeping the first-seen order.
pub fn merge_lines(lines: impl IntoIterator<Item = (Uuid, i64)>) -> Vec<(Uuid, i64)> {
    let mut out: Vec<(Uuid, i64)> = Vec::new();
    for (id, q) in lines {
        match out.iter_mut().find(|(p, _)| *p == id) {
            Some((_, total)) => *total = total.saturating_add(q),
            None => out.push((id, q)),
        }
    }
    out
}

/// One line of an order, priced by the catalog when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: Money,
    pub line_total: Money,
}

/// One row of an order's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<OrderStatus>,
    pub to: OrderStatus,
    /// `user:<id>`, `admin:<id>`, `service:<name>` or `system:<task>`.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Where an order's parcel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShipmentStatus {
    /// A draft: the order is not paid yet.
    PendingPayment,
    /// Paid: to be picked, packed and handed to the carrier.
    Ready,
    Shipped,
    Delivered,
    Cancelled,
}

impl ShipmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::PendingPayment => "PENDING_PAYMENT",
            ShipmentStatus::Ready => "READY",
            ShipmentStatus::Shipped => "SHIPPED",
            ShipmentStatus::Delivered => "DELIVERED",
            ShipmentStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<ShipmentStatus> {
        [
            ShipmentStatus::PendingPayment,
            ShipmentStatus::Ready,
            ShipmentStatus::Shipped,
            ShipmentStatus::Delivered,
            ShipmentStatus::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The shipment of an order (one per order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    pub id: Uuid,
    pub status: ShipmentStatus,
    /// The shipping method's code.
    pub method: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub shipped_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

/// `POST /api/v1/orders/{id}/shipment/ship` (admin).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShipRequest {
    #[schema(schema_with = schemas::shipping_ref)]
    pub carrier: String,
    #[schema(schema_with = schemas::shipping_ref)]
    pub tracking_number: String,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub subtotal: Money,
    pub shipping_cost: Money,
    pub tax: Money,
    pub total: Money,
    pub shipping_method: String,
    pub shipping_address: Address,
    /// The customer's email address at checkout (from their token), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The payment of the order, once one was authorised.
    pub payment_id: Option<Uuid>,
    /// `AUTHORIZED`, `CAPTURED`, `PARTIALLY_REFUNDED`, `REFUNDED` or `FAILED`, as the payment
    /// service reported it; null before any payment event.
    pub payment_status: Option<String>,
    /// The provider's charge id (Stripe `ch_…`), once the payment service reported one.
    pub charge_id: Option<String>,
    pub refunded_amount: Money,
    /// Until when the reserved stock is held (status `AWAITING_PAYMENT`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub reservation_expires_at: Option<OffsetDateTime>,
    /// Why the order failed or was cancelled.
    pub failure_reason: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub paid_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub shipped_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub cancelled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The order's shipment.
    pub shipment: Option<Shipment>,
    /// Every status transition, oldest first (single-order reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

/// `POST /api/v1/orders/{id}/cancel` (body optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    #[schema(schema_with = schemas::reason)]
    pub reason: Option<String>,
}

/// `PATCH /api/v1/orders/{id}/status` (admin).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusUpdate {
    /// `PROCESSING`, `SHIPPED`, `DELIVERED` or `CANCELLED`.
    pub status: OrderStatus,
    /// Required for `SHIPPED`.
    pub carrier: Option<String>,
    /// Required for `SHIPPED`.
    pub tracking_number: Option<String>,
    pub reason: Option<String>,
}

/// The schema of [`StatusUpdate`]: `SHIPPED` needs a carrier and a tracking number.
impl PartialSchema for StatusUpdate {
    fn schema() -> RefOr<Schema> {
        let nullable_text =
            || ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]));
        let shape = |statuses: &[&str], description: &str, shipped: bool| -> Object {
            let mut b = ObjectBuilder::new()
                .description(Some(description))
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(statuses.iter().copied())),
                )
                .required("status")
                .property("reason", schemas::reason())
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::<Schema>::FreeForm(false),
                ));
            if shipped {
                b = b
                    .property("carrier", schemas::shipping_ref())
                    .required("carrier")
                    .property("trackingNumber", schemas::shipping_ref())
                    .required("trackingNumber");
            } else {
                b = b
                    .property("carrier", nullable_text().description(Some("Ignored")))
                    .property("trackingNumber", nullable_text().description(Some("Ignored")));
            }
            b.build()
        };
        OneOfBuilder::new()
            .description(Some(
                "`PROCESSING`, `SHIPPED` (with `carrier` and `trackingNumber`), `DELIVERED` or `CANCELLED`; the \
                 other statuses are the checkout saga's. `reason`: at most 500 characters.",
            ))
            .item(shape(&["SHIPPED"], "Handed to the carrier", true))
            .item(shape(&["PROCESSING", "DELIVERED", "CANCELLED"], "Any other step", false))
            .into()
    }
}

impl ToSchema for StatusUpdate {}

/// `GET /api/v1/orders/{id}/tracking`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tracking {
    pub order_id: Uuid,
    pub status: OrderStatus,
    pub shipment_id: Option<Uuid>,
    pub shipment_status: Option<ShipmentStatus>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub shipped_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// The order's status history, oldest first.
    pub events: Vec<HistoryEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_machine() {
        use OrderStatus::*;
        assert!(Pending.can_become(AwaitingPayment));
        assert!(AwaitingPayment.can_become(Paid));
        assert!(Paid.can_become(Shipped));
        assert!(Shipped.can_become(Delivered));
        assert!(!Pending.can_become(Paid), "payment needs reserved stock first");
        assert!(!Delivered.can_become(Cancelled));
        assert!(!Cancelled.can_become(Paid));
        assert!(!Failed.can_become(AwaitingPayment));
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            if s.is_terminal() {
                assert!(OrderStatus::ALL.iter().all(|t| !s.can_become(*t)), "{s} is terminal");
            }
        }
        assert!(!Shipped.customer_may_cancel() && Shipped.can_become(Cancelled));
    }

    #[test]
    fn lines_merge_per_product() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(merge_lines([(a, 1), (b, 2), (a, 3)]), vec![(a, 4), (b, 2)]);
    }

    #[test]
    fn address_rules() {
        let mut a = Address {
            name: "A".into(),
            line1: "1 Road".into(),
            line2: None,
            city: "Town".into(),
            state: None,
            postal_code: "123".into(),
            country: "US".into(),
            phone: None,
        };
        let mut errors = Vec::new();
        a.validate("shippingAddress", &mut errors);
        assert!(errors.is_empty());
        a.country = "usa".into();
        a.city = " ".into();
        a.validate("shippingAddress", &mut errors);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["shippingAddress.city", "shippingAddress.country"]);
    }
}
