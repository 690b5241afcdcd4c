#!/usr/bin/env bash
# Builds the control-plane binary of tools/k8s into OUT_DIR/bin:
#
#   tools/k8s/build.sh OUT_DIR
#
#   OUT_DIR/bin/k8s-control-plane          the multicall binary (main.go)
#   OUT_DIR/bin/etcd                       symlinks to it: the name picks the component
#   OUT_DIR/bin/kube-apiserver
#   OUT_DIR/bin/kube-controller-manager
#
# `scripts/tools install k8s` runs this into a fresh directory of the tool cache, with GOMODCACHE
# and GOCACHE under $SHOP_CI_CACHE/go (scripts/lib/tools.sh, tool_build_k8s). Run by hand it uses
# the go command's own environment.
set -euo pipefail
out="${1:?usage: tools/k8s/build.sh OUT_DIR}"
mkdir -p "$out/bin"
out="$(cd "$out" && pwd)"
cd "$(dirname "$0")"

release="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' go.mod)"
[[ "$release" =~ ^v([0-9]+)\.([0-9]+)\. ]] || { echo "build: no k8s.io/kubernetes release in go.mod" >&2; exit 1; }

major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"

# -mod=readonly: go.mod and go.sum are used as committed (a build never rewrites them; a stale
# go.sum fails here, fixed by tools/k8s/bump.sh). -modcacherw: the module cache stays deletable
# without chmod (scripts/test --cold removes its whole cache). GOTOOLCHAIN=local: never download
# another Go; a release that needs a newer Go than the installed one fails with a clear error.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw -buildvcs=false" CGO_ENABLED=0

# The build date is the release's publication time (from the module proxy), not the time of the
# build, so two builds of one pin give the same bytes.
build_date="$(go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)" || true

# A library build of Kubernetes reports v0.0.0-master as its version (upstream sets it with
# -ldflags -X in hack/lib/version.sh): set the same variables so /version, `kubectl version` and
# the binary's --version name the pinned release.
ldflags=(-s -w)   # no symbol table, no DWARF debug information: a smaller binary
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=(-X "$pkg.gitVersion=$release"
            -X "$pkg.gitMajor=$major"
            -X "$pkg.gitMinor=$minor"
            -X "$pkg.gitTreeState=clean"
            -X "$pkg.buildDate=${build_date:-1970-01-01T00:00:00Z}")
done

go build -trimpath -ldflags "${ldflags[*]}" -o "$out/bin/k8s-control-plane" .
for name in etcd kube-apiserver kube-controller-manager; do
  ln -sfn k8s-control-plane "$out/bin/$name"
done
