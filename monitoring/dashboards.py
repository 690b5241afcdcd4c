#!/usr/bin/env python3
"""The Grafana dashboards shipped with the charts, described once here and written as JSON.

    python3 monitoring/dashboards.py          write the dashboards
    python3 monitoring/dashboards.py --check  fail when a committed dashboard differs from this file

Dashboards (Grafana schema 39; a `datasource` variable of type prometheus and a `namespace`
variable, so one dashboard serves every ShopPlatform the Prometheus sees):
- charts/shop-operator/dashboards/overview.json  traffic, errors, latency per service; business rates
- charts/shop-operator/dashboards/checkout.json  the checkout saga: starts, outcomes, steps, payments, stock
- charts/shop-operator/dashboards/events.json    publishing, consuming, outbox and consumer lag, dead letters
- charts/shop-operator/dashboards/operator.json  reconciles, steps, phases, managed objects, leadership

Every metric a query names must be one the code exports (services/contract/src/metrics.rs);
`cargo test -p shop-contract` checks it.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DS = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'


def panel(title, targets, unit="short", kind="timeseries", description="", stack=False):
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [
            {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
            for i, (expr, legend) in enumerate(targets)
        ],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal" if stack else "none"}}
        p["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return p


def dashboard(uid, title, description, rows, variables=("namespace",)):
    panels = []
    y = 0
    for row in rows:
        width = 24 // len(row)
        height = 5 if all(p["type"] == "stat" for p in row) else 8
        for i, p in enumerate(row):
            p = dict(p)
            p["id"] = len(panels) + 1
            p["gridPos"] = {"x": i * width, "y": y, "w": width, "h": height}
            panels.append(p)
        y += height
    templating = [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0},
    ]
    if "namespace" in variables:
        templating.append({
            "name": "namespace", "label": "Namespace", "type": "query", "datasource": DS,
            "query": {"query": variables_query(uid), "refId": "namespace"},
            "definition": variables_query(uid), "includeAll": True, "multi": True, "allValue": ".*",
            "current": {}, "refresh": 2, "sort": 1, "hide": 0,
        })
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["shop-platform"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "utc",
        "templating": {"list": templating},
        "annotations": {"list": []},
        "panels": panels,
    }


def variables_query(uid):
    metric = "shop_operator_reconciles_total" if uid == "shop-operator" else "http_requests_total"
    return f"label_values({metric}, namespace)"


def rate(metric, by, extra="", window="$__rate_interval"):
    sel = f"{{{NS}{',' + extra if extra else ''}}}"
    return f"sum by ({by}) (rate({metric}{sel}[{window}]))"


OVERVIEW = dashboard(
    "shop-overview",
    "ShopPlatform / Overview",
    "Traffic, errors and latency of every service; checkouts and payments at a glance.",
    [
        [
            panel("Checkouts started (1h)", [(f"sum(increase(shop_checkouts_started_total{{{NS}}}[1h]))", "")], kind="stat"),
            panel("Checkouts completed (1h)", [(f"sum(increase(shop_checkouts_completed_total{{{NS}}}[1h]))", "")], kind="stat"),
            panel("Checkout success (1h)", [(
                f"sum(increase(shop_checkouts_completed_total{{{NS}}}[1h])) / sum(increase(shop_checkouts_started_total{{{NS}}}[1h]))",
                "")], unit="percentunit", kind="stat"),
            panel("Payments declined (1h)", [(f'sum(increase(shop_payments_total{{{NS},outcome="declined"}}[1h]))', "")], kind="stat"),
        ],
        [
            panel("Requests per second by service", [(rate("http_requests_total", "service"), "{{service}}")], unit="reqps", stack=True),
            panel("Server errors (5xx) by service", [(
                rate("http_requests_total", "service", 'status=~"5.."') + " / " + rate("http_requests_total", "service"),
                "{{service}}")], unit="percentunit"),
        ],
        [
            panel("Latency p95 by service", [(
                f"histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket{{{NS}}}[$__rate_interval])))",
                "{{service}}")], unit="s"),
            panel("Answers within 500 ms (SLO 99%)", [(
                f'sum by (service) (rate(http_request_duration_seconds_bucket{{{NS},le="0.5"}}[$__rate_interval])) '
                f"/ sum by (service) (rate(http_request_duration_seconds_count{{{NS}}}[$__rate_interval]))",
                "{{service}}")], unit="percentunit"),
        ],
        [
            panel("Calls between services that failed", [(rate("shop_client_failures_total", "service"), "to {{service}}")], unit="reqps"),
            panel("Rate limits decided without Redis", [(f"sum(rate(shop_gateway_ratelimit_fallback_total{{{NS}}}[$__rate_interval]))", "in memory")],
                  unit="ops", description="The gateway's shared rate-limit store failed; each replica limited on its own."),
            panel("Sign-ins under pressure", [
                (f"sum(rate(auth_password_hashing_busy_total{{{NS}}}[$__rate_interval]))", "refused: hashing busy"),
                (f"sum(rate(auth_throttle_redis_fallback_total{{{NS}}}[$__rate_interval]))", "throttle without Redis"),
                (f"sum(rate(auth_security_mail_failures_total{{{NS}}}[$__rate_interval]))", "security mail failed"),
            ], unit="ops"),
            panel("Carts abandoned per hour", [(f"sum(increase(shop_carts_abandoned_total{{{NS}}}[1h]))", "carts")]),
            panel("Notifications by channel", [
                (rate("shop_notifications_sent_total", "channel"), "sent {{channel}}"),
                (rate("shop_notifications_failed_total", "channel"), "failed {{channel}}"),
            ], unit="ops"),
        ],
    ],
)

CHECKOUT = dashboard(
    "shop-checkout",
    "ShopPlatform / Checkout saga",
    "The checkout from the order to the payment: starts, outcomes by reason, the time to each status, payments and stock reservations.",
    [
        [
            panel("Checkouts", [
                (f"sum(rate(shop_checkouts_started_total{{{NS}}}[$__rate_interval]))", "started"),
                (f"sum(rate(shop_checkouts_completed_total{{{NS}}}[$__rate_interval]))", "completed"),
                (f"sum(rate(shop_checkouts_failed_total{{{NS}}}[$__rate_interval]))", "failed"),
            ], unit="ops"),
            panel("Failed checkouts by reason", [(rate("shop_checkouts_failed_total", "reason"), "{{reason}}")], unit="ops", stack=True),
        ],
        [
            panel("Time from order to status (p50)", [(
                f"histogram_quantile(0.5, sum by (status, le) (rate(shop_order_time_to_status_seconds_bucket{{{NS}}}[$__rate_interval])))",
                "{{status}}")], unit="s"),
            panel("Time from order to status (p95)", [(
                f"histogram_quantile(0.95, sum by (status, le) (rate(shop_order_time_to_status_seconds_bucket{{{NS}}}[$__rate_interval])))",
                "{{status}}")], unit="s"),
        ],
        [
            panel("Order status changes", [(rate("shop_order_transitions_total", "to"), "{{to}}")], unit="ops", stack=True),
            panel("Payment outcomes", [(rate("shop_payments_total", "outcome, provider"), "{{outcome}} ({{provider}})")], unit="ops"),
            panel("Stock reservations", [(rate("shop_reservations_total", "outcome"), "{{outcome}}")], unit="ops"),
        ],
    ],
)

EVENTS = dashboard(
    "shop-events",
    "ShopPlatform / Events",
    "The event backbone: what is published and consumed, how far the outboxes and the consumer groups lag, what failed.",
    [
        [
            panel("Published by type", [(rate("events_published_total", "type"), "{{type}}")], unit="ops", stack=True),
            panel("Consumed by group", [(rate("events_consumed_total", "group"), "{{group}}")], unit="ops", stack=True),
        ],
        [
            panel("Outbox lag (oldest unsent event)", [(f"max by (service) (events_outbox_lag_seconds{{{NS}}})", "{{service}}")], unit="s"),
            panel("Consumer lag (Kafka)", [(f"sum by (group, topic) (events_consumer_lag{{{NS}}})", "{{group}} on {{topic}}")]),
        ],
        [
            panel("Handler failures", [(rate("events_failed_total", "group, type"), "{{group}}: {{type}}")], unit="ops"),
            panel("Dead-lettered", [(f"sum by (group, type) (increase(events_dead_lettered_total{{{NS}}}[1h]))", "{{group}}: {{type}}")]),
            panel("Outbox publish failures", [(rate("events_outbox_publish_failures_total", "service"), "{{service}}")], unit="ops"),
            panel("Skipped by the console's event browser", [(f"sum(increase(events_tap_dropped_total{{{NS}}}[1h]))", "per hour")]),
        ],
    ],
)

OPERATOR = dashboard(
    "shop-operator",
    "ShopPlatform / Operator",
    "The operator: reconcile passes and failures, the time of each step, the phase of each platform, the objects it manages, leadership.",
    [
        [
            panel("Platforms by phase", [(f"sum by (phase) (shop_operator_platform_phase{{{NS}}})", "{{phase}}")], kind="stat"),
            panel("Leading replicas", [(f"sum(shop_operator_leader{{{NS}}})", "")], kind="stat"),
        ],
        [
            panel("Reconciles and failures", [
                (f"sum(rate(shop_operator_reconciles_total{{{NS}}}[$__rate_interval]))", "reconciles"),
                (rate("shop_operator_reconcile_failures_total", "reason"), "failed: {{reason}}"),
            ], unit="ops"),
            panel("Reconcile duration p95", [(
                f"histogram_quantile(0.95, sum by (le) (rate(shop_operator_reconcile_duration_seconds_bucket{{{NS}}}[$__rate_interval])))",
                "pass")], unit="s"),
        ],
        [
            panel("Step duration p95", [(
                f"histogram_quantile(0.95, sum by (step, le) (rate(shop_operator_reconcile_step_duration_seconds_bucket{{{NS}}}[$__rate_interval])))",
                "{{step}}")], unit="s"),
            panel("Phase per platform", [(
                f'max by (platform, phase) (shop_operator_platform_phase{{{NS}}}) == 1', "{{platform}}: {{phase}}")], kind="table"),
            panel("Managed objects", [(f"sum by (platform, kind) (shop_operator_managed_objects{{{NS}}})", "{{platform}} {{kind}}")]),
        ],
    ],
)

FILES = {
    "charts/shop-operator/dashboards/overview.json": OVERVIEW,
    "charts/shop-operator/dashboards/checkout.json": CHECKOUT,
    "charts/shop-operator/dashboards/events.json": EVENTS,
    "charts/shop-operator/dashboards/operator.json": OPERATOR,
}


def main():
    check = sys.argv[1:] == ["--check"]
    stale = []
    for rel, board in FILES.items():
        path = ROOT / rel
        text = json.dumps(board, indent=2, sort_keys=True) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale dashboards (run python3 monitoring/dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
