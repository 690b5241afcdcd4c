"""Copies and mirrors that must not drift (run from the repository root by scripts/check-packaging).

    python consistency.py <rendered operator chart (defaults).yaml>

- the chart's CRD is byte-for-byte crds/shopplatforms.platform.shop.yaml;
- manifests/overlays/<o>/shopplatform.yaml is byte-for-byte manifests/samples/<o>.yaml;
- dev/ctlptl.yaml's kindV1Alpha4Cluster is dev/kind.yaml;
- the chart's ClusterRole rules equal manifests/operator/rbac.yaml's;
- the chart's operator Deployment keeps ADR 0012 (several replicas with leader election,
  RollingUpdate, a PodDisruptionBudget) and the pod security of manifests/operator/deployment.yaml,
  which runs the same way.
"""
import sys

import yaml

problems = []


def same_bytes(copy, source):
    if open(copy, "rb").read() != open(source, "rb").read():
        problems.append(f"{copy} differs from {source}: cp {source} {copy}")


def docs(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]


def one(objs, kind, where):
    found = [o for o in objs if o["kind"] == kind]
    if len(found) != 1:
        problems.append(f"{where}: expected one {kind}, found {len(found)}")
        return {}
    return found[0]


same_bytes("charts/shop-operator/crds/shopplatforms.platform.shop.yaml", "crds/shopplatforms.platform.shop.yaml")
for overlay in ("dev", "production"):
    same_bytes(f"manifests/overlays/{overlay}/shopplatform.yaml", f"manifests/samples/{overlay}.yaml")

kind_cfg = yaml.safe_load(open("dev/kind.yaml"))
clusters = [d for d in docs("dev/ctlptl.yaml") if d["kind"] == "Cluster"]
if not clusters or clusters[0].get("kindV1Alpha4Cluster") != kind_cfg:
    problems.append("dev/ctlptl.yaml kindV1Alpha4Cluster differs from dev/kind.yaml")

rendered = docs(sys.argv[1])
plain = docs("manifests/operator/rbac.yaml") + docs("manifests/operator/deployment.yaml")
if one(rendered, "ClusterRole", "chart").get("rules") != one(plain, "ClusterRole", "manifests/operator").get("rules"):
    problems.append("charts/shop-operator ClusterRole rules differ from manifests/operator/rbac.yaml")

chart_dep, plain_dep = one(rendered, "Deployment", "chart"), one(plain, "Deployment", "manifests/operator")
if chart_dep and plain_dep:
    cs, ps = chart_dep["spec"], plain_dep["spec"]
    def elected(spec):
        env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0].get("env", [])}
        return env.get("SHOP_OPERATOR_LEADER_ELECTION") == "true"
    for where, spec in (("chart", cs), ("manifests/operator", ps)):
        if spec.get("replicas", 1) < 2 or spec["strategy"].get("type") != "RollingUpdate" or not elected(spec):
            problems.append(f"{where} operator Deployment: must run 2+ replicas, RollingUpdate, with leader election (ADR 0012)")
    one(rendered, "PodDisruptionBudget", "chart")
    one(plain, "PodDisruptionBudget", "manifests/operator")
    if cs["template"]["spec"]["securityContext"] != ps["template"]["spec"]["securityContext"]:
        problems.append("chart operator pod securityContext differs from manifests/operator/deployment.yaml")
    cc, pc = cs["template"]["spec"]["containers"][0], ps["template"]["spec"]["containers"][0]
    for key in ("securityContext", "ports", "livenessProbe", "readinessProbe", "resources"):
        if cc.get(key) != pc.get(key):
            problems.append(f"chart operator container {key} differs from manifests/operator/deployment.yaml")

for p in problems:
    print(f"consistency: {p}")
if problems:
    sys.exit(1)
print("consistency: CRD copy, overlay ShopPlatforms, kind config, RBAC rules, operator Deployment (HA) in step")
