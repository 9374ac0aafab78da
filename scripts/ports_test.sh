#!/usr/bin/env bash
# The fresh-machine check of the test command: scripts/setup.sh and
# scripts/stack.sh start on spare ports where nothing runs yet, so setup.sh
# starts a Redis, a MariaDB (its own data directory) and a Kafka node of
# this test's own; then the images are built (scripts/images.sh) and the
# binaries copied out of them run k6 smoke runs (flash sale, idempotency
# storm) and a small sale deducting at payment; then small flash
# sales (one pool, and regional stock) through the load generator
# (payments, timeouts, resale, every order counted in MySQL), and a check
# that each process of the stack talks to these ports and to no default
# one. Stops everything it started.
#
#   scripts/ports_test.sh
set -euo pipefail

# The caller's ports (or the defaults), which the spare stack must not touch.
CALLER_PORTS="${REDIS_PORT:-6379} ${MYSQL_PORT:-3306} ${KAFKA_PORT:-9092} ${GATEWAY_PORT:-8080} ${PAYSIM_PORT:-9700} ${WALLET_PORT:-9701} ${SETTLER_PORT:-9101}"
CALLER_REDIS_PORT="${REDIS_PORT:-6379}"
SPARE_STACK=ports-test
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_all() {
  bash "$ROOT/scripts/stack.sh" stop || true
  bash "$ROOT/scripts/setup.sh" --stop || true
}
trap stop_all EXIT

# A port taken by something else is refused with the variable to change.
squatter_port=$(free_port)
python3 -m http.server --bind 127.0.0.1 "$squatter_port" >/dev/null 2>&1 &
squatter=$!
wait_port "$squatter_port" 10 "http.server"
for variable in REDIS_PORT MYSQL_PORT KAFKA_PORT; do
  if out=$(env "$variable=$squatter_port" bash "$ROOT/scripts/setup.sh" 2>&1); then
    kill "$squatter"; die "setup.sh accepted an HTTP server as $variable"
  fi
  grep -q "set $variable to a free port" <<<"$out" || { kill "$squatter"; echo "$out" >&2; die "no message naming $variable"; }
done
kill "$squatter"

log "ports test: redis $REDIS_PORT, mariadb $MYSQL_PORT, kafka $KAFKA_PORT, gateway $GATEWAY_PORT, paysim $PAYSIM_PORT and $WALLET_PORT"
bash "$ROOT/scripts/setup.sh"
for port in "$REDIS_PORT" "$MYSQL_PORT" "$KAFKA_PORT"; do
  grep -q "$port" <(ls "$RUN") || die "setup.sh did not start a service of its own on port $port"
done

# k6 first, with the default payment window: no unit times out and sells
# again during the run, so accepted <= stock is the invariant. The smoke
# checks answers, not speed: on a broker started seconds ago (its JIT
# cold) and a debug build, a p99 of a few hundred ms says nothing, so the
# latency thresholds only catch a request left hanging (5 s); speed is
# measured by scripts/bench.sh.
image_bin="$RUN/image-bin"
bash "$ROOT/scripts/images.sh" --extract "$image_bin"
BIN_DIR="$image_bin" bash "$ROOT/scripts/stack.sh" start
log "k6 smoke: k6/flash_sale.js, k6/idempotency.js and k6/checkout.js against the gateway copied out of its image"
"$STATE/venv/bin/k6" run --quiet --no-usage-report -e BASE_URL="$GATEWAY_URL" \
  -e RATE=300 -e DURATION=5s -e STOCK=300 -e P99_MS=5000 "$ROOT/k6/flash_sale.js"
"$STATE/venv/bin/k6" run --quiet --no-usage-report -e BASE_URL="$GATEWAY_URL" \
  -e RATE=300 -e DURATION=4s -e KEYS=50 "$ROOT/k6/idempotency.js"
"$STATE/venv/bin/k6" run --quiet --no-usage-report -e BASE_URL="$GATEWAY_URL" \
  -e RATE=100 -e DURATION=4s -e STOCK=100 -e P99_MS=5000 "$ROOT/k6/checkout.js"
API_FUZZ_SECS="${API_FUZZ_SECS:-30}" bash "$ROOT/scripts/api_fuzz.sh"

# A sale deducting at payment: every buyer pays, the fastest get the units,
# the others are refunded.
"$image_bin/loadtest" flash-sale --sku "pay_$(date +%s)_$RANDOM" --stock 30 --buyers 300 \
  --concurrency 16 --strategy on_payment --open-orders-cap-pct 200 --settle-secs 60 --max-secs 60

# Then the order's life with a short payment window: payments, timeouts,
# the units sold again, every order counted in MySQL.
bash "$ROOT/scripts/stack.sh" stop
GATEWAY_ORDERS__PAYMENT_WINDOW_SECS=6 GATEWAY_ORDERS__CONFIRM_WINDOW_SECS=4 GATEWAY_KAFKA__MESSAGE_TIMEOUT_MS=1000 \
  bash "$ROOT/scripts/stack.sh" start
sku="ports_$(date +%s)_$RANDOM"
"$(cat "$STATE/bin-dir")/loadtest" flash-sale --sku "$sku" --stock 40 --buyers 400 --concurrency 16 \
  --pay-fraction 0.5 --settle-secs 60 --max-secs 60
# The same life on regional stock: three warehouses, buyers in three
# regions (config/gateway.local.toml's scheduling rules).
"$(cat "$STATE/bin-dir")/loadtest" flash-sale --sku "${sku}_regions" --stock 30 --buyers 300 --concurrency 16 \
  --pay-fraction 0.5 --regions 3 --settle-secs 60 --max-secs 60

# peers PID: the ports the process connected to (its established TCP
# connections, less those accepted on its own listening port).
peers() {
  ss -tnpH state established | grep "pid=$1," | awk '{print $3, $4}' | sed 's/[^ ]*:\([0-9]*\) [^ ]*:\([0-9]*\)/\1 \2/' \
    | awk -v own="$GATEWAY_PORT" '$1 != own {print $2}' | sort -u
}
check_peers() {
  local name=$1 pid; pid=$(cat "$RUN/$1.pid")
  shift
  local seen; seen=" $(peers "$pid" | tr '\n' ' ') "
  for port in "$@"; do
    [[ "$seen" == *" $port "* ]] || die "$name has no connection to port $port (peers:$seen)"
  done
  for port in $CALLER_PORTS; do
    [[ "$seen" != *" $port "* ]] || die "$name talks to the caller's port $port (peers:$seen)"
  done
  log "$name talks to ports$seen"
}
check_peers gateway "$REDIS_PORT" "$KAFKA_PORT"
curl -fsS "http://127.0.0.1:$SETTLER_PORT/healthz" >/dev/null || die "the settler's /healthz does not answer on $SETTLER_PORT"
curl -fsS "http://127.0.0.1:$SETTLER_PORT/metrics" | grep -q '^settler_batches_total' \
  || die "the settler's /metrics has no settler_batches_total"
check_peers settler "$REDIS_PORT" "$KAFKA_PORT" "$MYSQL_PORT"
# The alerting rules evaluated by a real Prometheus against this stack.
bash "$ROOT/scripts/prometheus_check.sh"

if command -v redis-cli >/dev/null && is_redis "$CALLER_REDIS_PORT" \
  && [ "$(redis-cli -p "$CALLER_REDIS_PORT" EXISTS "sale:{$sku}")" != 0 ]; then
  die "the sale reached the caller's Redis on port $CALLER_REDIS_PORT"
fi
log "ports test passed"
