#!/usr/bin/env bash
# Where the gateway's time goes: samples the gateway's stacks with perf
# (cpu-clock, 499 Hz, DWARF unwinding) while the load generator drives the
# accepted path and then the sold-out path, and renders each as a flame
# graph with inferno: docs/flame-accepted.svg, docs/flame-sold-out.svg.
# Restarts the memory-only broker and the stack with config/gateway.bench.toml
# (no token buckets), as scripts/bench.sh does, and stops the stack afterwards.
#
#   scripts/profile.sh [accepted requests, default 40000] [sold-out requests, default 200000]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ACCEPTED="${1:-40000}"
SOLD_OUT="${2:-200000}"
command -v perf >/dev/null || apt_install linux-perf
TOOLS="$STATE/tools"
if [ ! -x "$TOOLS/bin/inferno-flamegraph" ]; then
  log "inferno: installing (crate inferno) into $TOOLS"
  cargo install --locked --quiet inferno --root "$TOOLS"
fi

bash "$ROOT/scripts/stack.sh" stop
bash "$ROOT/scripts/setup.sh" --release --fresh-broker
GATEWAY_CONFIG="$ROOT/config/gateway.bench.toml" bash "$ROOT/scripts/stack.sh" start
trap 'bash "$ROOT/scripts/stack.sh" stop' EXIT
GATEWAY_PID="$(cat "$RUN/gateway.pid")"
LOADTEST="$(cat "$STATE/bin-dir")/loadtest"

# profile NAME TITLE LOADTEST-ARGS...: samples the gateway while the load runs.
profile() {
  local name=$1 title=$2 data="$RUN/perf-$1.data"
  shift 2
  perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$GATEWAY_PID" -o "$data" 2>"$RUN/perf-$name.log" &
  local perf_pid=$!
  sleep 1
  "$LOADTEST" flash-sale --target "$GATEWAY_URL" --concurrency 64 "$@" | grep -E '^(requests|latency)'
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  perf script -i "$data" 2>/dev/null | "$TOOLS/bin/inferno-collapse-perf" \
    | "$TOOLS/bin/inferno-flamegraph" --title "$title" --width 1600 >"$ROOT/docs/flame-$name.svg"
  log "$name: docs/flame-$name.svg"
}

profile accepted "gateway, accepted path: $ACCEPTED distinct buyers, plenty of stock, 64 connections" \
  --stock 1000000000 --buyers "$ACCEPTED"
profile sold-out "gateway, sold-out path: $SOLD_OUT distinct buyers, 1 unit, 64 connections" \
  --stock 1 --buyers "$SOLD_OUT"
