#!/usr/bin/env bash
# The main job: sets everything up (release build), starts the gateway and
# the settler, loads a sale of 1,000 units and sends a flash-sale burst of
# 20,000 distinct buyers at it, then prints what happened and checks that
# the orders in MySQL equal the units sold. Stops the stack afterwards
# unless KEEP_RUNNING=1.
#
#   scripts/demo.sh [extra loadtest flash-sale arguments, e.g. --buyers 50000]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/scripts/setup.sh" --release
bash "$ROOT/scripts/stack.sh" start
[ "${KEEP_RUNNING:-0}" = 1 ] || trap 'bash "$ROOT/scripts/stack.sh" stop' EXIT

log "flash sale: 1,000 units, 20,000 buyers"
"$(cat "$STATE/bin-dir")/loadtest" flash-sale --target "http://127.0.0.1:$GATEWAY_PORT" \
  --stock 1000 --buyers 20000 --json "$STATE/flash-sale-report.json" "$@"
