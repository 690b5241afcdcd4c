"""Evaluates the Tiltfile with stubbed Tilt builtins (PyPI starlark-go) and checks what it does.

    python check_tiltfile.py <Tiltfile> <helm binary> <out.yaml>

The stubs accept exactly the parameters of Tilt's builtins (a misspelt keyword fails), record each
call, and return markers. Then the checks: both images built from existing Dockerfile targets;
every `helm(...)` call rendered for real with the recorded arguments (objects written to
<out.yaml> for schema validation by the caller); Tilt's image injection would find both images;
every k8s_resource names a real workload and every object selector matches exactly one object;
resource_deps name known resources; the gateway's Service is port-forwarded; the allowed
kube context is the ctlptl cluster's.
"""
import os
import re
import subprocess
import sys

import starlark_go
import yaml

TILTFILE, HELM, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
ROOT = os.path.dirname(os.path.abspath(TILTFILE))
calls = []
problems = []

# name: (positional parameters, required count, keyword-only parameters) — Tilt's API.
SIGNATURES = {
    "docker_build": (["ref", "context", "build_args", "dockerfile", "dockerfile_contents", "live_update",
                      "match_in_env_vars", "ignore", "only", "entrypoint", "target", "ssh", "network",
                      "secret", "extra_tag", "container_args", "cache_from", "pull", "platform",
                      "extra_hosts"], 2, []),
    "k8s_yaml": (["yaml", "allow_duplicates"], 1, []),
    "helm": (["pathToChartDir", "name", "namespace", "values", "set", "kube_version", "skip_crds"], 1, []),
    "k8s_resource": (["workload", "new_name", "port_forwards", "extra_pod_selectors", "trigger_mode",
                      "resource_deps", "objects", "auto_init", "pod_readiness", "links", "labels",
                      "discovery_strategy"], 0, []),
    "k8s_kind": (["kind", "api_version"], 1, ["image_json_path", "image_object", "pod_readiness"]),
    "local_resource": (["name", "cmd", "deps", "trigger_mode", "resource_deps", "ignore", "auto_init",
                        "serve_cmd", "cmd_bat", "serve_cmd_bat", "allow_parallel", "links", "tags", "env",
                        "serve_env", "readiness_probe", "dir", "serve_dir", "labels"], 1, []),
    "link": (["url", "name"], 1, []),
    "blob": (["contents"], 1, []),
    "allow_k8s_contexts": (["contexts"], 1, []),
    "update_settings": (["max_parallel_updates", "k8s_upsert_timeout_secs", "suppress_unused_image_warnings"],
                        0, []),
    "watch_file": (["file_name"], 1, []),
    "default_registry": (["host", "host_from_cluster", "single_name"], 1, []),
}


def stub(name):
    positional, required, kwonly = SIGNATURES[name]

    def f(*args, **kwargs):
        if len(args) > len(positional):
            raise TypeError(f"{name}: got {len(args)} positional arguments, takes at most {len(positional)}")
        bound = dict(zip(positional, args))
        for k, v in kwargs.items():
            if k not in positional and k not in kwonly:
                raise TypeError(f"{name}: unexpected keyword argument {k!r}")
            if k in bound:
                raise TypeError(f"{name}: got multiple values for {k!r}")
            bound[k] = v
        missing = [p for p in positional[:required] if p not in bound]
        if missing:
            raise TypeError(f"{name}: missing {', '.join(missing)}")
        calls.append((name, bound))
        index = len(calls) - 1
        if name == "helm":
            return {"__tilt__": "helm", "call": index}
        if name == "blob":
            return {"__tilt__": "blob", "call": index}
        if name == "link":
            return {"__tilt__": "link", "url": bound["url"], "name": bound.get("name", "")}
        return None

    return f


starlark_go.configure_starlark(allow_set=True, allow_global_reassign=True, allow_recursion=True)
sl = starlark_go.Starlark()
# starlark-go 1.0.1 crashes calling a Python function without keyword arguments, so each builtin
# is a Starlark wrapper that calls one Python recorder with keyword arguments only.
STUBS = {name: stub(name) for name in SIGNATURES}


def tilt_builtin(name, args, kwargs):
    return STUBS[name](*args, **kwargs)


sl.set(tilt_builtin=tilt_builtin, TRIGGER_MODE_AUTO=0, TRIGGER_MODE_MANUAL=1)
sl.exec("".join(
    f"def {name}(*args, **kwargs):\n    return tilt_builtin(name = {name!r}, args = args, kwargs = kwargs)\n"
    for name in SIGNATURES), filename="tilt-stubs")
try:
    sl.exec(open(TILTFILE).read(), filename="Tiltfile", print=lambda s: None)
except starlark_go.StarlarkError as e:
    print(f"Tiltfile does not evaluate: {e}")
    sys.exit(1)


def called(name):
    return [b for n, b in calls if n == name]


def check(cond, message):
    if not cond:
        problems.append(message)


# --- images: both built from existing Dockerfile targets --------------------------------------------
builds = {b["ref"]: b for b in called("docker_build")}
check(set(builds) >= {"shop", "shop-operator"}, f"docker_build must build shop and shop-operator, got {sorted(builds)}")
for ref, b in builds.items():
    dockerfile = os.path.join(ROOT, b.get("context", "."), b.get("dockerfile", "Dockerfile"))
    if not os.path.exists(dockerfile):
        problems.append(f"docker_build({ref!r}): no {dockerfile}")
        continue
    stages = re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", open(dockerfile).read())
    target = b.get("target", "")
    check(not target or target in stages, f"docker_build({ref!r}): target {target!r} is not a stage of {dockerfile} {stages}")
    for p in b.get("only", []):
        check(os.path.exists(os.path.join(ROOT, b["context"], p)), f"docker_build({ref!r}): only= names missing path {p!r}")
check(builds.get("shop", {}).get("target") == "shop", "the shop image must build Dockerfile target 'shop'")
check(builds.get("shop-operator", {}).get("target") == "operator", "the operator image must build Dockerfile target 'operator'")

# --- k8s_yaml: render every helm() for real, parse every blob -----------------------------------------
objects = []
for y in called("k8s_yaml"):
    items = y["yaml"] if isinstance(y["yaml"], list) else [y["yaml"]]
    for item in items:
        if isinstance(item, str):
            path = os.path.join(ROOT, item)
            check(os.path.exists(path), f"k8s_yaml({item!r}): no such file")
            text = open(path).read() if os.path.exists(path) else ""
        elif item.get("__tilt__") == "blob":
            text = calls[item["call"]][1]["contents"]
        elif item.get("__tilt__") == "helm":
            h = calls[item["call"]][1]
            chart = os.path.join(ROOT, h["pathToChartDir"])
            cmd = [HELM, "template", h.get("name") or "chart", chart, "--include-crds"]
            if h.get("namespace"):
                cmd += ["--namespace", h["namespace"]]
            for v in h.get("values", []):
                cmd += ["--values", os.path.join(ROOT, v)]
            for s in h.get("set", []):
                cmd += ["--set", s]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"helm({h['pathToChartDir']!r}) as the Tiltfile calls it fails: {r.stderr.strip()}")
                continue
            text = r.stdout
        else:
            problems.append(f"k8s_yaml: unexpected argument {item!r}")
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {})
                objects.append(doc)
with open(OUT, "w") as out:
    yaml.safe_dump_all(objects, out, sort_keys=False)
kinds = {}
for o in objects:
    kinds.setdefault(o["kind"], []).append(o)

# --- image injection: Tilt must find each built image in the objects --------------------------------
custom = {k["kind"]: k for k in called("k8s_kind")}
found = set()
for o in objects:
    for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        found.add(re.split(r"[:@]", c["image"])[0])
    io = custom.get(o["kind"], {}).get("image_object")
    if io:
        check(io.get("json_path") == "{.spec}", f"k8s_kind({o['kind']}): only json_path {{.spec}} is checked here")
        found.add(o["spec"].get(io["repo_field"]))
        check(io["tag_field"] in o["spec"], f"{o['kind']} {o['metadata']['name']}: no spec.{io['tag_field']}")
for ref in builds:
    check(ref in found, f"docker_build({ref!r}): no object uses that image, Tilt would not deploy it (found {sorted(found)})")

# --- resources ---------------------------------------------------------------------------------------
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"} | set(custom)
workloads = {o["metadata"]["name"]: o for o in objects if o["kind"] in WORKLOADS}
resources = set(workloads) | {b["name"] for b in called("local_resource")}
for r in called("k8s_resource"):
    w = r.get("workload", "")
    check(w in workloads, f"k8s_resource({w!r}): no workload of that name (workloads: {sorted(workloads)})")
    for sel in r.get("objects", []):
        parts = sel.split(":")
        matches = [o for o in objects
                   if o["metadata"]["name"] == parts[0]
                   and (len(parts) < 2 or o["kind"].lower() == parts[1].lower())
                   and (len(parts) < 3 or o["metadata"].get("namespace") == parts[2])]
        check(len(matches) == 1, f"k8s_resource({w!r}): object selector {sel!r} matches {len(matches)} objects")
for r in called("k8s_resource") + called("local_resource"):
    for dep in r.get("resource_deps", []):
        check(dep in resources, f"resource_deps names unknown resource {dep!r} (known: {sorted(resources)})")

# --- port-forwards: the gateway's Service, the operator's metrics -----------------------------------
platforms = kinds.get("ShopPlatform", [])
check(len(platforms) == 1, f"expected one ShopPlatform, got {len(platforms)}")
for p in platforms:
    gateway = f"svc/{p['metadata']['name']}-gateway"
    ns = p["metadata"].get("namespace", "")
    forwards = [b for b in called("local_resource") if "port-forward" in b.get("serve_cmd", "") and gateway in b["serve_cmd"]]
    check(forwards, f"no local_resource port-forwards {gateway} (the operator's gateway Service)")
    for b in forwards:
        check(f"-n {ns}" in b["serve_cmd"], f"the gateway port-forward does not use namespace {ns}")
        check(":80" in b["serve_cmd"], "the gateway port-forward must target the Service port 80")
        check(ns and any(n["metadata"]["name"] == ns for n in kinds.get("Namespace", [])),
              f"namespace {ns} of the ShopPlatform is not created by the Tiltfile")
op = [r for r in called("k8s_resource") if r.get("workload") == "shop-operator"]
check(op and any(pf.endswith(":8080") for pf in op[0].get("port_forwards", [])), "the operator's port 8080 is not forwarded")

# --- kube context: the ctlptl cluster ------------------------------------------------------------
ctlptl = [d for d in yaml.safe_load_all(open(os.path.join(ROOT, "dev/ctlptl.yaml"))) if d and d.get("kind") == "Cluster"]
contexts = [c for a in called("allow_k8s_contexts") for c in (a["contexts"] if isinstance(a["contexts"], list) else [a["contexts"]])]
check(ctlptl and ctlptl[0]["name"] in contexts, f"allow_k8s_contexts {contexts} lacks the ctlptl cluster {ctlptl and ctlptl[0]['name']}")

if problems:
    for p in problems:
        print(f"Tiltfile: {p}")
    sys.exit(1)
print(f"Tiltfile: ok ({len(calls)} builtin calls; images {sorted(builds)}; {len(objects)} objects; "
      f"resources {sorted(resources)})")
