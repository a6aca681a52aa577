#!/usr/bin/env bash
# Checks that the OpenAPI document says exactly what the service does: schemathesis (pinned in
# tests/fuzz/requirements.txt, installed with --require-hashes into target/tools/venv) runs every
# check and every phase — examples, coverage, fuzzing, stateful — against a switchyard binary
# started on a free port with a temporary data folder and one token holding every scope (sent
# as a bearer token, and as X-Switchyard-Token for forward-auth).
# Fixed seed, bounded examples: the same cases each run, a minute or two on 2 cores.
# schemathesis.toml and hooks.py beside this script allow only the answers no schema can state
# (412 for a stale If-Match, 422 for a few rules across fields or on the stored state).
# Exits non-zero on any failure (or when the service does not start).
#
#   tests/fuzz/schemathesis.sh                 # uses target/debug/switchyard (built by cargo test)
#   SWITCHYARD=target/release/switchyard MAX_EXAMPLES=50 SEED=7 tests/fuzz/schemathesis.sh
#   tests/fuzz/schemathesis.sh --continue-on-failure   # extra arguments go to `schemathesis run`
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

SWITCHYARD=${SWITCHYARD:-$ROOT/target/debug/switchyard}
MAX_EXAMPLES=${MAX_EXAMPLES:-200}
SEED=${SEED:-20261130}
VENV=$ROOT/target/tools/venv
REQUIREMENTS=$ROOT/tests/fuzz/requirements.txt

die() { echo "schemathesis.sh: $*" >&2; exit 1; }
[[ -x $SWITCHYARD ]] || die "no binary at $SWITCHYARD (run cargo build first)"

# --- schemathesis, pinned with hashes, reinstalled only when the requirements change ----------
stamp=$VENV/.requirements.sha256
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/schemathesis || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "== installing schemathesis into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r "$REQUIREMENTS"
  echo "$want" >"$stamp"
fi

# --- the service: free port, temporary data folder, one token with every scope -------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-schemathesis.XXXXXX")
SY_PID=
cleanup() {
  if [[ -n $SY_PID ]]; then
    kill -TERM "$SY_PID" 2>/dev/null || true
    wait "$SY_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
URL=http://127.0.0.1:$PORT

(
  cd "$TMP"
  SWITCHYARD__SERVER__BIND=127.0.0.1:$PORT \
  SWITCHYARD__STORE__PATH=$TMP/data/switchyard.json \
  SWITCHYARD__COOKIES__SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))') \
  SWITCHYARD__STYTCH__PROJECT_ID=project-test-schemathesis \
  SWITCHYARD__LOG__LEVEL=warn \
  SWITCHYARD__TOKENS="[{\"name\":\"schemathesis\",\"token\":\"$TOKEN\",\"scopes\":[\"admin\",\"read\",\"decide\",\"enroll\",\"report\"]}]" \
    exec "$SWITCHYARD"
) >"$TMP/switchyard.log" 2>&1 &
SY_PID=$!

deadline=$((SECONDS + 30))
until curl -sf -o /dev/null "$URL/readyz"; do
  kill -0 "$SY_PID" 2>/dev/null || { cat "$TMP/switchyard.log"; die "switchyard exited before it was ready"; }
  (( SECONDS < deadline )) || { cat "$TMP/switchyard.log"; die "switchyard not ready after 30 s"; }
  sleep 0.1
done

# --- the run ----------------------------------------------------------------------------------
echo "== schemathesis $("$VENV/bin/schemathesis" --version | awk '{print $NF}') against $URL/openapi.json" \
  "(seed $SEED, at most $MAX_EXAMPLES examples per operation)"
status=0
# From the temp dir, so that nothing schemathesis writes (caches) lands in the work tree.
cd "$TMP"
PYTHONPATH=$ROOT/tests/fuzz SCHEMATHESIS_HOOKS=hooks \
  "$VENV/bin/schemathesis" --config-file "$ROOT/tests/fuzz/schemathesis.toml" run "$URL/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  -H "X-Switchyard-Token: $TOKEN" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers 1 \
  --no-color \
  "$@" || status=$?

if ! kill -0 "$SY_PID" 2>/dev/null; then
  cat "$TMP/switchyard.log"
  die "switchyard died during the run"
fi
exit "$status"
