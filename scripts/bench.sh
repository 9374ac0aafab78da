#!/usr/bin/env bash
# Measures the floors and the stack against them in one run, on this
# machine, and prints two tables (also .local/bench.json): a bare hyper
# server vs the gateway's sold-out path; reserve.lua, a Kafka produce and
# the two composed (no HTTP) vs the gateway's accepted path, with the
# settler draining beside it and paused; a plain batched INSERT vs the
# settler's drain rate; then each phase's CPU time per 1,000 operations in
# every process of the stack, and the gateway's and settler's peak RSS;
# then order reads beside a sale against a plain Redis GET and a plain
# primary-key SELECT (loadtest queries, also .local/queries.json); then cart
# checkouts against single orders placed in the same run (loadtest cart,
# also .local/cart.json).
# Restarts the memory-only broker (it slows as it fills) and the stack with
# config/gateway.bench.toml (no token buckets), and stops the stack afterwards.
# The stack runs on Redis keys under `bench:` and shard databases
# bench_orders_0..3 of its own, emptied first: orders an earlier run left
# would time out during this one and be measured with it.
#
#   scripts/bench.sh [loadtest bench arguments, e.g. --requests 100000 --concurrency 128]
#   BENCH=queries scripts/bench.sh     # the order reads only
#   BENCH=cart scripts/bench.sh        # the cart checkouts only
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
bash "$ROOT/scripts/setup.sh" --release --fresh-broker
GATEWAY_CONFIG="$ROOT/config/gateway.bench.toml" bash "$ROOT/scripts/stack.sh" start
trap 'bash "$ROOT/scripts/stack.sh" stop' EXIT

log "benchmark on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load generator and stack share them"
broker_pid=$(port_pid "$KAFKA_PORT")
redis_pid=$(port_pid "$REDIS_PORT")
mysql_pid=$(port_pid "$MYSQL_PORT")
if [ "${BENCH:-all}" = all ]; then
  "$(cat "$STATE/bin-dir")/loadtest" bench --target "$GATEWAY_URL" --gateway-pid "$(cat "$RUN/gateway.pid")" \
    --settler-pid "$(cat "$RUN/settler.pid")" ${broker_pid:+--broker-pid "$broker_pid"} \
    ${redis_pid:+--redis-pid "$redis_pid"} ${mysql_pid:+--mysql-pid "$mysql_pid"} --json "$STATE/bench.json" "$@"
fi
if [ "${BENCH:-all}" != cart ]; then
  log "order reads beside a sale, against a Redis GET and a primary-key SELECT"
  "$(cat "$STATE/bin-dir")/loadtest" queries --target "$GATEWAY_URL" --json "$STATE/queries.json"
fi
if [ "${BENCH:-all}" != queries ]; then
  log "cart checkouts of 2 to 4 SKUs racing for stock, against single orders in the same run"
  "$(cat "$STATE/bin-dir")/loadtest" cart --target "$GATEWAY_URL" --buyers 5000 --stock 2000 --json "$STATE/cart.json"
fi
