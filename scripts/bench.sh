#!/usr/bin/env bash
# Measures the floors and the stack against them in one run, on this
# machine, and prints one table (also .local/bench.json): a bare hyper server
# vs the gateway's sold-out path, reserve.lua through a pipelined client vs
# the gateway's accepted path, a plain batched INSERT vs the settler's drain
# rate, and the gateway's and settler's peak RSS. Restarts the stack with
# config/gateway.bench.toml (no token buckets) and stops it afterwards.
#
#   scripts/bench.sh [loadtest bench arguments, e.g. --requests 100000 --concurrency 128]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/scripts/setup.sh" --release
bash "$ROOT/scripts/stack.sh" stop
GATEWAY_CONFIG="$ROOT/config/gateway.bench.toml" bash "$ROOT/scripts/stack.sh" start
trap 'bash "$ROOT/scripts/stack.sh" stop' EXIT

log "benchmark on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load generator and stack share them"
"$(cat "$STATE/bin-dir")/loadtest" bench --target "$GATEWAY_URL" \
  --gateway-pid "$(cat "$RUN/gateway.pid")" --json "$STATE/bench.json" "$@"
