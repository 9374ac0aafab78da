#!/usr/bin/env bash
# The main job: sets everything up (release build), starts the gateway, the
# settler and the payment channel simulator, loads a sale of 1,000 units and
# sends a flash-sale burst of 20,000 distinct buyers at it. Then 70% of the
# buyers who got an order pay; the others let their 10-second payment window
# pass, the sweeper gives their units back, and a second wave of buyers buys
# them. Then the paid orders live on: most are pushed to the warehouse,
# shipped and received; some are cancelled before shipping (refunded, their
# units back on sale), returned (refunded, closed), exchanged, or have a
# return rejected; the rest wait in the warehouse. Prints what happened and
# checks that nothing was oversold or left stuck, that MySQL holds every
# order once, in the right status, with a history row per move, and that
# every refund was confirmed by the channel and none exceeds its payment.
# Then a thousand buyers check out carts of several SKUs racing for their
# stock; some cancel, the others pay; no SKU may hold a unit more or less
# than the live checkouts' items, and MySQL must hold each item once.
# Stops the stack afterwards unless KEEP_RUNNING=1.
#
#   scripts/demo.sh [extra loadtest flash-sale arguments, e.g. --buyers 50000]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$ROOT/scripts/setup.sh" --release
# Restart with the demo's short payment window.
bash "$ROOT/scripts/stack.sh" stop
# An order the broker has not confirmed holds its units for less than that.
GATEWAY_ORDERS__PAYMENT_WINDOW_SECS="${PAYMENT_WINDOW_SECS:-10}" GATEWAY_ORDERS__CONFIRM_WINDOW_SECS=8 \
  bash "$ROOT/scripts/stack.sh" start
[ "${KEEP_RUNNING:-0}" = 1 ] || trap 'bash "$ROOT/scripts/stack.sh" stop' EXIT

log "flash sale: 1,000 units, 20,000 buyers; 70% of the winners pay"
"$(cat "$STATE/bin-dir")/loadtest" flash-sale --target "$GATEWAY_URL" \
  --stock 1000 --buyers 20000 --pay-fraction 0.7 --json "$RUN/flash-sale-report.json" \
  --chart "$RUN/flash-sale.svg" "$@"

log "cart checkouts: 1,000 buyers, carts of 2 to 4 of 6 SKUs over two stores, racing for 300 units each; 20% cancel, the rest pay"
"$(cat "$STATE/bin-dir")/loadtest" cart --target "$GATEWAY_URL" --buyers 1000 --stock 300 \
  --cancel-fraction 0.2 --pay-fraction 1 --json "$RUN/cart-report.json"
