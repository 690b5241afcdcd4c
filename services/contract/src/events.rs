//! Topic names, event type names and which topic carries which type. Services, the operator
//! (which creates the topics) and `docs/events.md` all follow this table. Re-exported by the kit
//! as `kit::events::contract`; which service reads and publishes which topic is on
//! [`crate::ServiceName`] (`subscriptions`, `publishes`).

/// Logical topic names. In Kubernetes each is prefixed with the platform name
/// (configuration `topic_prefix`, e.g. `shop-` → `shop-orders`); see [`full_topic`].
pub mod topics {
    pub const ORDERS: &str = "orders";
    pub const PAYMENTS: &str = "payments";
    pub const INVENTORY: &str = "inventory";
    pub const NOTIFICATIONS: &str = "notifications";
    pub const SHIPMENTS: &str = "shipments";

    /// Every topic of the platform (the operator creates these).
    pub const ALL: [&str; 5] = [ORDERS, PAYMENTS, INVENTORY, NOTIFICATIONS, SHIPMENTS];
}

/// CloudEvents `type` values.
pub mod types {
    pub const ORDER_PLACED: &str = "order.placed";
    pub const ORDER_CONFIRMED: &str = "order.confirmed";
    pub const ORDER_CANCELLED: &str = "order.cancelled";
    pub const ORDER_SHIPPED: &str = "order.shipped";
    pub const ORDER_DELIVERED: &str = "order.delivered";
    /// Every transition of an order's status (the history row, as an event).
    pub const ORDER_STATUS_CHANGED: &str = "order.status_changed";
    pub const PAYMENT_AUTHORIZED: &str = "payment.authorized";
    pub const PAYMENT_CAPTURED: &str = "payment.captured";
    pub const PAYMENT_FAILED: &str = "payment.failed";
    pub const PAYMENT_REFUNDED: &str = "payment.refunded";
    pub const INVENTORY_RESERVED: &str = "inventory.reserved";
    pub const INVENTORY_RESERVATION_FAILED: &str = "inventory.reservation_failed";
    pub const INVENTORY_RELEASED: &str = "inventory.released";
    pub const INVENTORY_COMMITTED: &str = "inventory.committed";
    pub const INVENTORY_LOW_STOCK: &str = "inventory.low_stock";
    pub const NOTIFICATION_SENT: &str = "notification.sent";
    /// A notification given up after its last attempt (a resend may still deliver it).
    pub const NOTIFICATION_FAILED: &str = "notification.failed";
    pub const SHIPMENT_SHIPPED: &str = "shipment.shipped";
    pub const SHIPMENT_DELIVERED: &str = "shipment.delivered";
}

/// CloudEvents `source` of each producing service.
pub mod sources {
    pub const ORDER: &str = "/shop/order";
    pub const PAYMENT: &str = "/shop/payment";
    pub const INVENTORY: &str = "/shop/inventory";
    pub const NOTIFICATION: &str = "/shop/notification";
    pub const SHIPMENT: &str = "/shop/shipment";
}

/// The contract table: every event type and the topic that carries it.
pub const EVENT_TOPICS: &[(&str, &str)] = &[
    (types::ORDER_PLACED, topics::ORDERS),
    (types::ORDER_CONFIRMED, topics::ORDERS),
    (types::ORDER_CANCELLED, topics::ORDERS),
    (types::ORDER_SHIPPED, topics::ORDERS),
    (types::ORDER_DELIVERED, topics::ORDERS),
    (types::ORDER_STATUS_CHANGED, topics::ORDERS),
    (types::PAYMENT_AUTHORIZED, topics::PAYMENTS),
    (types::PAYMENT_CAPTURED, topics::PAYMENTS),
    (types::PAYMENT_FAILED, topics::PAYMENTS),
    (types::PAYMENT_REFUNDED, topics::PAYMENTS),
    (types::INVENTORY_RESERVED, topics::INVENTORY),
    (types::INVENTORY_RESERVATION_FAILED, topics::INVENTORY),
    (types::INVENTORY_RELEASED, topics::INVENTORY),
    (types::INVENTORY_COMMITTED, topics::INVENTORY),
    (types::INVENTORY_LOW_STOCK, topics::INVENTORY),
    (types::NOTIFICATION_SENT, topics::NOTIFICATIONS),
    (types::NOTIFICATION_FAILED, topics::NOTIFICATIONS),
    (types::SHIPMENT_SHIPPED, topics::SHIPMENTS),
    (types::SHIPMENT_DELIVERED, topics::SHIPMENTS),
];

/// The logical topic that carries `event_type`, if the type is in the contract.
pub fn topic_for(event_type: &str) -> Option<&'static str> {
    EVENT_TOPICS.iter().find(|(t, _)| *t == event_type).map(|(_, topic)| *topic)
}

/// The broker topic name: `prefix` + logical topic.
pub fn full_topic(prefix: &str, topic: &str) -> String {
    format!("{prefix}{topic}")
}

/// The dead-letter topic of consumer group `group` for the (full) topic `topic`:
/// `<topic>.dlq.<group>`, e.g. `shop-orders.dlq.payment`.
pub fn dead_letter_topic(topic: &str, group: &str) -> String {
    format!("{topic}.dlq.{group}")
}

/// Kafka headers of the CloudEvents Kafka protocol binding (binary mode) and of dead letters.
pub mod headers {
    pub const SPECVERSION: &str = "ce_specversion";
    pub const ID: &str = "ce_id";
    pub const SOURCE: &str = "ce_source";
    pub const TYPE: &str = "ce_type";
    pub const TIME: &str = "ce_time";
    pub const SUBJECT: &str = "ce_subject";
    pub const DATASCHEMA: &str = "ce_dataschema";
    pub const CORRELATIONID: &str = "ce_correlationid";
    pub const CAUSATIONID: &str = "ce_causationid";
    pub const CONTENT_TYPE: &str = "content-type";

    /// Added to a message copied to a dead-letter topic.
    pub const DLQ_ERROR: &str = "dlq_error";
    pub const DLQ_GROUP: &str = "dlq_group";
    pub const DLQ_ATTEMPTS: &str = "dlq_attempts";
    pub const DLQ_ORIGINAL_TOPIC: &str = "dlq_original_topic";
    pub const DLQ_ORIGINAL_PARTITION: &str = "dlq_original_partition";
    pub const DLQ_ORIGINAL_OFFSET: &str = "dlq_original_offset";
}

/// Environment keys of the event configuration (`kit::events::EventsConfig`).
pub mod env {
    /// [`BUS_MEMORY`] (embedded default) or [`BUS_KAFKA`].
    pub const BUS: &str = "SHOP_EVENTS__BUS";
    pub const BUS_MEMORY: &str = "memory";
    pub const BUS_KAFKA: &str = "kafka";
    /// Kafka bootstrap servers, e.g. `kafka:9092`.
    pub const BROKERS: &str = "SHOP_EVENTS__BROKERS";
    /// Platform prefix of every topic name, e.g. `shop-`.
    pub const TOPIC_PREFIX: &str = "SHOP_EVENTS__TOPIC_PREFIX";
    /// librdkafka's `security.protocol`: `plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`.
    pub const SECURITY_PROTOCOL: &str = "SHOP_EVENTS__SECURITY_PROTOCOL";
    /// CA certificates (PEM) of the brokers.
    pub const SSL_CA_FILE: &str = "SHOP_EVENTS__SSL_CA_FILE";
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub const SASL_MECHANISM: &str = "SHOP_EVENTS__SASL_MECHANISM";
    pub const SASL_USERNAME: &str = "SHOP_EVENTS__SASL_USERNAME";
    pub const SASL_PASSWORD: &str = "SHOP_EVENTS__SASL_PASSWORD";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_one_known_topic() {
        let mut seen = std::collections::HashSet::new();
        for (ty, topic) in EVENT_TOPICS {
            assert!(seen.insert(*ty), "{ty} listed twice");
            assert!(topics::ALL.contains(topic), "{ty} → unknown topic {topic}");
            let domain = ty.split('.').next().unwrap();
            assert!(topic.starts_with(domain), "{ty} should live on its domain's topic, not {topic}");
        }
        assert_eq!(topic_for("order.placed"), Some("orders"));
        assert_eq!(topic_for("nope"), None);
        assert_eq!(dead_letter_topic("shop-orders", "payment"), "shop-orders.dlq.payment");
        assert_eq!(full_topic("shop-", topics::ORDERS), "shop-orders");
    }

    #[test]
    fn every_topic_carries_a_type_and_names_are_distinct() {
        for t in topics::ALL {
            assert!(EVENT_TOPICS.iter().any(|(_, topic)| *topic == t), "no type on {t}");
        }
        let mut unique = topics::ALL.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), topics::ALL.len());
    }
}
