"""Validates every ShopPlatform in the given YAML files against the CRD's openAPIV3Schema.

    python validate_shopplatforms.py <crd.yaml> <file.yaml>...

Same rules as scripts/validate-k8s: objects with fixed properties are closed (the API server
rejects unknown spec fields). Also fails when a file holds two objects with the same kind,
namespace and name (kubectl apply would silently keep one). Prints how many it checked.
"""
import sys

import jsonschema
import yaml


def close(s):
    if isinstance(s, dict):
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s:
            s["additionalProperties"] = False
        for v in s.values():
            close(v)
    elif isinstance(s, list):
        for v in s:
            close(v)


crd = yaml.safe_load(open(sys.argv[1]))
versions = {}
for v in crd["spec"]["versions"]:
    schema = v["schema"]["openAPIV3Schema"]
    close(schema["properties"]["spec"])
    versions[v["name"]] = schema

bad = checked = 0
for path in sys.argv[2:]:
    seen = set()
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        key = (doc.get("kind"), doc.get("metadata", {}).get("namespace"), doc.get("metadata", {}).get("name"))
        if key in seen:
            print(f"{path}: duplicate object {key}")
            bad += 1
        seen.add(key)
        if doc.get("kind") != "ShopPlatform":
            continue
        version = doc["apiVersion"].split("/")[1]
        schema = versions.get(version)
        if schema is None:
            print(f"{path}: unknown ShopPlatform version {version}")
            bad += 1
            continue
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        for e in errors:
            print(f"{path}: ShopPlatform {doc['metadata'].get('name')}: "
                  f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}")
        bad += len(errors)
        checked += 1
if bad:
    sys.exit(1)
print(f"{checked} ShopPlatform objects match the CRD schema")
