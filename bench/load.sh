#!/usr/bin/env bash
# Load benchmark of POST /v1/decide against a minimal actix-web server, in the same run.
#
#   bench/load.sh                 # full run: 10 s per measurement
#   DURATION=30 bench/load.sh     # longer measurements
#   SMOKE=1 bench/load.sh         # everything, tiny durations and counts (CI-like check)
#   SMOKE=1 BUILD=debug bench/load.sh   # the same on debug binaries (scripts/test.sh runs it)
#
# What it does (see BENCHMARKS.md for how to read the numbers):
#  1. builds release (BUILD=debug: debug): switchyard, examples/baseline_server,
#     examples/fixed_rate, examples/stall_meter;
#  2. starts Switchyard (embedded store in a temp dir, GeoIP test database, 1 worker) pinned to
#     SERVER_CORE, creates a realistic rollout through the admin API (10 rules, one with 1,000
#     CIDRs, sticky cookies on, 25 %), mints valid sticky cookies from it, and writes varied
#     decide bodies (bench/gen.py bodies); starts the baseline (same actix-web, 1 worker,
#     same route, same body and answer shapes) pinned to the same core;
#  3. wrk (1 thread, pinned to LOADGEN_CORE, bench/decide.lua): warm-up, then RUNS pairs of
#     runs of DURATION s, baseline and Switchyard (which goes first alternates), same
#     connections;
#  3b. first visits: the same, with FIRST_VISITS bodies that carry no sticky cookie and reach the
#     percentage step (every answer mints and signs a cookie), each from another client address
#     (GeoIP over many distinct addresses; bench/gen.py first-visits);
#  3c. OpenFeature: the same, with the step-3 bodies as OFREP single-flag evaluations
#     (POST /ofrep/v1/evaluate/flags/<rollout>, the body as the context; bench/gen.py ofrep),
#     against the baseline's matching route;
#  3d. forward-auth: the same step-3 inputs as the headers a proxy forwards
#     (GET /v1/forward-auth/<rollout> with X-User-Key, X-Forwarded-For, X-Country,
#     X-App-Platform/-Version, Authorization, Cookie; bench/gen.py forward-auth,
#     bench/forward_auth.lua), against the baseline's matching route;
#  4. latency under load: examples/fixed_rate (open loop, latency from the scheduled send
#     time) at half of Switchyard's measured maximum, FIXED_RUNS pairs of runs against
#     Switchyard and the baseline (which goes first alternates); requests slower than 1 ms
#     are listed in slow-*.txt;
#  5. machine stalls: examples/stall_meter (both servers idle) for DURATION s on the server's
#     core alone, then on both cores at once: how often the machine itself stops a thread
#     that never waits, the floor under any p99 of step 4;
#  5b. instructions per request: both servers under `valgrind --tool=callgrind`, a fixed number
#     of requests of each workload — returning visitors, first visits, forward-auth
#     (CALLGRIND=0 skips it);
#  6. memory: VmRSS of Switchyard idle with ROLLOUTS rollouts created through the API, then
#     with ENROLLMENTS enrollments written straight into its store file before a restart.
#
# Settings (environment): DURATION (s, default 10; SMOKE: 1), WARMUP (s, default 2; SMOKE: 1),
# CONNECTIONS (32), RUNS (pairs of wrk runs, 2), FIXED_RUNS (pairs of fixed-rate runs, 3),
# ROLLOUTS (100), ENROLLMENTS (1000000; SMOKE: 10000), FIRST_VISITS (20000), CALLGRIND (1),
# CALLGRIND_REQUESTS (2000; SMOKE: 100), CALLGRIND_WARMUP (200; SMOKE: 20), SERVER_CORE (0), LOADGEN_CORE (1),
# BUILD (release; debug reuses the test suite's binaries), KEEP_TMP=1 to keep the temp dir,
# RESULTS=file to also write the results as key=value lines, NICE (-10 as root; 0 = off),
# RT=1 to run the servers SCHED_FIFO during the fixed-rate phase (root; see below),
# PROFILE=1 to perf-record Switchyard during one more wrk run (reports in
# PROFILE_OUT-{self,children}.txt).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMOKE=${SMOKE:-0}
if [[ $SMOKE == 1 ]]; then
  DURATION=${DURATION:-1}
  WARMUP=${WARMUP:-1}
  ENROLLMENTS=${ENROLLMENTS:-10000}
  RATE_WARMUP=0.5
  IDLE_WAIT=0.5
else
  DURATION=${DURATION:-10}
  WARMUP=${WARMUP:-2}
  ENROLLMENTS=${ENROLLMENTS:-1000000}
  RATE_WARMUP=1
  IDLE_WAIT=3
fi
CONNECTIONS=${CONNECTIONS:-32}
RUNS=${RUNS:-2}
FIXED_RUNS=${FIXED_RUNS:-3}
ROLLOUTS=${ROLLOUTS:-100}
FIRST_VISITS=${FIRST_VISITS:-20000}
CALLGRIND_REQUESTS=${CALLGRIND_REQUESTS:-$([[ $SMOKE == 1 ]] && echo 100 || echo 2000)}
CALLGRIND_WARMUP=${CALLGRIND_WARMUP:-$([[ $SMOKE == 1 ]] && echo 20 || echo 200)}
SERVER_CORE=${SERVER_CORE:-0}
LOADGEN_CORE=${LOADGEN_CORE:-1}
GEN="python3 $ROOT/bench/gen.py"
BENCH_ROLLOUT=bench-login

say() { printf '==> [%3ds] %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'bench/load.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  say "installing wrk (Debian package)"
  if [[ $(id -u) == 0 ]]; then
    (apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }) \
      || die "cannot install wrk"
  else
    die "wrk is missing: apt-get install wrk"
  fi
fi
for tool in taskset curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
CORES=$(nproc)
if (( CORES < 2 )); then
  say "only $CORES core: server and load generator cannot be pinned apart; numbers will be worse"
  SERVER_CORE=0 LOADGEN_CORE=0
fi
# The machine is shared. As root, servers and load generators run at a higher priority, so that
# other tenants' builds take less of the measured cores: each in its own session, hence its own
# scheduler autogroup (with autogroups, a plain `nice` only counts inside one's own session),
# with the autogroup and the process at nice NICE (-10: about 10x the share of a default
# autogroup on the same core). NICE=0 turns it off.
NICE=${NICE:-$([[ $(id -u) == 0 ]] && echo -10 || echo 0)}
prio() { # command... : runs it (exec) in its own session at nice $NICE
  if [[ $NICE == 0 ]]; then exec "$@"; fi
  exec setsid bash -c 'echo "$0" >/proc/self/autogroup 2>/dev/null || true; exec nice -n "$0" "$@"' "$NICE" "$@"
}
# RT=1 (root only, opt-in): during the fixed-rate phase only, every thread of both servers runs
# SCHED_FIFO, so no other tenant's process can preempt them. Not during the wrk phase: a
# saturated SCHED_FIFO server hits the kernel's RT throttling (5 % of each second is kept for
# others) and wrk then sees 20-40 ms tails.
on_loadgen() { (prio taskset -c "$LOADGEN_CORE" "$@"); }

# --- build -------------------------------------------------------------------------------
# BUILD=debug (scripts/test.sh, with SMOKE=1) reuses the debug binaries the test suite has just
# built, to check that every step still runs; its numbers measure nothing.
BUILD=${BUILD:-release}
case $BUILD in
  release) build_flags=(--release) ;;
  debug) build_flags=() ;;
  *) die "BUILD must be release or debug, not '$BUILD'" ;;
esac
say "building $BUILD (switchyard, baseline_server, fixed_rate, stall_meter)"
(cd "$ROOT" && cargo build "${build_flags[@]}" --quiet --bin switchyard --example baseline_server \
  --example fixed_rate --example stall_meter)
SWITCHYARD=$ROOT/target/$BUILD/switchyard
BASELINE=$ROOT/target/$BUILD/examples/baseline_server
FIXED_RATE=$ROOT/target/$BUILD/examples/fixed_rate
STALL_METER=$ROOT/target/$BUILD/examples/stall_meter

# --- temp dir, processes, cleanup --------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${KEEP_TMP:-0} == 1 ]]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

stop() { # pid
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=()
  for i in "${PIDS[@]}"; do [[ $i == "$pid" ]] || kept+=("$i"); done
  PIDS=("${kept[@]}")
}

wait_http() { # url seconds pid [curl flag: -f waits for a 2xx, -S for any answer]
  local url=$1 deadline=$((SECONDS + $2)) pid=$3 flag=${4:--f}
  until curl -s "$flag" -o /dev/null "$url"; do
    kill -0 "$pid" 2>/dev/null || die "server exited before answering $url (see $TMP/*.log)"
    (( SECONDS < deadline )) || die "no answer from $url after $2 s"
    sleep 0.05
  done
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

rand_hex() { python3 -c 'import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"; }
ADMIN_TOKEN=$(rand_hex 24)
DECIDE_TOKEN=$(rand_hex 24)
COOKIE_SECRET=$(rand_hex 32)

write_config() { # dir port
  local dir=$1 port=$2
  mkdir -p "$dir"
  cat >"$dir/switchyard.toml" <<EOF
[server]
bind = "127.0.0.1:$port"
workers = 1

[store]
backend = "embedded"
path = "$dir/data/switchyard.redb"

[geoip]
database = "$ROOT/geoip/GeoIP2-City-Test.mmdb"

[cookies]
secret = "$COOKIE_SECRET"

[stytch]
project_id = "project-test-bench"

[forward_auth]
user_key_header = "X-User-Key"
country_header = "X-Country"

[[tokens]]
name = "bench-admin"
token = "$ADMIN_TOKEN"
scopes = ["admin", "enroll"]

[[tokens]]
name = "bench-middleware"
token = "$DECIDE_TOKEN"
scopes = ["decide"]
EOF
}

start_switchyard() { # dir port log -> sets SY_PID
  local dir=$1 port=$2
  (cd "$dir" && prio taskset -c "$SERVER_CORE" "$SWITCHYARD" --config "$dir/switchyard.toml") >"$3" 2>&1 &
  SY_PID=$!
  PIDS+=("$SY_PID")
  wait_http "http://127.0.0.1:$port/readyz" "${4:-60}" "$SY_PID"
}

RESULTS_FILE=$TMP/results.txt
: >"$RESULTS_FILE"
record() { echo "$*" >>"$RESULTS_FILE"; }
if git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
  record "commit=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml || echo '+uncommitted-changes')"
fi

# --- 1. Switchyard with the benchmark rollout, and the baseline --------------------------
SY_PORT=$($GEN freeport)
BASE_PORT=$($GEN freeport)
while [[ $BASE_PORT == "$SY_PORT" ]]; do BASE_PORT=$($GEN freeport); done
SY_URL=http://127.0.0.1:$SY_PORT
BASE_URL=http://127.0.0.1:$BASE_PORT

write_config "$TMP/main" "$SY_PORT"
say "starting switchyard on $SY_URL (core $SERVER_CORE) and the baseline on $BASE_URL (core $SERVER_CORE)"
start_switchyard "$TMP/main" "$SY_PORT" "$TMP/switchyard.log"
SY_MAIN_PID=$SY_PID
(prio taskset -c "$SERVER_CORE" "$BASELINE" "$BASE_PORT" 1 "$DECIDE_TOKEN") >"$TMP/baseline.log" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")

$GEN rollout >"$TMP/rollout.json"
$GEN create "$SY_URL" "$ADMIN_TOKEN" "$TMP/rollout.json"
$GEN mint "$SY_URL" "$DECIDE_TOKEN" 200 "$BENCH_ROLLOUT" >"$TMP/cookies.txt"
$GEN bodies "$TMP/cookies.txt" 2000 "$BENCH_ROLLOUT" >"$TMP/bodies.jsonl"
$GEN first-visits "$FIRST_VISITS" "$BENCH_ROLLOUT" >"$TMP/first-visits.jsonl"
$GEN ofrep "$TMP/bodies.jsonl" >"$TMP/ofrep.jsonl"
$GEN forward-auth "$TMP/bodies.jsonl" >"$TMP/forward-auth.txt"
OFREP_PATH=/ofrep/v1/evaluate/flags/$BENCH_ROLLOUT
FORWARD_AUTH_PATH=/v1/forward-auth/$BENCH_ROLLOUT
say "rollout '$BENCH_ROLLOUT' created (10 rules, 1,000 CIDRs); $(wc -l <"$TMP/cookies.txt") cookies minted; $(wc -l <"$TMP/bodies.jsonl") bodies, $(wc -l <"$TMP/first-visits.jsonl") first visits"

# Both servers must answer every body with 200 before anything is measured; with FIRST=1, every
# answer must also carry a new sticky cookie (a first visit is what mints and signs one).
check_bodies() { # url file [FIRST] [route]
  python3 - "$1" "$DECIDE_TOKEN" "$2" "${3:-0}" "${4:-/v1/decide}" <<'EOF'
import json, sys, urllib.request, urllib.error
url, token, path, first, route = sys.argv[1:]
for n, line in enumerate(open(path)):
    if n % 20:
        continue
    req = urllib.request.Request(url + route, data=line.strip().encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        answer = json.loads(urllib.request.urlopen(req, timeout=5).read())
    except urllib.error.HTTPError as e:
        sys.exit(f"{url}: body {n} answered {e.code}: {e.read().decode()}\n{line}")
    if first == "1" and not answer.get("set_cookie", answer.get("metadata", {}).get("set_cookie_value")):
        sys.exit(f"{url}: first visit {n} got no new sticky cookie: {answer}\n{line}")
EOF
}
# Forward-auth: every 20th request of FILE must be answered 200 with a flow header.
check_forward_auth() { # url file
  python3 - "$1" "$DECIDE_TOKEN" "$2" "$FORWARD_AUTH_PATH" <<'EOF'
import sys, urllib.request, urllib.error
url, token, path, route = sys.argv[1:]
for n, line in enumerate(open(path)):
    if n % 20:
        continue
    headers = dict(field.split(": ", 1) for field in line.rstrip("\n").split("\t"))
    headers["X-Switchyard-Token"] = token
    req = urllib.request.Request(url + route, headers=headers)
    try:
        answer = urllib.request.urlopen(req, timeout=5)
    except urllib.error.HTTPError as e:
        sys.exit(f"{url}: request {n} answered {e.code}: {e.read().decode()}\n{line}")
    if answer.headers.get("X-Switchyard-Flow") not in ("stytch", "legacy"):
        sys.exit(f"{url}: request {n} has no flow: {dict(answer.headers)}\n{line}")
EOF
}
wait_http "$BASE_URL/v1/decide" 30 "$BASE_PID" -S
check_bodies "$SY_URL" "$TMP/bodies.jsonl"
check_bodies "$BASE_URL" "$TMP/bodies.jsonl"
check_bodies "$SY_URL" "$TMP/first-visits.jsonl" 1
check_bodies "$BASE_URL" "$TMP/first-visits.jsonl" 1
check_bodies "$SY_URL" "$TMP/ofrep.jsonl" 0 "$OFREP_PATH"
check_bodies "$BASE_URL" "$TMP/ofrep.jsonl" 0 "$OFREP_PATH"
check_forward_auth "$SY_URL" "$TMP/forward-auth.txt"
check_forward_auth "$BASE_URL" "$TMP/forward-auth.txt"
curl -s -X POST "$SY_URL/v1/decide" -H "Authorization: Bearer $DECIDE_TOKEN" -H 'Content-Type: application/json' \
  -d "$(head -1 "$TMP/bodies.jsonl")" >"$TMP/sample-switchyard.json"
curl -s -X POST "$BASE_URL/v1/decide" -H "Authorization: Bearer $DECIDE_TOKEN" -H 'Content-Type: application/json' \
  -d "$(head -1 "$TMP/bodies.jsonl")" >"$TMP/sample-baseline.json"
record "sample_request_bytes=$(head -1 "$TMP/bodies.jsonl" | wc -c)"
record "mean_request_bytes=$(awk '{n++; s+=length($0)} END {printf "%d", s/n}' "$TMP/bodies.jsonl")"
record "sample_response_bytes switchyard=$(wc -c <"$TMP/sample-switchyard.json") baseline=$(wc -c <"$TMP/sample-baseline.json")"
record "idle_rss_kb baseline=$(rss_kb "$BASE_PID") switchyard_bench_rollout=$(rss_kb "$SY_MAIN_PID")"

# --- 2. wrk: baseline, switchyard, baseline, switchyard ----------------------------------
# CPU accounting, to tell who limited a run: the server process's CPU time, and how busy each
# pinned core was (anything else on the machine included) and how much the hypervisor stole.
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
core_ticks() { # core -> "busy total steal"
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t, $9 }' /proc/stat
}
cpu_usage() { # pid before_proc before_server_core before_loadgen_core -> key=value percentages
  local p1 sc lc
  p1=$(proc_ticks "$1"); sc=$(core_ticks "$SERVER_CORE"); lc=$(core_ticks "$LOADGEN_CORE")
  awk -v p0="$2" -v p1="$p1" -v s0="$3" -v s1="$sc" -v l0="$4" -v l1="$lc" 'BEGIN {
    split(s0, a, " "); split(s1, b, " "); split(l0, c, " "); split(l1, d, " ")
    st = b[2] - a[2]; lt = d[2] - c[2]; if (st <= 0) st = 1; if (lt <= 0) lt = 1
    printf "server_cpu=%.0f server_core_busy=%.0f loadgen_core_busy=%.0f steal=%.0f",
      100 * (p1 - p0) / st, 100 * (b[1] - a[1]) / st, 100 * (d[1] - c[1]) / lt, 100 * (b[3] - a[3] + d[3] - c[3]) / (st + lt)
  }'
}

run_wrk() { # label url duration server_pid [bodies] [route] [wrk script] -> RESULT line with CPU usage
  local out=$TMP/wrk-$1.txt p0 s0 l0 usage
  p0=$(proc_ticks "$4"); s0=$(core_ticks "$SERVER_CORE"); l0=$(core_ticks "$LOADGEN_CORE")
  BODIES=${5:-$TMP/bodies.jsonl} HEADERS=${5:-} URL_PATH=${6:-/v1/decide} TOKEN=$DECIDE_TOKEN on_loadgen wrk -t1 -c"$CONNECTIONS" -d"$3"s --timeout 5s \
    -s "$ROOT/bench/${7:-decide.lua}" "$2" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed ($1)"; }
  usage=$(cpu_usage "$4" "$p0" "$s0" "$l0")
  local line
  line=$(grep '^RESULT' "$out") || { cat "$out" >&2; die "wrk printed no RESULT ($1)"; }
  if [[ $line =~ non2xx=([0-9]+) ]] && (( BASH_REMATCH[1] > 0 )); then
    cat "$out" >&2
    die "$1: ${BASH_REMATCH[1]} answers were not 2xx"
  fi
  echo "${line#RESULT } $usage"
}

# RUNS pairs of wrk runs of one workload, baseline and Switchyard (which goes first alternates),
# each recorded as a `KIND server=… run=…` line.
wrk_pairs() { # kind label what bodies [route] [wrk script]
  local kind=$1 label=$2 what=$3 bodies=$4 route=${5:-/v1/decide} script=${6:-decide.lua} run order server url pid result
  for run in $(seq "$RUNS"); do
    order="baseline switchyard"
    (( run % 2 == 0 )) && order="switchyard baseline"
    for server in $order; do
      url=$BASE_URL pid=$BASE_PID
      [[ $server == switchyard ]] && url=$SY_URL pid=$SY_MAIN_PID
      say "wrk $what, run $run: $server, ${DURATION} s, $CONNECTIONS connections"
      result=$(run_wrk "$label$server-$run" "$url" "$DURATION" "$pid" "$bodies" "$route" "$script")
      record "$kind server=$server run=$run $result"
      echo "    $result" >&2
    done
  done
}

say "warm-up: ${WARMUP} s each"
record "loadavg_before $(awk '{ print "1min=" $1, "5min=" $2 }' /proc/loadavg)"
run_wrk warm-baseline "$BASE_URL" "$WARMUP" "$BASE_PID" >/dev/null
run_wrk warm-switchyard "$SY_URL" "$WARMUP" "$SY_MAIN_PID" >/dev/null
wrk_pairs wrk "" "returning visitors" "$TMP/bodies.jsonl"
# --- 2b. first visits: no valid sticky cookie, so every answer mints and signs one -------------
# Same servers, same rollout; FIRST_VISITS bodies, each from another client address (GeoIP over
# many distinct addresses: the per-thread lookup cache cannot hold them).
run_wrk warm-first-switchyard "$SY_URL" "$WARMUP" "$SY_MAIN_PID" "$TMP/first-visits.jsonl" >/dev/null
wrk_pairs wrk_first_visit first- "first visits" "$TMP/first-visits.jsonl"
# --- 2c. OpenFeature (OFREP) single-flag evaluations: the step-2 bodies as contexts -----------
# Same servers, same rollout, same bodies as step 2 turned into `{"context": ...}`; POSTed to
# /ofrep/v1/evaluate/flags/<rollout> on both (the baseline's route parses and answers the OFREP
# shapes). Compared with the same in-run baseline: the goal is ≥ 0.85× of it.
run_wrk warm-ofrep-switchyard "$SY_URL" "$WARMUP" "$SY_MAIN_PID" "$TMP/ofrep.jsonl" "$OFREP_PATH" >/dev/null
wrk_pairs wrk_ofrep ofrep- "OFREP single flag" "$TMP/ofrep.jsonl" "$OFREP_PATH"
# --- 2d. forward-auth: the step-2 inputs as the headers a proxy forwards -------------------
# Same servers, same rollout, the same inputs as step 2 sent as GET /v1/forward-auth/<rollout>
# with X-User-Key, X-Forwarded-For, X-Country, X-App-Platform/-Version, Authorization and
# Cookie (bench/gen.py forward-auth, bench/forward_auth.lua); the baseline's route reads the
# same headers and answers in headers. Compared with the same in-run baseline: goal ≥ 0.85×.
run_wrk warm-forward-auth-switchyard "$SY_URL" "$WARMUP" "$SY_MAIN_PID" "$TMP/forward-auth.txt" \
  "$FORWARD_AUTH_PATH" forward_auth.lua >/dev/null
wrk_pairs wrk_forward_auth forward-auth- "forward-auth" "$TMP/forward-auth.txt" "$FORWARD_AUTH_PATH" \
  forward_auth.lua
record "after_load_rss_kb baseline=$(rss_kb "$BASE_PID") switchyard=$(rss_kb "$SY_MAIN_PID") switchyard_hwm=$(hwm_kb "$SY_MAIN_PID")"

# --- 3. latency under load: half of Switchyard's measured maximum ------------------------
SY_RPS=$(awk '$1 == "wrk" && $2 == "server=switchyard" { for (i = 3; i <= NF; i++) if ($i ~ /^rps=/) { sub("rps=", "", $i); print $i } }' \
  "$RESULTS_FILE" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
RATE=$(awk -v r="$SY_RPS" 'BEGIN { printf "%d", r / 2 }')
(( RATE > 0 )) || die "no Switchyard throughput measured"
if [[ ${RT:-0} == 1 ]]; then
  chrt -a -f -p 10 "$SY_MAIN_PID" >/dev/null && chrt -a -f -p 10 "$BASE_PID" >/dev/null \
    || die "RT=1: cannot make the servers SCHED_FIFO (root needed)"
fi
for run in $(seq "$FIXED_RUNS"); do
  # Alternate which server goes first, so that neither always follows the other's run.
  order="switchyard baseline"
  (( run % 2 == 0 )) && order="baseline switchyard"
  for server in $order; do
    url=$SY_URL pid=$SY_MAIN_PID
    [[ $server == baseline ]] && url=$BASE_URL pid=$BASE_PID
    say "fixed rate run $run: $server at $RATE req/s (half of Switchyard's $SY_RPS), ${DURATION} s"
    p0=$(proc_ticks "$pid"); s0=$(core_ticks "$SERVER_CORE"); l0=$(core_ticks "$LOADGEN_CORE")
    out=$(on_loadgen "$FIXED_RATE" --url "$url/v1/decide" --rate "$RATE" --duration "$DURATION" \
      --warmup "$RATE_WARMUP" --connections "$CONNECTIONS" --bodies "$TMP/bodies.jsonl" \
      --token "$DECIDE_TOKEN" --json --slow-log "$TMP/slow-$server-$run.txt")
    usage=$(cpu_usage "$pid" "$p0" "$s0" "$l0")
    echo "    $out $usage" >&2
    record "fixed_rate server=$server run=$run $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(f"{k}={v}" for k, v in d.items()))' "$out") $usage"
    if [[ $out =~ \"non_2xx\":([0-9]+) ]] && (( BASH_REMATCH[1] > 0 )); then
      die "fixed rate against $server: ${BASH_REMATCH[1]} answers were not 2xx"
    fi
  done
done
if [[ ${RT:-0} == 1 ]]; then
  chrt -a -o -p 0 "$SY_MAIN_PID" >/dev/null; chrt -a -o -p 0 "$BASE_PID" >/dev/null
fi

# --- 4. machine stalls: the floor under the p99 above ------------------------------------
# A thread that never waits, pinned: first on the server's core with the other core idle,
# then on both cores at once (as during the load runs, when both cores are busy).
stall_meters() { # condition core...
  local condition=$1 core meters=() out role
  shift
  for core in "$@"; do
    (prio taskset -c "$core" "$STALL_METER" --seconds "$DURATION" --json) >"$TMP/stalls-$condition-$core.json" &
    meters+=($!)
  done
  wait "${meters[@]}"
  for core in "$@"; do
    out=$(cat "$TMP/stalls-$condition-$core.json")
    role=server; [[ $core == "$LOADGEN_CORE" && $core != "$SERVER_CORE" ]] && role=loadgen
    echo "    $condition, core $core ($role): $out" >&2
    record "stalls condition=$condition core=$core role=$role $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(f"{k}={v}" for k, v in d.items()))' "$out")"
  done
}
say "machine stalls: a thread that never waits, ${DURATION} s on core $SERVER_CORE alone, then on every core at once (servers idle)"
stall_meters alone "$SERVER_CORE"
if [[ $LOADGEN_CORE != "$SERVER_CORE" ]]; then
  stall_meters all-busy "$SERVER_CORE" "$LOADGEN_CORE"
fi
if [[ ${PROFILE:-0} == 1 ]]; then
  # perf with the cpu-clock software event (no hardware counters on this VM); release builds
  # carry line tables (profile.release debug = 1), so DWARF call graphs resolve.
  command -v perf >/dev/null || die "PROFILE=1 needs perf"
  say "profiling switchyard under wrk for ${DURATION} s (perf record -e cpu-clock --call-graph dwarf)"
  perf record -q -e cpu-clock -F 2000 --call-graph dwarf,16384 -p "$SY_MAIN_PID" -o "$TMP/perf.data" \
    -- sleep "$DURATION" >/dev/null 2>&1 &
  perf_pid=$!
  run_wrk profile-switchyard "$SY_URL" "$DURATION" "$SY_MAIN_PID" >/dev/null
  wait "$perf_pid" || true
  PROFILE_OUT=${PROFILE_OUT:-$TMP/profile}
  perf report -i "$TMP/perf.data" --no-children --stdio --sort dso,symbol --percent-limit 0.3 -g none \
    2>/dev/null | sed -E 's/ +$//; s/ {2,}/  /g' >"$PROFILE_OUT-self.txt"
  perf report -i "$TMP/perf.data" --children --stdio --sort symbol --percent-limit 1 -g none \
    2>/dev/null | sed -E 's/ +$//; s/ {2,}/  /g' >"$PROFILE_OUT-children.txt"
  say "profile: $PROFILE_OUT-self.txt (self time), $PROFILE_OUT-children.txt (inclusive)"
fi
record "loadavg_after $(awk '{ print "1min=" $1, "5min=" $2 }' /proc/loadavg)"
stop "$BASE_PID"
stop "$SY_MAIN_PID"

# --- 4b. instructions per request (callgrind) -------------------------------------------------
# Instruction counts do not depend on the machine's noise: each server runs under
# `valgrind --tool=callgrind` with instrumentation off, gets a warm-up of both workloads, then
# CALLGRIND_REQUESTS requests of each workload one after another on one connection
# (bench/gen.py replay), the counters dumped after each workload. Switchyard is restarted on the
# same data dir (same rollout, same salt: the minted cookies stay valid).
if [[ ${CALLGRIND:-1} == 1 ]]; then
  command -v valgrind >/dev/null && command -v callgrind_control >/dev/null \
    || die "valgrind is missing (apt-get install valgrind), or set CALLGRIND=0"
  instructions() { # server url pid: replays both workloads, records instructions per request
    local server=$1 url=$2 pid=$3 workload file route dump=0 total
    $GEN replay "$url" "$DECIDE_TOKEN" "$TMP/bodies.jsonl" "$CALLGRIND_WARMUP"
    $GEN replay "$url" "$DECIDE_TOKEN" "$TMP/first-visits.jsonl" "$CALLGRIND_WARMUP"
    $GEN replay "$url" "$DECIDE_TOKEN" "$TMP/forward-auth.txt" "$CALLGRIND_WARMUP" "$FORWARD_AUTH_PATH"
    callgrind_control -i on "$pid" >/dev/null
    for workload in returning first_visit forward_auth; do
      file=$TMP/bodies.jsonl route=/v1/decide
      [[ $workload == first_visit ]] && file=$TMP/first-visits.jsonl
      [[ $workload == forward_auth ]] && file=$TMP/forward-auth.txt route=$FORWARD_AUTH_PATH
      $GEN replay "$url" "$DECIDE_TOKEN" "$file" "$CALLGRIND_REQUESTS" "$route"
      callgrind_control -d "$pid" >/dev/null
      dump=$((dump + 1))
      total=$(awk '/^totals:/ { print $2 }' "$TMP/callgrind-$server.$pid.out.$dump")
      [[ -n $total ]] || die "no callgrind totals for $server ($workload)"
      record "instructions server=$server workload=$workload requests=$CALLGRIND_REQUESTS total=$total per_request=$((total / CALLGRIND_REQUESTS))"
      say "    $server, $workload: $((total / CALLGRIND_REQUESTS)) instructions per request"
    done
  }
  under_callgrind=(valgrind --tool=callgrind --instr-atstart=no)
  say "instructions per request under callgrind: $CALLGRIND_REQUESTS requests per workload and server"
  (cd "$TMP/main" && exec "${under_callgrind[@]}" --callgrind-out-file="$TMP/callgrind-switchyard.%p.out" \
    "$SWITCHYARD" --config "$TMP/main/switchyard.toml") >"$TMP/switchyard-callgrind.log" 2>&1 &
  CG_PID=$!
  PIDS+=("$CG_PID")
  wait_http "$SY_URL/readyz" 120 "$CG_PID"
  instructions switchyard "$SY_URL" "$CG_PID"
  stop "$CG_PID"
  ("${under_callgrind[@]}" --callgrind-out-file="$TMP/callgrind-baseline.%p.out" \
    "$BASELINE" "$BASE_PORT" 1 "$DECIDE_TOKEN") >"$TMP/baseline-callgrind.log" 2>&1 &
  CG_PID=$!
  PIDS+=("$CG_PID")
  wait_http "$BASE_URL/v1/decide" 120 "$CG_PID" -S
  instructions baseline "$BASE_URL" "$CG_PID"
  stop "$CG_PID"
fi

# --- 5. memory ---------------------------------------------------------------------------
MEM_PORT=$($GEN freeport)
MEM_URL=http://127.0.0.1:$MEM_PORT
write_config "$TMP/mem" "$MEM_PORT"
say "memory: fresh switchyard, $ROLLOUTS rollouts through the API"
start_switchyard "$TMP/mem" "$MEM_PORT" "$TMP/mem-1.log"
record "rss_kb fresh_default_rollout=$(rss_kb "$SY_PID")"
$GEN rollouts "$MEM_URL" "$ADMIN_TOKEN" "$ROLLOUTS"
count=$(curl -sf "$MEM_URL/v1/rollouts" -H "Authorization: Bearer $ADMIN_TOKEN" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["rollouts"] if isinstance(d, dict) else d))')
sleep "$IDLE_WAIT"
record "rss_kb rollouts=$count idle=$(rss_kb "$SY_PID") hwm=$(hwm_kb "$SY_PID")"
say "    $count rollouts: VmRSS $(rss_kb "$SY_PID") kB"
stop "$SY_PID"

say "memory: $ENROLLMENTS enrollments written into the store file, then a restart"
# One transaction of the database itself (a million PUTs would take minutes of fsyncs).
(cd "$ROOT" && cargo build "${build_flags[@]}" --quiet --example store_bench)
"$ROOT/target/$BUILD/examples/store_bench" enroll "$TMP/mem/data/switchyard.redb" stytch-login "$ENROLLMENTS" >/dev/null
record "store_file_bytes enrollments=$ENROLLMENTS bytes=$(stat -c %s "$TMP/mem/data/switchyard.redb")"
started=$(date +%s.%N)
start_switchyard "$TMP/mem" "$MEM_PORT" "$TMP/mem-2.log" 300
ready=$(date +%s.%N)
enrolled=$(curl -sf "$MEM_URL/metrics" | awk '/^switchyard_enrollments[{ ].*stytch-login/ { print $NF }')
sleep "$IDLE_WAIT"
record "rss_kb enrollments=$ENROLLMENTS loaded=${enrolled:-?} rollouts=$count idle=$(rss_kb "$SY_PID") hwm=$(hwm_kb "$SY_PID") startup_s=$(awk -v a="$started" -v b="$ready" 'BEGIN { printf "%.2f", b - a }')"
say "    $ENROLLMENTS enrollments: VmRSS $(rss_kb "$SY_PID") kB (peak $(hwm_kb "$SY_PID") kB)"
[[ ${enrolled:-} == "$ENROLLMENTS" ]] || die "the restarted service loaded ${enrolled:-no} enrollments, not $ENROLLMENTS"
stop "$SY_PID"

# --- 6. report ---------------------------------------------------------------------------
[[ -n ${RESULTS:-} ]] && cp "$RESULTS_FILE" "$RESULTS"
python3 "$ROOT/bench/report.py" "$RESULTS_FILE" \
  "$([[ $BUILD == debug ]] && echo 'DEBUG BUILD, a smoke check: these numbers measure nothing; ')cores: server $SERVER_CORE, load generator $LOADGEN_CORE, nice $NICE$([[ ${RT:-0} == 1 ]] && echo ', servers SCHED_FIFO at fixed rate'); wrk -t1 -c$CONNECTIONS, ${DURATION} s per run, $RUNS runs each"
