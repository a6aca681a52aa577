#!/usr/bin/env bash
# Drives the admin page (GET /admin, SPEC §12) in a real browser: Debian's chromium, headless,
# through playwright-core (pinned by tests/browser/package-lock.json, installed into
# target/browser only when the pin changes), against the switchyard binary started here on a
# free port with a temporary data folder and four tokens (two admins, one read-only, one app).
# The default rollout stytch-login is created on the first start, as for a newcomer.
# Screenshots go to target/screenshots/. About 15 s after the build.
#
#   tests/browser/run.sh                  # debug binary (cargo build)
#   BUILD=release tests/browser/run.sh    # release binary
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/tests/browser
NODE_DIR=$ROOT/target/browser
BUILD=${BUILD:-debug}
CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}

say() { echo "== browser: $*"; }
die() { echo "tests/browser/run.sh: $*" >&2; exit 1; }
[[ -n $CHROMIUM && -x $CHROMIUM ]] || die "no chromium on this machine (scripts/test.sh installs Debian's: apt-get install chromium)"
command -v node >/dev/null || die "node is needed (apt-get install nodejs npm)"

# --- playwright-core, pinned, reinstalled only when the lock file changes ---------------------
want=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -c1-32)
if [[ "$(cat "$NODE_DIR/.installed" 2>/dev/null)" != "$want" ]]; then
  say "npm ci playwright-core into $NODE_DIR"
  rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
  npm ci --prefix "$NODE_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" >"$NODE_DIR/.installed"
fi
# ES modules resolve packages from their own folder: the test runs from beside node_modules.
cp "$HERE/admin.spec.mjs" "$NODE_DIR/"

# --- the service ----------------------------------------------------------------------------
build_flags=(); [[ $BUILD == release ]] && build_flags=(--release)
cargo build "${build_flags[@]}" --quiet --bin switchyard
TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-browser.XXXXXX")
SY_PID=
cleanup() {
  if [[ -n $SY_PID ]]; then
    kill -TERM "$SY_PID" 2>/dev/null || true
    wait "$SY_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

token() { python3 -c 'import secrets; print(secrets.token_hex(20))'; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SY_URL=http://127.0.0.1:$PORT
export SY_ADMIN_TOKEN=$(token) SY_OTHER_ADMIN_TOKEN=$(token) SY_READ_TOKEN=$(token) SY_APP_TOKEN=$(token)
cat >"$TMP/switchyard.toml" <<TOML
[server]
bind = "127.0.0.1:$PORT"
workers = 2
[store]
path = "$TMP/data/switchyard.redb"
[cookies]
secret = "browser-test-cookie-secret-0123456789abcdef"
[log]
level = "warn"
[guards]
interval_seconds = 1
[[tokens]]
name = "ops"
token = "$SY_ADMIN_TOKEN"
scopes = ["admin"]
[[tokens]]
name = "deploy-bot"
token = "$SY_OTHER_ADMIN_TOKEN"
scopes = ["admin"]
[[tokens]]
name = "viewer"
token = "$SY_READ_TOKEN"
scopes = ["read"]
[[tokens]]
name = "web-app"
token = "$SY_APP_TOKEN"
scopes = ["decide", "report"]
TOML
"$ROOT/target/$BUILD/switchyard" --config "$TMP/switchyard.toml" >"$TMP/switchyard.log" 2>&1 &
SY_PID=$!
deadline=$((SECONDS + 30))
until curl -sf -o /dev/null "$SY_URL/readyz"; do
  kill -0 "$SY_PID" 2>/dev/null || { cat "$TMP/switchyard.log"; die "switchyard exited before it was ready"; }
  (( SECONDS < deadline )) || { cat "$TMP/switchyard.log"; die "switchyard not ready after 30 s"; }
  sleep 0.1
done

# --- the browser ----------------------------------------------------------------------------
export CHROMIUM SCREENSHOTS=$ROOT/target/screenshots
mkdir -p "$SCREENSHOTS"
say "$("$CHROMIUM" --version 2>/dev/null | head -1), playwright-core $(node -p "require('$NODE_DIR/node_modules/playwright-core/package.json').version")"
(cd "$NODE_DIR" && timeout 120 node admin.spec.mjs) || { echo "service log:" >&2; tail -20 "$TMP/switchyard.log" >&2; exit 1; }
