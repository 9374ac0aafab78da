#!/usr/bin/env bash
# Measures the floors and the stack against them in one run, on this
# machine, and prints two tables (also .local/bench.json): a bare hyper
# server vs the gateway's sold-out path; reserve.lua, a Kafka produce and
# the two composed (no HTTP) vs the gateway's accepted path, with the
# settler draining beside it and paused; a plain batched INSERT vs the
# settler's drain rate; then each phase's CPU time per 1,000 operations in
# every process of the stack, and the gateway's and settler's peak RSS;
# then order reads beside a sale, while the settler drains a backlog of
# 100,000 orders placed with it paused (READS_BACKLOG=0 for a quiet stack),
# against a plain Redis GET and a plain primary-key SELECT (loadtest
# queries, also .local/queries.json); then cart
# checkouts against single orders placed in the same run (loadtest cart,
# also .local/cart.json); then a whole sale of SALE_ORDERS (1,000,000)
# accepted orders on the broker all that wrote to, its rate per 10 s
# window; then the headline run, HEADLINE_BUYERS (1,000,000) buyers on
# 10,000 units with the local config and its buckets; then the goals of
# docs/performance.md beside their targets (scripts/goals.py).
# Restarts the broker only when it is a tansu the set-up started (it slows as
# it fills; a Kafka node is left as it is), and the stack with
# config/gateway.bench.toml (no token buckets), and stops the stack afterwards.
# The stack runs on Redis keys under `bench:` and shard databases
# bench_orders_0..3 of its own, emptied first: orders an earlier run left
# would time out during this one and be measured with it.
#
#   scripts/bench.sh [loadtest bench arguments, e.g. --requests 100000 --concurrency 128]
#   BENCH=queries scripts/bench.sh     # the order reads only
#   BENCH=cart scripts/bench.sh        # the cart checkouts only
#   BENCH=brokers scripts/bench.sh     # tansu (memory) against a Kafka node, side by side:
#                                      # start-up, RSS, the accepted path three rounds in a row
#   BENCH=traces scripts/bench.sh      # the accepted path with no span (RUST_LOG=warn), with the
#                                      # spans of the log lines (the default), and exporting them to
#                                      # a local OTLP receiver, 1 % and all requests sampled
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export GATEWAY_REDIS__NAMESPACE=bench: SETTLER_REDIS__NAMESPACE=bench:
export MYSQL_SHARDS="$MYSQL_URL/bench_orders_0,$MYSQL_URL/bench_orders_1,$MYSQL_URL/bench_orders_2,$MYSQL_URL/bench_orders_3"
bash "$ROOT/scripts/stack.sh" stop
# The services first (a fresh machine has none), then last run's leftovers
# out, then the build, the shard databases and the topics.
bash "$ROOT/scripts/setup.sh" --services-only
if command -v redis-cli >/dev/null; then
  redis-cli -p "$REDIS_PORT" --scan --pattern 'bench:*' | xargs -r -n 500 redis-cli -p "$REDIS_PORT" unlink >/dev/null
else
  log "no redis-cli: keys under bench: from earlier runs stay"
fi
mariadb -h 127.0.0.1 -P "$MYSQL_PORT" -u flashsale -pflashsale -e \
  "DROP DATABASE IF EXISTS bench_orders_0; DROP DATABASE IF EXISTS bench_orders_1;
   DROP DATABASE IF EXISTS bench_orders_2; DROP DATABASE IF EXISTS bench_orders_3;"
bash "$ROOT/scripts/setup.sh" --release --fresh-broker --with-tansu
BIN="$(cat "$STATE/bin-dir")"

# brokers: each broker on a spare port of its own, the stack pointed at it,
# the accepted path three rounds of 10 s-ish in a row (does it slow as its
# log fills?), with the broker's start-up time, CPU per order and peak RSS.
if [ "${BENCH:-all}" = brokers ]; then
  bash "$ROOT/scripts/stack.sh" stop
  trap 'bash "$ROOT/scripts/stack.sh" stop' EXIT
  for broker in tansu kafka; do
    port=$(free_port)
    started=$(date +%s%N)
    if [ "$broker" = tansu ]; then
      proc_start bench-tansu "$STATE/venv/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/
      broker_pid=$(cat "$RUN/bench-tansu.pid")
    else
      export KAFKA_PORT=$port
      KAFKA_CONTROLLER_PORT=$(free_port)
      export KAFKA_CONTROLLER_PORT
      RUN_DIR="$RUN/bench-kafka" bash "$ROOT/scripts/kafka.sh" wipe
      RUN_DIR="$RUN/bench-kafka" bash "$ROOT/scripts/kafka.sh" start
      broker_pid=$(RUN_DIR="$RUN/bench-kafka" bash "$ROOT/scripts/kafka.sh" pid 1)
    fi
    until [ "$(metadata_brokers "$port" 2>/dev/null)" = 1 ]; do sleep 0.05; done
    startup_ms=$((($(date +%s%N) - started) / 1000000))
    export GATEWAY_KAFKA__BOOTSTRAP="127.0.0.1:$port" SETTLER_KAFKA__BOOTSTRAP="127.0.0.1:$port"
    "$BIN/settler" setup
    GATEWAY_CONFIG="$ROOT/config/gateway.bench.toml" bash "$ROOT/scripts/stack.sh" start
    log "$broker: serving in $startup_ms ms; the accepted path, three rounds"
    "$BIN/loadtest" bench --target "$GATEWAY_URL" --gateway-pid "$(cat "$RUN/gateway.pid")" \
      --broker-pid "$broker_pid" --accepted-rounds 3 --json "$STATE/bench-$broker.json" "$@"
    echo "$broker start-up $startup_ms ms, peak RSS $(peak_rss_mib "$broker_pid") MiB"
    bash "$ROOT/scripts/stack.sh" stop
    kill "$broker_pid"
    [ "$broker" = kafka ] && RUN_DIR="$RUN/bench-kafka" bash "$ROOT/scripts/kafka.sh" wipe
  done
  exit 0
fi

# traces: what the spans cost the accepted path, each variant on a fresh
# stack; the receiver takes every export and keeps nothing.
if [ "${BENCH:-all}" = traces ]; then
  sink_port=$(free_port)
  python3 - "$sink_port" <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
  sink=$!
  trap 'bash "$ROOT/scripts/stack.sh" stop; kill "$sink"' EXIT
  export GATEWAY_CONFIG="$ROOT/config/gateway.bench.toml"
  endpoint="http://127.0.0.1:$sink_port/v1/traces"
  for variant in no-spans log-spans export-1% export-all; do
    case "$variant" in
      no-spans) settings=(RUST_LOG=warn) ;;
      log-spans) settings=() ;;
      export-1%) settings=(GATEWAY_TRACING__OTLP_ENDPOINT="$endpoint" SETTLER_TRACING__OTLP_ENDPOINT="$endpoint"
        GATEWAY_TRACING__SAMPLE_RATIO=0.01) ;;
      export-all) settings=(GATEWAY_TRACING__OTLP_ENDPOINT="$endpoint" SETTLER_TRACING__OTLP_ENDPOINT="$endpoint"
        GATEWAY_TRACING__SAMPLE_RATIO=1) ;;
    esac
    env "${settings[@]}" bash "$ROOT/scripts/stack.sh" start
    log "traces, $variant: the accepted path, two rounds"
    "$BIN/loadtest" bench --target "$GATEWAY_URL" --gateway-pid "$(cat "$RUN/gateway.pid")" \
      --accepted-rounds 2 --json "$STATE/bench-traces-$variant.json" "$@"
    bash "$ROOT/scripts/stack.sh" stop
  done
  exit 0
fi

SALE_ORDERS=${SALE_ORDERS:-1000000} HEADLINE_BUYERS=${HEADLINE_BUYERS:-1000000}
rm -f "$STATE"/{bench,queries,sale,headline,rss}.json
GATEWAY_CONFIG="$ROOT/config/gateway.bench.toml" bash "$ROOT/scripts/stack.sh" start
trap 'bash "$ROOT/scripts/stack.sh" stop' EXIT

log "benchmark on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load generator and stack share them"
broker_pid=$(port_pid "$KAFKA_PORT")
redis_pid=$(port_pid "$REDIS_PORT")
mysql_pid=$(port_pid "$MYSQL_PORT")
if [ "${BENCH:-all}" = all ]; then
  "$BIN/loadtest" bench --target "$GATEWAY_URL" --gateway-pid "$(cat "$RUN/gateway.pid")" \
    --settler-pid "$(cat "$RUN/settler.pid")" ${broker_pid:+--broker-pid "$broker_pid"} \
    ${redis_pid:+--redis-pid "$redis_pid"} ${mysql_pid:+--mysql-pid "$mysql_pid"} --json "$STATE/bench.json" "$@"
fi
if [ "${BENCH:-all}" != cart ]; then
  log "order reads beside a sale, against a Redis GET and a primary-key SELECT"
  "$(cat "$STATE/bin-dir")/loadtest" queries --target "$GATEWAY_URL" --json "$STATE/queries.json" \
    --backlog "${READS_BACKLOG:-100000}" --settler-pid "$(cat "$RUN/settler.pid")"
fi
if [ "${BENCH:-all}" != queries ]; then
  log "cart checkouts of 2 to 4 SKUs racing for stock, against single orders in the same run"
  "$(cat "$STATE/bin-dir")/loadtest" cart --target "$GATEWAY_URL" --buyers 5000 --stock 2000 --json "$STATE/cart.json"
fi
if [ "${BENCH:-all}" = all ]; then
  # A whole sale on the broker the phases above wrote to: does the rate
  # hold as its log fills? Stock for every buyer, so each answer is an order.
  log "a whole sale: $SALE_ORDERS accepted orders in one run, its rate per 10 s window"
  "$BIN/loadtest" flash-sale --target "$GATEWAY_URL" --buyers "$SALE_ORDERS" --stock "$SALE_ORDERS" \
    --concurrency 64 --max-secs 1800 --settle-secs 900 --json "$STATE/sale.json" >"$STATE/sale.log"
  tail -n 25 "$STATE/sale.log"
  gateway_mib=$(peak_rss_mib "$(cat "$RUN/gateway.pid")")
  broker_mib=$(peak_rss_mib "$(port_pid "$KAFKA_PORT")")
  # The headline: the local config with its token buckets, on a fresh gateway.
  bash "$ROOT/scripts/stack.sh" stop
  GATEWAY_CONFIG="$ROOT/config/gateway.local.toml" bash "$ROOT/scripts/stack.sh" start
  log "the headline run: $HEADLINE_BUYERS distinct buyers on 10,000 units, the local config"
  "$BIN/loadtest" flash-sale --target "$GATEWAY_URL" --buyers "$HEADLINE_BUYERS" --stock 10000 \
    --concurrency 64 --max-secs 300 --json "$STATE/headline.json" >"$STATE/headline.log"
  tail -n 25 "$STATE/headline.log"
  echo "{\"gateway_mib\": $gateway_mib, \"broker_mib\": $broker_mib," \
    "\"headline_gateway_mib\": $(peak_rss_mib "$(cat "$RUN/gateway.pid")")}" >"$STATE/rss.json"
  log "the goals of docs/performance.md, from this run"
  python3 "$ROOT/scripts/goals.py" "$STATE"
fi
