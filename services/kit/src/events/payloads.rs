//! Typed payloads of every event type in the contract (JSON, camelCase fields). Producers and
//! consumers share these structs, so a field rename breaks the build, not production. Adding
//! an optional field is compatible; anything else bumps [`EventPayload::VERSION`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::contract::types;
use super::EventPayload;
use crate::money::Money;

/// One line of an order or a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub product_id: Uuid,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Money>,
}

macro_rules! payload {
    ($(#[$doc:meta])* $name:ident = $ty:expr, key: $key:ident { $($(#[$fdoc:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name { $($(#[$fdoc])* pub $field: $fty),* }

        impl EventPayload for $name {
            const TYPE: &'static str = $ty;
            fn aggregate_id(&self) -> String {
                self.$key.to_string()
            }
        }
    };
}

payload!(
    /// The order service accepted a checkout; the saga starts (inventory reserves).
    OrderPlaced = types::ORDER_PLACED, key: order_id {
    order_id: Uuid, user_id: Uuid, items: Vec<LineItem>, total: Money,
    /// The customer's address for notifications (from the access token).
    #[serde(default, skip_serializing_if = "Option::is_none")] customer_email: Option<String>,
    /// The shipping address's name.
    #[serde(default, skip_serializing_if = "Option::is_none")] customer_name: Option<String>,
});
payload!(
    /// One transition of an order's status machine, with who made it and why.
    OrderStatusChanged = types::ORDER_STATUS_CHANGED, key: order_id {
    order_id: Uuid, user_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")] from: Option<String>,
    to: String, actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")] reason: Option<String>,
});
payload!(
    /// Stock reserved and payment authorised: the order is confirmed.
    OrderConfirmed = types::ORDER_CONFIRMED, key: order_id { order_id: Uuid, user_id: Uuid, total: Money });
payload!(
    /// The order was cancelled (by the customer, an admin, or a failed saga step).
    OrderCancelled = types::ORDER_CANCELLED, key: order_id {
    order_id: Uuid, user_id: Uuid, reason: String, items: Vec<LineItem>,
    /// Whether money was taken and must be refunded.
    refund: bool,
});
payload!(
    OrderShipped = types::ORDER_SHIPPED, key: order_id {
    order_id: Uuid, user_id: Uuid, shipment_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")] carrier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")] tracking_number: Option<String>,
});
payload!(
    OrderDelivered = types::ORDER_DELIVERED, key: order_id {
    order_id: Uuid, user_id: Uuid, #[serde(with = "time::serde::rfc3339")] delivered_at: OffsetDateTime,
});
payload!(
    PaymentAuthorized = types::PAYMENT_AUTHORIZED, key: order_id {
    order_id: Uuid, payment_id: Uuid, amount: Money,
    /// The provider's charge id (Stripe `ch_…`), when it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")] charge_id: Option<String>,
});
payload!(
    PaymentCaptured = types::PAYMENT_CAPTURED, key: order_id {
    order_id: Uuid, payment_id: Uuid, amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")] charge_id: Option<String>,
});
payload!(
    PaymentFailed = types::PAYMENT_FAILED, key: order_id {
    order_id: Uuid, payment_id: Uuid, amount: Money, reason: String,
});
payload!(
    PaymentRefunded = types::PAYMENT_REFUNDED, key: order_id {
    order_id: Uuid, payment_id: Uuid, amount: Money, refund_id: Uuid,
});
payload!(
    InventoryReserved = types::INVENTORY_RESERVED, key: order_id {
    order_id: Uuid, reservation_id: Uuid, items: Vec<LineItem>,
    #[serde(with = "time::serde::rfc3339")] expires_at: OffsetDateTime,
});
payload!(
    InventoryReservationFailed = types::INVENTORY_RESERVATION_FAILED, key: order_id {
    order_id: Uuid, reason: String,
    /// Products that lacked stock.
    unavailable: Vec<Uuid>,
});
payload!(
    /// A reservation was released (payment failed, order cancelled, or it expired).
    InventoryReleased = types::INVENTORY_RELEASED, key: order_id {
    order_id: Uuid, reservation_id: Uuid, reason: String,
});
payload!(
    InventoryCommitted = types::INVENTORY_COMMITTED, key: order_id { order_id: Uuid, reservation_id: Uuid });
payload!(
    InventoryLowStock = types::INVENTORY_LOW_STOCK, key: product_id {
    product_id: Uuid, available: i64, threshold: i64,
});
payload!(
    NotificationSent = types::NOTIFICATION_SENT, key: notification_id {
    notification_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")] user_id: Option<Uuid>,
    template: String, channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")] order_id: Option<Uuid>,
});
payload!(
    NotificationFailed = types::NOTIFICATION_FAILED, key: notification_id {
    notification_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")] user_id: Option<Uuid>,
    template: String, channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")] order_id: Option<Uuid>,
    attempts: i32, error: String,
});
payload!(
    ShipmentShipped = types::SHIPMENT_SHIPPED, key: order_id {
    order_id: Uuid, shipment_id: Uuid, carrier: String, tracking_number: String,
});
payload!(
    ShipmentDelivered = types::SHIPMENT_DELIVERED, key: order_id {
    order_id: Uuid, shipment_id: Uuid, #[serde(with = "time::serde::rfc3339")] delivered_at: OffsetDateTime,
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::contract;

    #[test]
    fn payload_types_are_in_the_contract_and_camel_case() {
        for ty in [
            OrderPlaced::TYPE,
            OrderConfirmed::TYPE,
            OrderCancelled::TYPE,
            OrderShipped::TYPE,
            OrderDelivered::TYPE,
            OrderStatusChanged::TYPE,
            PaymentAuthorized::TYPE,
            PaymentCaptured::TYPE,
            PaymentFailed::TYPE,
            PaymentRefunded::TYPE,
            InventoryReserved::TYPE,
            InventoryReservationFailed::TYPE,
            InventoryReleased::TYPE,
            InventoryCommitted::TYPE,
            InventoryLowStock::TYPE,
            NotificationSent::TYPE,
            NotificationFailed::TYPE,
            ShipmentShipped::TYPE,
            ShipmentDelivered::TYPE,
        ] {
            assert!(contract::topic_for(ty).is_some(), "{ty}");
        }
        assert_eq!(contract::EVENT_TOPICS.len(), 19);
        let p = InventoryLowStock { product_id: Uuid::nil(), available: 2, threshold: 5 };
        let json = serde_json::to_value(&p).unwrap();
        assert!(json.get("productId").is_some(), "{json}");
    }
}
