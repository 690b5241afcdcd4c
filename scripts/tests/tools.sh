#!/usr/bin/env bash
# Tests of the tool installer (scripts/lib/tools.sh, scripts/tools), run by scripts/test:
#   1. two `scripts/tools install` of real tools at once into one empty cache leave one working
#      install per tool and no leftovers;
#   2. with a scripted tool: four concurrent installs build it exactly once; a build that fails
#      leaves nothing behind; a broken install is replaced; a missing tool makes `tool_require`
#      fail naming the command that installs it.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "tools test: FAILED: $*" >&2; exit 1; }
CACHE="$(mktemp -d "${TMPDIR:-/tmp}/shop-tools-test.XXXXXX")"
trap 'rm -rf "$CACHE"' EXIT

# --- 1. real tools, two installers at once -------------------------------------------------------
t0=$SECONDS
SHOP_CI_CACHE="$CACHE/real" scripts/tools install tansu smtp > "$CACHE/a.log" 2>&1 & a=$!
SHOP_CI_CACHE="$CACHE/real" scripts/tools install tansu smtp > "$CACHE/b.log" 2>&1 & b=$!
wait "$a" || { cat "$CACHE/a.log" >&2; fail "the first concurrent install failed"; }
wait "$b" || { cat "$CACHE/b.log" >&2; fail "the second concurrent install failed"; }
SHOP_CI_CACHE="$CACHE/real" scripts/tools check tansu smtp || fail "tools not usable after two concurrent installs"
leftovers="$(find "$CACHE/real" -maxdepth 3 \( -name '*.tmp.*' -o -name '*.stale.*' \) | wc -l)"
[ "$leftovers" = 0 ] || fail "temporary directories left behind: $(find "$CACHE/real" -maxdepth 3 -name '*.tmp.*')"
installs="$(cat "$CACHE/a.log" "$CACHE/b.log" | grep -c '^tools: installing' || true)"
[ "$installs" = 2 ] || fail "expected 2 installs (one per tool) across both runs, saw $installs"
# The installed tools run: the broker answers --version, the SMTP venv's python imports aiosmtpd.
SHOP_CI_CACHE="$CACHE/real" bash -c 'source scripts/lib/tools.sh; "$(tool_path tansu)/bin/tansu" --version >/dev/null' \
  || fail "the installed broker does not run"
py="$(SHOP_CI_CACHE="$CACHE/real" scripts/smtp-test-server python)" || fail "smtp-test-server python"
"$py" -c 'import aiosmtpd' || fail "the installed SMTP venv cannot import aiosmtpd"
echo "tools test: two concurrent installers → one working install each of tansu and smtp ($((SECONDS - t0))s)"

# --- 2. a scripted tool --------------------------------------------------------------------------
export SHOP_CI_CACHE="$CACHE/fake"
# shellcheck source=../lib/tools.sh
source scripts/lib/tools.sh
BUILDS="$CACHE/builds"
tool_dir_fake() { echo "$SHOP_CI_CACHE/fake-1.0"; }
tool_check_fake() { [ "$(cat "$1/ok" 2>/dev/null)" = yes ]; }
tool_build_fake() {
  echo build >> "$BUILDS"
  [ -n "${FAKE_FAIL:-}" ] && { echo half > "$1/ok"; return 1; }
  sleep 1
  echo yes > "$1/ok"
}

if tool_require fake 2> "$CACHE/require.log"; then fail "tool_require succeeded for a missing tool"; fi
grep -q 'scripts/tools install fake' "$CACHE/require.log" || fail "tool_require does not name the install command"

FAKE_FAIL=1 tool_install fake 2>/dev/null && fail "a failing build was reported as installed"
[ ! -e "$(tool_dir_fake)" ] || fail "a failing build left its destination behind"
[ -z "$(ls -d "$(tool_dir_fake)".tmp.* 2>/dev/null)" ] || fail "a failing build left its temporary directory"

: > "$BUILDS"
for _ in 1 2 3 4; do tool_install fake 2>/dev/null & done
wait
[ "$(wc -l < "$BUILDS")" = 1 ] || fail "four concurrent installs built the tool $(wc -l < "$BUILDS") times"
tool_ok fake || fail "the tool does not pass its check after concurrent installs"
[ "$(tool_require fake)" = "$(tool_dir_fake)" ] || fail "tool_require prints the wrong path"

echo no > "$(tool_dir_fake)/ok"          # the install breaks
: > "$BUILDS"
tool_install fake 2>/dev/null || fail "reinstalling over a broken install failed"
tool_ok fake && [ "$(wc -l < "$BUILDS")" = 1 ] || fail "a broken install was not rebuilt once"
[ -z "$(ls -d "$(tool_dir_fake)".stale.* "$(tool_dir_fake)".tmp.* 2>/dev/null)" ] || fail "the replaced install left directories behind"

echo "tools test: scripted tool built once under 4 concurrent installs; failed builds leave nothing; broken installs are replaced"
