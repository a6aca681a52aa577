#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with Rust: installs what the tests need
# (promtool, for `promtool check metrics`) into target/tools when it is missing, then runs every
# unit, integration and doc test, and the criterion benches once each in test mode.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/tools"
mkdir -p "$tools"
export PATH="$tools/bin:$PATH"

# promtool comes from Debian's `prometheus` package; unpack it rather than install a service.
if ! command -v promtool >/dev/null 2>&1; then
  echo "== installing promtool into $tools"
  work=$(mktemp -d)
  (
    cd "$work"
    apt-get download prometheus >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download prometheus >/dev/null; }
    dpkg-deb -x prometheus_*.deb root
    mkdir -p "$tools/bin"
    cp root/usr/bin/promtool "$tools/bin/"
  )
  rm -rf "$work"
fi

echo "== cargo test (unit, integration, doc, benches in test mode)"
cargo test --all-targets --no-fail-fast
cargo test --doc
