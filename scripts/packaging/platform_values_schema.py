"""Prints charts/shop-platform/values.schema.json, derived from the ShopPlatform CRD.

The platform chart's values are the ShopPlatform spec fields at the top level (same names, same
constraints) plus a few chart-only keys. Deriving the schema keeps the chart from drifting from
the CRD: scripts/check-packaging regenerates it and fails when the committed file differs.
Regenerate with:

    python3 scripts/packaging/platform_values_schema.py crds/shopplatforms.platform.shop.yaml \
        > charts/shop-platform/values.schema.json

OpenAPI → JSON Schema: `nullable: true` becomes a `null` alternative, Kubernetes extensions
(`x-kubernetes-*`, CEL rules: the API server enforces those) and `format`/`default` are
dropped, and every object with fixed properties is closed (`additionalProperties: false`), as
the API server's strict field validation would do.
"""
import json
import sys

import yaml

CHART_KEYS = {
    "nameOverride": {
        "description": "Name of the ShopPlatform (and prefix of everything the operator creates); "
        "empty means the release name.",
        "type": "string",
        "maxLength": 40,
        "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
    },
    "labels": {
        "description": "Extra labels on the ShopPlatform.",
        "type": "object",
        "additionalProperties": {"type": "string"},
    },
    "annotations": {
        "description": "Extra annotations on the ShopPlatform.",
        "type": "object",
        "additionalProperties": {"type": "string"},
    },
    "keepOnUninstall": {
        "description": "Keep the ShopPlatform (and so the running shop) when the release is "
        "uninstalled (helm.sh/resource-policy: keep).",
        "type": "boolean",
    },
}


def convert(s):
    if isinstance(s, list):
        return [convert(v) for v in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k.startswith("x-kubernetes-") or k in ("format", "default", "nullable"):
            continue
        if k == "properties":
            out[k] = {name: convert(sub) for name, sub in v.items()}
        elif k in ("items", "additionalProperties") and isinstance(v, dict):
            out[k] = convert(v)
        elif k in ("minimum", "maximum") and isinstance(v, float) and v.is_integer():
            out[k] = int(v)
        else:
            out[k] = convert(v)
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def main(crd_path):
    crd = yaml.safe_load(open(crd_path))
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = {name: convert(sub) for name, sub in spec["properties"].items()}
    # `version` is required by the CRD; the chart defaults it to its appVersion.
    props["version"] = dict(props["version"])
    props["version"]["description"] += " Empty means the chart's appVersion."
    props["version"]["pattern"] = "^([A-Za-z0-9_][A-Za-z0-9_.-]*)?$"
    props["version"].pop("minLength", None)
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "shop-platform chart values (generated from the ShopPlatform CRD "
        f"{crd['spec']['group']}/{version['name']} by scripts/packaging/platform_values_schema.py)",
        "type": "object",
        "additionalProperties": False,
        "properties": dict(sorted({**props, **CHART_KEYS}.items())),
    }
    json.dump(schema, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
