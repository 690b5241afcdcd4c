//! Server-side apply without writes when nothing changes. The operator reads the live object
//! and extracts the fields its field manager owns through `Apply` (the object's `managedFields`,
//! as client-go's `Extract…` functions do); only when they differ from the desired object is the
//! apply sent. A steady state therefore makes no write request at all, while anything that
//! changed a field the operator owns (another manager taking it over, a deleted field, a changed
//! value) differs and is applied again — and so is a field the operator no longer sets, which
//! server-side apply then removes.

use serde_json::{Map, Value};

/// The fields of `live` owned by `manager` through `Apply` on the main resource (or on
/// `subresource`), as a partial object; `None` when the manager owns nothing there.
pub fn extract_owned(live: &Value, manager: &str, subresource: Option<&str>) -> Option<Value> {
    let entries = live.pointer("/metadata/managedFields")?.as_array()?;
    let entry = entries.iter().find(|e| {
        e["manager"] == manager
            && e["operation"] == "Apply"
            && e.get("subresource").and_then(Value::as_str).filter(|s| !s.is_empty()) == subresource
    })?;
    let fields = entry.get("fieldsV1")?.as_object()?;
    Some(extract(fields, live))
}

/// Walks a `fieldsV1` set (`f:<field>`, `k:<key json>`, `v:<value json>`, `i:<index>`, `.`)
/// together with the live value.
fn extract(fields: &Map<String, Value>, live: &Value) -> Value {
    match live {
        Value::Object(obj) => {
            let mut out = Map::new();
            for (key, sub) in fields {
                let Some(name) = key.strip_prefix("f:") else { continue };
                let Some(value) = obj.get(name) else { continue };
                out.insert(name.to_string(), descend(sub, value));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let matched = fields.iter().find(|(key, _)| list_key_matches(key, i, item));
                if let Some((_, sub)) = matched {
                    out.push(descend(sub, item));
                }
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

/// A leaf (no children but `.`) is owned whole; otherwise only its owned children.
fn descend(sub: &Value, value: &Value) -> Value {
    match sub.as_object() {
        Some(children) if children.keys().any(|k| k != ".") => extract(children, value),
        _ => value.clone(),
    }
}

fn list_key_matches(key: &str, index: usize, item: &Value) -> bool {
    if let Some(k) = key.strip_prefix("k:") {
        let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(k) else { return false };
        wanted.iter().all(|(field, v)| item.get(field) == Some(v))
    } else if let Some(v) = key.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|v| &v == item)
    } else if let Some(i) = key.strip_prefix("i:") {
        i.parse::<usize>() == Ok(index)
    } else {
        false
    }
}

/// Whether applying `desired` (the apply configuration, with `apiVersion`, `kind`, `metadata`)
/// would leave the fields owned in `owned` (from [`extract_owned`]) as they are: equal values,
/// nothing owned that is no longer desired. Values the API server normalises are compared by
/// meaning: resource quantities (`0.5` = `500m`), empty objects and lists (= absent).
pub fn unchanged(desired: &Value, owned: &Value) -> bool {
    let mut desired = desired.clone();
    if let Some(obj) = desired.as_object_mut() {
        // Identity, not owned fields.
        obj.remove("apiVersion");
        obj.remove("kind");
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            for k in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "managedFields",
                "creationTimestamp",
                "generation",
            ] {
                meta.remove(k);
            }
        }
        obj.remove("status");
    }
    let mut owned = owned.clone();
    if let Some(obj) = owned.as_object_mut() {
        obj.remove("status");
    }
    equal(&desired, &owned, None)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Keys under which values are Kubernetes quantities.
fn quantity_context(key: Option<&str>) -> bool {
    matches!(key, Some("requests" | "limits" | "sizeLimit" | "storage" | "size"))
}

fn equal(a: &Value, b: &Value, parent: Option<&str>) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().all(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => {
                    let ctx = if quantity_context(parent) { parent } else { Some(k.as_str()) };
                    equal(p, q, ctx)
                }
                (Some(v), None) | (None, Some(v)) => is_empty(v),
                (None, None) => true,
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q, parent))
        }
        (Value::String(p), Value::String(q)) if p != q && quantity_context(parent) => {
            match (quantity(p), quantity(q)) {
                (Some(m), Some(n)) => (m - n).abs() <= f64::EPSILON * m.abs().max(1.0),
                _ => false,
            }
        }
        (Value::Number(p), Value::Number(q)) => p.as_f64() == q.as_f64(),
        (Value::Null, v) | (v, Value::Null) => is_empty(v),
        (p, q) => p == q,
    }
}

/// A Kubernetes quantity as a number (`500m` → 0.5, `1Gi` → 1073741824, `1e3` → 1000).
pub fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split =
        s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "d", "namespace": "n", "labels": {"a": "1", "other": "x"},
                "managedFields": [
                    {"manager": "shop-operator", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}},
                                  "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                                      "k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                                          "f:resources": {"f:requests": {"f:cpu": {}}}}}}}}}},
                    {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:other": {}}}}},
                    {"manager": "shop-operator", "operation": "Apply", "subresource": "status", "fieldsV1": {"f:status": {}}},
                ],
            },
            "spec": {
                "replicas": 2, "revisionHistoryLimit": 10,
                "template": {"spec": {"containers": [
                    {"name": "c", "image": "i:1", "args": ["serve"], "terminationMessagePath": "/dev/termination-log",
                     "resources": {"requests": {"cpu": "500m"}}},
                    {"name": "sidecar", "image": "s"},
                ]}},
            },
            "status": {"replicas": 2},
        })
    }

    fn desired() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "labels": {"a": "1"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "c", "image": "i:1", "args": ["serve"], "resources": {"requests": {"cpu": "0.5"}}},
            ]}}},
        })
    }

    #[test]
    fn extracts_only_the_managers_apply_fields() {
        let owned = extract_owned(&live(), "shop-operator", None).unwrap();
        assert_eq!(
            owned,
            json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "c", "image": "i:1", "args": ["serve"], "resources": {"requests": {"cpu": "500m"}}}]}}}})
        );
        assert_eq!(
            extract_owned(&live(), "shop-operator", Some("status")).unwrap(),
            json!({"status": {"replicas": 2}})
        );
        assert!(extract_owned(&live(), "someone-else", None).is_none());
    }

    #[test]
    fn equal_desired_state_needs_no_apply() {
        let owned = extract_owned(&live(), "shop-operator", None).unwrap();
        assert!(unchanged(&desired(), &owned), "0.5 CPU is 500m");
    }

    #[test]
    fn a_changed_added_or_dropped_field_needs_an_apply() {
        let owned = extract_owned(&live(), "shop-operator", None).unwrap();
        let mut changed = desired();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("i:2");
        assert!(!unchanged(&changed, &owned));
        let mut added = desired();
        added["spec"]["minReadySeconds"] = json!(5);
        assert!(!unchanged(&added, &owned));
        // No longer setting replicas: the apply must run so that the field is released.
        let mut dropped = desired();
        dropped["spec"].as_object_mut().unwrap().remove("replicas");
        assert!(!unchanged(&dropped, &owned));
    }

    #[test]
    fn sets_and_indexed_lists_are_matched() {
        let live = json!({"metadata": {"finalizers": ["a", "b"], "managedFields": [
            {"manager": "m", "operation": "Apply", "fieldsV1": {"f:metadata": {"f:finalizers": {"v:\"b\"": {}}}, "f:spec": {"f:x": {"i:1": {}}}}}]},
            "spec": {"x": [1, 2, 3]}});
        assert_eq!(
            extract_owned(&live, "m", None).unwrap(),
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"x": [2]}})
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity("500m"), Some(0.5));
        assert_eq!(quantity("1Gi"), Some(1073741824.0));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("128Mi"), quantity("134217728"));
        assert_eq!(quantity("abc"), None);
        assert!(equal(&json!({"limits": {"memory": "1Gi"}}), &json!({"limits": {"memory": "1024Mi"}}), None));
        assert!(!equal(&json!({"env": "1"}), &json!({"env": "1.0"}), None), "only quantities are normalised");
    }
}
