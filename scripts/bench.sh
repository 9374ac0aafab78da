#!/usr/bin/env bash
# Measures the floors and the stack against them in one run, on this
# machine, and prints two tables (also .local/bench.json): a bare hyper
# server vs the gateway's sold-out path; reserve.lua, a Kafka produce and
# the two composed (no HTTP) vs the gateway's accepted path, with the
# settler draining beside it and paused; a plain batched INSERT vs the
# settler's drain rate; then each phase's CPU time per 1,000 operations in
# every process of the stack, and the gateway's and settler's peak RSS.
# Restarts the memory-only broker (it slows as it fills) and the stack with
# config/gateway.bench.toml (no token buckets), and stops the stack afterwards.
#
#   scripts/bench.sh [loadtest bench arguments, e.g. --requests 100000 --concurrency 128]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/scripts/stack.sh" stop
bash "$ROOT/scripts/setup.sh" --release --fresh-broker
GATEWAY_CONFIG="$ROOT/config/gateway.bench.toml" bash "$ROOT/scripts/stack.sh" start
trap 'bash "$ROOT/scripts/stack.sh" stop' EXIT

log "benchmark on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load generator and stack share them"
broker_pid=$(port_pid "$KAFKA_PORT")
redis_pid=$(port_pid "$REDIS_PORT")
mysql_pid=$(port_pid "$MYSQL_PORT")
"$(cat "$STATE/bin-dir")/loadtest" bench --target "$GATEWAY_URL" --gateway-pid "$(cat "$RUN/gateway.pid")" \
  --settler-pid "$(cat "$RUN/settler.pid")" ${broker_pid:+--broker-pid "$broker_pid"} \
  ${redis_pid:+--redis-pid "$redis_pid"} ${mysql_pid:+--mysql-pid "$mysql_pid"} --json "$STATE/bench.json" "$@"
