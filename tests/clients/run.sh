#!/usr/bin/env bash
# Runs the real, unmodified OpenFeature SDKs and their OFREP providers against Switchyard
# (SPEC §10), and the two OpenFeature examples (examples/ofrep-express, examples/ofrep-flask):
#
#  - npm: @openfeature/server-sdk + @openfeature/ofrep-provider (server_sdk.mjs), and
#    @openfeature/web-sdk + @openfeature/ofrep-web-provider (web_sdk.mjs, bulk with ETag/304);
#  - PyPI: openfeature-sdk + openfeature-provider-ofrep (python_sdk.py);
#  - the examples' login routes (examples.mjs), each started against the service.
#
# Every check compares the SDK's answer with POST /v1/decide for the same input. The clients
# are installed from the registries into target/clients/{node,py}, pinned by package-lock.json
# and requirements.txt (with hashes), again only when those files change. The service is the
# debug binary (BUILD=release for the release one), on a free port with its own data folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CLIENTS=$ROOT/tests/clients
NODE_DIR=$ROOT/target/clients/node
PY_DIR=$ROOT/target/clients/py
BUILD=${BUILD:-debug}

say() { echo "== clients: $*"; }
stamp() { cat "$@" | sha256sum | cut -c1-32; }

# --- installs (only when the pins changed) -------------------------------------------------
want=$(stamp "$CLIENTS/package.json" "$CLIENTS/package-lock.json")
if [ "$(cat "$NODE_DIR/.installed" 2>/dev/null)" != "$want" ]; then
  say "npm ci into $NODE_DIR"
  rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
  cp "$CLIENTS/package.json" "$CLIENTS/package-lock.json" "$NODE_DIR/"
  npm ci --prefix "$NODE_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" >"$NODE_DIR/.installed"
fi
want=$(stamp "$CLIENTS/requirements.txt")
if [ "$(cat "$PY_DIR/.installed" 2>/dev/null)" != "$want" ]; then
  say "pip install into $PY_DIR"
  rm -rf "$PY_DIR"
  python3 -m venv "$PY_DIR"
  "$PY_DIR/bin/pip" install --quiet --require-hashes --no-deps -r "$CLIENTS/requirements.txt"
  echo "$want" >"$PY_DIR/.installed"
fi
# ES modules resolve packages from their own folder: the programs run from beside node_modules.
cp "$CLIENTS"/*.mjs "$NODE_DIR/"

# --- the service ---------------------------------------------------------------------------
build_flags=(); [ "$BUILD" = release ] && build_flags=(--release)
cargo build "${build_flags[@]}" --quiet --bin switchyard
TMP=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # url what pid
  for _ in $(seq 1 150); do
    curl -sf -o /dev/null "$1" && return 0
    kill -0 "$3" 2>/dev/null || { cat "$TMP"/*.log >&2; echo "$2 exited" >&2; return 1; }
    sleep 0.1
  done
  cat "$TMP"/*.log >&2; echo "$2 did not answer $1" >&2; return 1
}

ADMIN_TOKEN=clients-admin-token-$RANDOM$RANDOM
DECIDE_TOKEN=clients-decide-token-$RANDOM$RANDOM
PORT=$(free_port)
cat >"$TMP/switchyard.toml" <<TOML
[server]
bind = "127.0.0.1:$PORT"
workers = 2
[store]
path = "$TMP/data/switchyard.json"
[geoip]
database = "$ROOT/geoip/GeoIP2-City-Test.mmdb"
[cookies]
secret = "client-tests-cookie-secret-0123456789abcdef"
[[tokens]]
name = "admin"
token = "$ADMIN_TOKEN"
scopes = ["admin"]
[[tokens]]
name = "middleware"
token = "$DECIDE_TOKEN"
scopes = ["decide"]
TOML
"$ROOT/target/$BUILD/switchyard" --config "$TMP/switchyard.toml" >"$TMP/switchyard.log" 2>&1 &
pids+=($!)
export SY_URL=http://127.0.0.1:$PORT SY_ADMIN_TOKEN=$ADMIN_TOKEN SY_DECIDE_TOKEN=$DECIDE_TOKEN
wait_for "$SY_URL/readyz" switchyard "${pids[0]}"

# --- the SDKs ------------------------------------------------------------------------------
run() { # name command...
  local name=$1; shift
  timeout 60 "$@" || { echo "client check '$name' failed; service log:" >&2; tail -20 "$TMP/switchyard.log" >&2; exit 1; }
}
say "npm @openfeature/server-sdk + @openfeature/ofrep-provider"
(cd "$NODE_DIR" && run server-sdk node server_sdk.mjs)
say "npm @openfeature/web-sdk + @openfeature/ofrep-web-provider"
(cd "$NODE_DIR" && run web-sdk node web_sdk.mjs)
say "PyPI openfeature-sdk + openfeature-provider-ofrep"
run python-sdk "$PY_DIR/bin/python" "$CLIENTS/python_sdk.py"

# --- the examples --------------------------------------------------------------------------
export ROLLOUT=ofrep-examples
EXPRESS_PORT=$(free_port)
(cd "$ROOT/examples/ofrep-express" && PORT=$EXPRESS_PORT SWITCHYARD_URL=$SY_URL SWITCHYARD_TOKEN=$DECIDE_TOKEN \
  NODE_PATH="$NODE_DIR/node_modules" exec node server.js) >"$TMP/express.log" 2>&1 &
pids+=($!)
FLASK_PORT=$(free_port)
(cd "$ROOT/examples/ofrep-flask" && PORT=$FLASK_PORT SWITCHYARD_URL=$SY_URL SWITCHYARD_TOKEN=$DECIDE_TOKEN \
  exec "$PY_DIR/bin/python" app.py) >"$TMP/flask.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$EXPRESS_PORT/healthz" "examples/ofrep-express" "${pids[1]}"
wait_for "http://127.0.0.1:$FLASK_PORT/healthz" "examples/ofrep-flask" "${pids[2]}"
say "examples/ofrep-express and examples/ofrep-flask login routes"
(cd "$NODE_DIR" && run examples node examples.mjs "express=http://127.0.0.1:$EXPRESS_PORT" "flask=http://127.0.0.1:$FLASK_PORT")
say "all passed"
