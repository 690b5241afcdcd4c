//! The dashboards and alert rules shipped with the charts query only metrics the code exports
//! (`contract::metrics::ALL`), so a renamed metric cannot silently empty a panel or an alert.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use contract::metrics::{by_series, Exporter, ALL};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// PromQL functions, aggregations and keywords (everything else a query names is a series).
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "group",
    "count_values",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "histogram_quantile",
    "abs",
    "absent",
    "absent_over_time",
    "clamp_min",
    "clamp_max",
    "vector",
    "scalar",
    "time",
    "label_replace",
    "label_join",
    "sort",
    "sort_desc",
    "max_over_time",
    "min_over_time",
    "avg_over_time",
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "humanize",
    "humanizePercentage",
    "humanizeDuration",
];

/// The series names in a PromQL expression: identifiers outside label matchers, ranges,
/// `by (...)` lists, strings and Grafana variables, that are not PromQL words.
fn series_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut skip_group = false; // the next `(...)` is a label list (after by/without/on/ignoring)
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' | '"' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    _ => '"',
                };
                i += 1;
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' && close != '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_group => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_group = false;
                i += 1;
            }
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                skip_group = false;
                if matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                ) {
                    skip_group = true;
                } else if !PROMQL_WORDS.contains(&word.as_str()) {
                    out.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number (with an exponent or a duration unit): not a name.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

fn dashboard_exprs(path: &Path) -> Vec<String> {
    let board: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for p in board["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    for v in board["templating"]["list"].as_array().expect("templating") {
        // `label_values(<metric>, <label>)`: the metric is the first argument.
        if let Some(q) = v["definition"].as_str() {
            let inner = q.trim_start_matches("label_values(").trim_end_matches(')');
            exprs.push(inner.split(',').next().unwrap_or_default().to_string());
        }
    }
    exprs
}

fn rule_exprs(path: &Path) -> Vec<String> {
    let rules: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for g in rules["groups"].as_sequence().expect("groups") {
        for r in g["rules"].as_sequence().expect("rules") {
            exprs.push(r["expr"].as_str().expect("expr").to_string());
        }
    }
    exprs
}

fn check(files: &[(&str, Exporter)]) -> BTreeSet<&'static str> {
    let mut used = BTreeSet::new();
    for (file, exporter) in files {
        let path = root().join(file);
        let exprs = if file.ends_with(".json") { dashboard_exprs(&path) } else { rule_exprs(&path) };
        assert!(!exprs.is_empty(), "{file} has no queries");
        for expr in exprs {
            for series in series_in(&expr) {
                let metric = by_series(&series).unwrap_or_else(|| {
                    panic!("{file}: `{series}` is not a metric the code exports (in `{expr}`)")
                });
                assert_eq!(
                    metric.exporter, *exporter,
                    "{file}: {series} is exported by the {:?}",
                    metric.exporter
                );
                used.insert(metric.name);
            }
        }
    }
    used
}

#[test]
fn dashboards_and_alerts_query_only_exported_metrics() {
    let platform = check(&[
        ("charts/shop-operator/dashboards/overview.json", Exporter::Services),
        ("charts/shop-operator/dashboards/checkout.json", Exporter::Services),
        ("charts/shop-operator/dashboards/events.json", Exporter::Services),
        ("charts/shop-operator/files/platform-alerts.yaml", Exporter::Services),
    ]);
    let operator = check(&[
        ("charts/shop-operator/dashboards/operator.json", Exporter::Operator),
        ("charts/shop-operator/files/operator-alerts.yaml", Exporter::Operator),
    ]);
    // Every metric is on some dashboard.
    let unused: Vec<_> =
        ALL.iter().map(|m| m.name).filter(|n| !platform.contains(n) && !operator.contains(n)).collect();
    assert!(unused.is_empty(), "metrics on no dashboard: {unused:?}");
}

#[test]
fn every_metric_is_documented() {
    let ops = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    for m in ALL {
        assert!(ops.contains(&format!("`{}`", m.name)), "docs/operations.md does not list `{}`", m.name);
    }
}

#[test]
fn the_expression_reader_finds_series_and_skips_the_rest() {
    let s = series_in(
        r#"sum by (namespace, service) (rate(http_requests_total{status=~"5..", x="a{b}"}[5m])) / on (service) group_left sum(rate(http_requests_total[$__rate_interval])) > 14.4 * 0.01 and absent(shop_operator_leader)"#,
    );
    assert_eq!(s, BTreeSet::from(["http_requests_total".to_string(), "shop_operator_leader".to_string()]));
}
