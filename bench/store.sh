#!/usr/bin/env bash
# Benchmark of the embedded store's database file (not part of the test suite): for each size
# of SIZES, a fresh database with that many enrollments (written in one transaction), then in
# a new process: start-up (open with integrity check + load + catalog), VmRSS, and WRITES
# enrollments one by one, each committed with fsync as the API does before it answers.
#
#   bench/store.sh                        # SIZES="0 100000 1000000", WRITES=200
#   SIZES="0 1000" WRITES=20 bench/store.sh   # a quick check
#
# Prints one `measure …` line per size (numbers for README.md, "The embedded database").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZES=${SIZES:-0 100000 1000000}
WRITES=${WRITES:-200}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-store-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

(cd "$ROOT" && cargo build --release --quiet --example store_bench)
BENCH=$ROOT/target/release/examples/store_bench

for size in $SIZES; do
  db=$TMP/$size/switchyard.redb
  mkdir -p "$TMP/$size"
  "$BENCH" enroll "$db" stytch-login "$size" >/dev/null
  "$BENCH" measure "$db" stytch-login "$WRITES"
done
