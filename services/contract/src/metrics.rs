//! Every Prometheus metric the platform exports — the services' and the operator's — described
//! once: name, kind, labels and meaning. The code records through these constants, the
//! recorders describe every metric from [`ALL`] (the `# HELP` lines), docs/operations.md lists
//! them, and the dashboards and alert rules shipped with the charts may query only names found
//! here (a test checks it).
//!
//! Names follow the Prometheus conventions (`_total` counters, base units, `shop_` for the
//! platform's own); label values are bounded sets (statuses, reasons, routes, event types,
//! channels, consumer groups), never ids.

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Who exports a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exporter {
    /// Every service process (through `shop-kit`), at `/metrics` on the ops listener.
    Services,
    /// The operator, at `/metrics` on its metrics port.
    Operator,
}

/// One metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    pub exporter: Exporter,
}

impl Metric {
    /// The series names Prometheus stores for this metric (a histogram's `_bucket`, `_sum`,
    /// `_count`).
    pub fn series(&self) -> Vec<String> {
        match self.kind {
            Kind::Counter | Kind::Gauge => vec![self.name.to_string()],
            Kind::Histogram => {
                ["_bucket", "_sum", "_count"].iter().map(|s| format!("{}{s}", self.name)).collect()
            }
        }
    }
}

const fn services(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric { name, kind, labels, help, exporter: Exporter::Services }
}

const fn operator(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric { name, kind, labels, help, exporter: Exporter::Operator }
}

use Kind::{Counter, Gauge, Histogram};

// ----- HTTP -------------------------------------------------------------------------------------

pub const HTTP_REQUESTS: Metric = services(
    "http_requests_total",
    Counter,
    &["service", "method", "route", "status"],
    "HTTP requests answered, by service, method, route template and status.",
);
pub const HTTP_REQUEST_DURATION: Metric = services(
    "http_request_duration_seconds",
    Histogram,
    &["service", "method", "route", "status"],
    "Time to answer an HTTP request, by service, method, route template and status.",
);
pub const CLIENT_FAILURES: Metric = services(
    "shop_client_failures_total",
    Counter,
    &["service"],
    "Failed calls from one service to another (after retries), by the service called.",
);
pub const GATEWAY_RATELIMIT_FALLBACK: Metric = services(
    "shop_gateway_ratelimit_fallback_total",
    Counter,
    &[],
    "Rate-limit decisions the gateway took from its own memory because the shared Redis failed.",
);

pub const AUTH_HASHING_BUSY: Metric = services(
    "auth_password_hashing_busy_total",
    Counter,
    &[],
    "Sign-ins, registrations and password changes refused with 503 because every password-hashing permit was taken.",
);
pub const AUTH_THROTTLE_FALLBACK: Metric = services(
    "auth_throttle_redis_fallback_total",
    Counter,
    &[],
    "Login failure counters kept in the process because the shared Redis failed.",
);
pub const AUTH_SECURITY_MAIL_FAILURES: Metric = services(
    "auth_security_mail_failures_total",
    Counter,
    &[],
    "Security emails (verification, reset, password changed) the auth service could not hand to the notification service.",
);

// ----- events -----------------------------------------------------------------------------------

pub const EVENTS_PUBLISHED: Metric =
    services("events_published_total", Counter, &["type"], "Events published to the bus, by event type.");
pub const EVENTS_CONSUMED: Metric = services(
    "events_consumed_total",
    Counter,
    &["type", "group"],
    "Events handled successfully, by event type and consumer group.",
);
pub const EVENTS_FAILED: Metric = services(
    "events_failed_total",
    Counter,
    &["type", "group"],
    "Event handler failures (each attempt), by event type and consumer group.",
);
pub const EVENTS_DEAD_LETTERED: Metric = services(
    "events_dead_lettered_total",
    Counter,
    &["type", "group"],
    "Events moved to a dead-letter topic after their last attempt, by event type and consumer group.",
);
pub const OUTBOX_PUBLISH_FAILURES: Metric = services(
    "events_outbox_publish_failures_total",
    Counter,
    &["service"],
    "Outbox rows whose publish failed (retried later), by the service owning the outbox.",
);
pub const OUTBOX_LAG: Metric = services(
    "events_outbox_lag_seconds",
    Gauge,
    &["service"],
    "Age of the oldest unsent outbox row (0 when none), by the service owning the outbox.",
);
pub const EVENTS_TAP_DROPPED: Metric = services(
    "events_tap_dropped_total",
    Counter,
    &[],
    "Events the admin console's live event browser skipped because a watcher read too slowly.",
);
pub const CONSUMER_LAG: Metric = services(
    "events_consumer_lag",
    Gauge,
    &["group", "topic", "partition"],
    "Messages a Kafka consumer group has not consumed yet, per topic and partition (Kafka bus only).",
);

// ----- business ---------------------------------------------------------------------------------

pub const CHECKOUTS_STARTED: Metric = services(
    "shop_checkouts_started_total",
    Counter,
    &[],
    "Orders placed (checkouts that created an order).",
);
pub const CHECKOUTS_COMPLETED: Metric = services(
    "shop_checkouts_completed_total",
    Counter,
    &[],
    "Orders that reached PAID: the checkout saga succeeded.",
);
pub const CHECKOUTS_FAILED: Metric = services(
    "shop_checkouts_failed_total",
    Counter,
    &["reason"],
    "Checkouts that ended without payment, by reason: out_of_stock (refused at checkout), \
     payment_failed, expired (unpaid past the reservation), cancelled (before payment).",
);
pub const ORDER_TRANSITIONS: Metric = services(
    "shop_order_transitions_total",
    Counter,
    &["to"],
    "Order status changes, by the status reached.",
);
pub const ORDER_TIME_TO_STATUS: Metric = services(
    "shop_order_time_to_status_seconds",
    Histogram,
    &["status"],
    "Time from an order's creation to reaching a status (the checkout saga's steps: \
     AWAITING_PAYMENT, PAID, FAILED, CANCELLED, SHIPPED, DELIVERED).",
);
pub const PAYMENTS: Metric = services(
    "shop_payments_total",
    Counter,
    &["outcome", "provider"],
    "Payment outcomes, by outcome (authorized, declined, captured, cancelled, refunded, \
     partially_refunded) and provider.",
);
pub const RESERVATIONS: Metric = services(
    "shop_reservations_total",
    Counter,
    &["outcome"],
    "Stock reservations, by outcome: created, committed, released, expired, returned.",
);
pub const CARTS_ABANDONED: Metric = services(
    "shop_carts_abandoned_total",
    Counter,
    &[],
    "Carts that expired with items in them (counted by the SQL cart store's sweep; Redis expires \
     carts itself and does not count them).",
);
pub const NOTIFICATIONS_SENT: Metric =
    services("shop_notifications_sent_total", Counter, &["channel"], "Notifications delivered, by channel.");
pub const NOTIFICATIONS_FAILED: Metric = services(
    "shop_notifications_failed_total",
    Counter,
    &["channel"],
    "Notifications given up after their last attempt, by channel.",
);

// ----- operator ---------------------------------------------------------------------------------

pub const OPERATOR_RECONCILES: Metric =
    operator("shop_operator_reconciles_total", Counter, &[], "Reconcile passes of ShopPlatform resources.");
pub const OPERATOR_RECONCILE_FAILURES: Metric = operator(
    "shop_operator_reconcile_failures_total",
    Counter,
    &["reason"],
    "Reconcile passes that failed, by reason.",
);
pub const OPERATOR_RECONCILE_DURATION: Metric =
    operator("shop_operator_reconcile_duration_seconds", Histogram, &[], "Time of a whole reconcile pass.");
pub const OPERATOR_STEP_DURATION: Metric = operator(
    "shop_operator_reconcile_step_duration_seconds",
    Histogram,
    &["step"],
    "Time of each reconcile step (secrets, database, topics, migrations, workloads, status...).",
);
pub const OPERATOR_PHASE: Metric = operator(
    "shop_operator_platform_phase",
    Gauge,
    &["namespace", "platform", "phase"],
    "1 for the phase each ShopPlatform is in, 0 for the others.",
);
pub const OPERATOR_MANAGED_OBJECTS: Metric = operator(
    "shop_operator_managed_objects",
    Gauge,
    &["namespace", "platform", "kind"],
    "Objects the operator applied for a ShopPlatform in its last pass, by kind.",
);
pub const OPERATOR_LEADER: Metric = operator(
    "shop_operator_leader",
    Gauge,
    &[],
    "1 while this operator replica holds the Lease and reconciles, 0 while it stands by.",
);

/// Every metric, services' and operator's.
pub const ALL: &[Metric] = &[
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    CLIENT_FAILURES,
    GATEWAY_RATELIMIT_FALLBACK,
    AUTH_HASHING_BUSY,
    AUTH_THROTTLE_FALLBACK,
    AUTH_SECURITY_MAIL_FAILURES,
    EVENTS_PUBLISHED,
    EVENTS_CONSUMED,
    EVENTS_FAILED,
    EVENTS_DEAD_LETTERED,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_LAG,
    CONSUMER_LAG,
    EVENTS_TAP_DROPPED,
    CHECKOUTS_STARTED,
    CHECKOUTS_COMPLETED,
    CHECKOUTS_FAILED,
    ORDER_TRANSITIONS,
    ORDER_TIME_TO_STATUS,
    PAYMENTS,
    RESERVATIONS,
    CARTS_ABANDONED,
    NOTIFICATIONS_SENT,
    NOTIFICATIONS_FAILED,
    OPERATOR_RECONCILES,
    OPERATOR_RECONCILE_FAILURES,
    OPERATOR_RECONCILE_DURATION,
    OPERATOR_STEP_DURATION,
    OPERATOR_PHASE,
    OPERATOR_MANAGED_OBJECTS,
    OPERATOR_LEADER,
];

/// The metric a Prometheus series name belongs to (`http_request_duration_seconds_bucket` →
/// `http_request_duration_seconds`).
pub fn by_series(series: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.series().iter().any(|s| s == series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_conventional() {
        let mut seen = BTreeSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", m.name);
            match m.kind {
                Kind::Counter => assert!(m.name.ends_with("_total"), "counter {} must end in _total", m.name),
                Kind::Gauge | Kind::Histogram => assert!(!m.name.ends_with("_total"), "{}", m.name),
            }
            if m.exporter == Exporter::Operator {
                assert!(m.name.starts_with("shop_operator_"), "{}", m.name);
            }
            for l in m.labels {
                assert!(!l.ends_with("id"), "{}: label {l} would be unbounded", m.name);
            }
            assert!(m.help.ends_with('.'), "{}: help is a sentence", m.name);
        }
    }

    #[test]
    fn series_of_a_histogram() {
        assert_eq!(by_series("http_request_duration_seconds_bucket"), Some(&HTTP_REQUEST_DURATION));
        assert_eq!(by_series("http_requests_total"), Some(&HTTP_REQUESTS));
        assert_eq!(by_series("http_request_duration_seconds"), None);
    }
}
