#!/usr/bin/env bash
# The fault suite: a stack of its own on spare ports — a Redis with an
# append-only file, two MariaDB servers (shard 3 on the second), an Apache
# Kafka cluster of three nodes (replication factor 3, min.insync.replicas 2;
# CHAOS_BROKERS=1 for a single node; as root, each node runs as a uid of its
# own, so that broker_cut can cut one off with iptables), two gateways (node ids 0 and 1) and
# two settlers — and, per scenario, a
# fresh sale (in turn one pool, regional stock over three warehouses with
# buyers in three regions, or deduction at payment; CHAOS_SALE=pool,
# regional or on_payment for one kind only), buyers who retry with their
# key on the other gateway, a fault
# injected mid-sale, then the same invariants (loadtest chaos-check): Redis's
# units add up; MySQL's live orders hold exactly what Redis holds; every
# order answered 2xx is stored once, live, on its user's shard; the
# settlers' consumer group has no lag. Prints one table, with the longest
# stretch in which no order was accepted; exits non-zero if any invariant
# failed.
#
#   scripts/chaos.sh            every scenario
#   scripts/chaos.sh --short    the test command's subset
#   scripts/chaos.sh NAME...    the scenarios named
#   CHAOS_SEED=7 scripts/chaos.sh mix mix mix
#                               three faults drawn at random per sale (seeded)
#
# Scenarios: broker_stall, broker_kill, broker_cut, brokers_below_isr, settler_rebalance,
# gateway_kill, settler_kill, kill_one_of_each, redis_restart, shard_down,
# key_reuse, live_change, mix.
set -euo pipefail

SPARE_STACK=chaos
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MYSQL_PORT_2="$(free_port)"
export MYSQL_PORT_2
GATEWAY_PORT_2="$(free_port)"
export GATEWAY_PORT_2
export MYSQL_SHARDS="$MYSQL_URL/orders_0,$MYSQL_URL/orders_1,$MYSQL_URL/orders_2,mysql://flashsale:flashsale@127.0.0.1:$MYSQL_PORT_2/orders_3"

BROKERS="${CHAOS_BROKERS:-3}"

case "${1:-}" in
  --short) SCENARIOS=(broker_kill broker_cut brokers_below_isr kill_one_of_each key_reuse) ;;
  "") SCENARIOS=(broker_stall broker_kill broker_cut brokers_below_isr settler_rebalance gateway_kill settler_kill
    kill_one_of_each redis_restart shard_down key_reuse live_change) ;;
  *) SCENARIOS=("$@") ;;
esac

# --- processes -------------------------------------------------------------

pid_of() { cat "$RUN/$1.pid"; }
kafka() { bash "$ROOT/scripts/kafka.sh" "$@"; }

start_chaos_redis() {
  start_redis redis "$REDIS_PORT" "$RUN" --appendonly yes --appendfsync always --appendfilename chaos.aof
}

BIN=""
start_gateway() { # NAME NODE PORT
  (
    export GATEWAY_SERVER__NODE_ID="$2" GATEWAY_SERVER__LISTEN="127.0.0.1:$3"
    export GATEWAY_CONFIG="$ROOT/config/gateway.local.toml"
    proc_start "$1" "$BIN/gateway"
  )
  wait_ready "$1" "http://127.0.0.1:$3/readyz" 40
}

start_settler() { proc_start "$1" "$BIN/settler"; }

stop_all() {
  for name in gateway_a gateway_b settler_a settler_b settler_c redis "mariadb-$MYSQL_PORT" "mariadb-$MYSQL_PORT_2"; do
    proc_stop "$name" 30 || true
  done
  kafka stop >/dev/null 2>&1 || true
}
trap stop_all EXIT

# --- set-up ----------------------------------------------------------------

start_chaos_redis
# As root, a broker can be cut off the network (scripts/kafka.sh cut).
[ "$(id -u)" = 0 ] && export KAFKA_CUTTABLE=1
kafka start "$BROKERS"
KAFKA_BOOTSTRAP="$(kafka bootstrap)"
export KAFKA_BOOTSTRAP
MYSQL_PORT="$MYSQL_PORT_2" bash "$ROOT/scripts/setup.sh" --services-only
log "chaos stack: redis $REDIS_PORT, mariadb $MYSQL_PORT + $MYSQL_PORT_2, kafka $KAFKA_BOOTSTRAP, gateways $GATEWAY_PORT + $GATEWAY_PORT_2"
bash "$ROOT/scripts/setup.sh"
BIN="$(cat "$STATE/bin-dir")"
export SETTLER_OPS__LISTEN=127.0.0.1:0   # two settlers: any free port each
stack_env
# Faults resolve within seconds here: a short broker timeout and confirm
# window, so unconfirmed orders are swept during the check.
export GATEWAY_KAFKA__MESSAGE_TIMEOUT_MS=2000 GATEWAY_ORDERS__CONFIRM_WINDOW_SECS=6
export SETTLER_SWEEPER__EVERY_MS=200 SETTLER_KAFKA__SESSION_TIMEOUT_MS=6000
start_settler settler_a
start_settler settler_b
start_gateway gateway_a 0 "$GATEWAY_PORT"
start_gateway gateway_b 1 "$GATEWAY_PORT_2"
TARGETS="http://127.0.0.1:$GATEWAY_PORT,http://127.0.0.1:$GATEWAY_PORT_2"

admin() { # METHOD SKU BODY
  curl -fsS -X "$1" "$GATEWAY_URL/admin/skus/$2" -H 'authorization: Bearer dev-admin-token' \
    -H 'content-type: application/json' -d "$3" >/dev/null
}
warehouse_change() { # SKU BODY
  curl -fsS -X POST "$GATEWAY_URL/admin/skus/$1/warehouses" -H 'authorization: Bearer dev-admin-token' \
    -H 'content-type: application/json' -d "$2" >/dev/null
}

# buyers SKU FIRST_USER OUT [REGIONS]: 600 clicks at 100/s over both
# gateways, in the background.
buyers() {
  "$BIN/loadtest" chaos-buyers --target "$TARGETS" --sku "$1" --first-user "$2" --buyers 600 --rate 100 \
    --retry-secs 30 --regions "${4:-0}" --out "$3" >"$3.log" 2>&1 &
}

# sale KIND SKU: loads a sale of 450 units of KIND; prints the buyers' regions.
sale() {
  case "$1" in
    pool) admin PUT "$2" '{"stock": 450, "per_user_limit": 2, "price_cents": 1000}'; echo 0 ;;
    regional)
      admin PUT "$2" '{"stock": 450, "per_user_limit": 2, "price_cents": 1000, "warehouses": [
        {"warehouse": "wh1", "units": 150}, {"warehouse": "wh2", "units": 150}, {"warehouse": "wh3", "units": 150}]}'
      echo 3 ;;
    on_payment)
      admin PUT "$2" '{"stock": 450, "per_user_limit": 2, "price_cents": 1000, "deduction": "on_payment",
        "open_orders_cap_pct": 100}'
      echo 0 ;;
    *) die "no sale kind $1" ;;
  esac
}
SALE_KINDS=(pool regional on_payment)

# --- scenarios: each injects its fault while the buyers click ---------------

# A broker answers nothing for twice the message timeout, then resumes.
broker_stall() { kafka stall 1; sleep 4; kafka resume 1; }
# The broker leading the most partitions SIGKILLed, back 5 s later: its
# partitions' leadership moves (on one node, the topic is away meanwhile).
broker_kill() {
  local node
  node=$(kafka leader order-events)
  kafka kill "${node:-1}"
  sleep 5
  kafka start-node "${node:-1}"
}
# The broker leading the most partitions cut off from every other process
# (alive, its packets dropped) for 10 s: the others fence it and take its
# partitions; back, it finds it is no longer leader and catches up. Where
# no broker can be cut off (not root), a stall stands in for it.
broker_cut() {
  local node
  node=$(kafka leader order-events)
  if ! kafka cut "${node:-1}"; then
    log "broker_cut: cannot cut a broker off here (needs root and iptables); stalling it instead"
    kafka stall "${node:-1}"
    sleep 10
    kafka resume "${node:-1}"
    return
  fi
  sleep 10
  kafka heal "${node:-1}"
}
# Two of three brokers SIGKILLed: fewer in-sync replicas than
# min.insync.replicas (and no controller quorum), so nothing can be
# acknowledged; one back after 8 s, the other 4 s later. On one node: a kill.
brokers_below_isr() {
  if [ "$BROKERS" -lt 3 ]; then broker_kill; return; fi
  kafka kill 2
  kafka kill 3
  sleep 8
  kafka start-node 2
  sleep 4
  kafka start-node 3
}
# A third settler joins mid-drain, then one of the first two leaves and comes
# back, then the third leaves: partitions move while batches are in flight.
settler_rebalance() {
  start_settler settler_c
  sleep 2
  kill -TERM "$(pid_of settler_a)"
  sleep 2
  start_settler settler_a
  sleep 2
  kill -TERM "$(pid_of settler_c)"
}
gateway_kill() { kill -KILL "$(pid_of gateway_a)"; sleep 1; start_gateway gateway_a 0 "$GATEWAY_PORT"; }
settler_kill() { kill -KILL "$(pid_of settler_a)"; sleep 2; start_settler settler_a; }
kill_one_of_each() {
  kill -KILL "$(pid_of gateway_b)" "$(pid_of settler_b)"
  sleep 2
  start_settler settler_b
  start_gateway gateway_b 1 "$GATEWAY_PORT_2"
}
redis_restart() {
  redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
  sleep 1
  start_chaos_redis
}
shard_down() {
  proc_stop "mariadb-$MYSQL_PORT_2" 60
  sleep 3
  MYSQL_PORT="$MYSQL_PORT_2" bash "$ROOT/scripts/setup.sh" --services-only >/dev/null 2>&1
}
key_reuse() {
  # Some buyers' key records expire mid-sale; those buyers click again with
  # the same key the next day: new orders.
  local keys
  keys=$(redis-cli -p "$REDIS_PORT" --scan --pattern "idem:{$SKU}:*" | head -50 || true)
  [ -n "$keys" ] && redis-cli -p "$REDIS_PORT" del $keys >/dev/null
  "$BIN/loadtest" chaos-buyers --target "$TARGETS" --sku "$SKU" --first-user "$FIRST_USER" --buyers 100 \
    --rate 100 --retry-secs 30 --regions "$regions" --out "$RUN/$SKU.again.$RANDOM.json" >>"$RUN/$SKU.again.log" 2>&1
}
live_change() {
  if [ "$kind" = regional ]; then
    # Units added to one warehouse, some moved to another, one closed.
    warehouse_change "$SKU" '{"action": "add", "warehouse": "wh2", "units": 100}'
    sleep 1
    warehouse_change "$SKU" '{"action": "move", "warehouse": "wh2", "to": "wh3", "units": 20}' || true
    warehouse_change "$SKU" '{"action": "close", "warehouse": "wh1"}'
    admin PATCH "$SKU" '{"price_cents": 1200}'
    return
  fi
  admin PATCH "$SKU" '{"add_units": 100, "per_user_limit": 2}'
  sleep 1
  admin PATCH "$SKU" '{"add_units": -20, "price_cents": 1200}' || true
}

# mix: three faults one after the other, drawn with CHAOS_SEED.
FAULTS=(broker_stall broker_kill broker_cut brokers_below_isr settler_rebalance gateway_kill settler_kill
  kill_one_of_each redis_restart shard_down key_reuse live_change)
RANDOM="${CHAOS_SEED:-$$}"
log "chaos seed ${CHAOS_SEED:-$$}"
mix() {
  local picked=()
  for _ in 1 2 3; do picked+=("${FAULTS[RANDOM % ${#FAULTS[@]}]}"); done
  log "mix: ${picked[*]}"
  for fault in "${picked[@]}"; do "$fault"; sleep 0.5; done
}

ROWS=()
failed=0
for scenario in "${SCENARIOS[@]}"; do
  declare -F "$scenario" >/dev/null || die "no scenario $scenario"
  SKU="chaos_${scenario}_${#ROWS[@]}_$RANDOM"
  FIRST_USER=$((RANDOM * 1000 + 1))
  kind="${CHAOS_SALE:-${SALE_KINDS[${#ROWS[@]} % ${#SALE_KINDS[@]}]}}"
  regions=$(sale "$kind" "$SKU")
  log "$scenario: $kind sale $SKU, 450 units, 600 buyers"
  buyers "$SKU" "$FIRST_USER" "$RUN/$SKU.json" "$regions"
  buyers_pid=$!
  sleep 2
  fault_from=$(date +%s%3N)
  "$scenario"
  fault_to=$(date +%s%3N)
  wait "$buyers_pid" || die "the buyers of $scenario failed: $(tail -3 "$RUN/$SKU.json.log")"
  answers="$RUN/$SKU.json"
  for again in "$RUN/$SKU".again.*.json; do
    [ -f "$again" ] || continue
    python3 - "$answers" "$again" <<'PY'
import json, sys
first, again = (json.load(open(p)) for p in sys.argv[1:])
first["accepted"].update(again["accepted"])
json.dump(first, open(sys.argv[1], "w"))
PY
  done
  if out=$("$BIN/loadtest" chaos-check --answers "$answers" --settle-secs 60 2>&1); then result=held; else result=BROKEN; failed=1; fi
  echo "$out" | sed "s/^/  $scenario /" >&2
  cells=$(echo "$out" | grep -E '^\[' | sed -E 's/^\[ ok \].*/held/; s/^\[FAIL\].*/BROKEN/' | paste -sd'|')
  gap=$(grep -o 'longest gap without an acceptance [0-9]* ms' "$RUN/$SKU.json.log" | grep -o '[0-9]* ms' || echo "?")
  during=$(python3 -c 'import json, sys
times = json.load(open(sys.argv[1])).get("accepted_at_ms", [])
print(sum(int(sys.argv[2]) <= t <= int(sys.argv[3]) for t in times))' "$RUN/$SKU.json" "$fault_from" "$fault_to")
  ROWS+=("| $scenario | $kind | ${cells//|/ | } | $during in $(((fault_to - fault_from) / 1000)) s | $gap | $(head -1 "$RUN/$SKU.json.log" | sed 's/, longest gap.*//; s/|/\//g') |")
done

echo
echo "| scenario ($BROKERS broker(s)) | sale | units add up | MySQL live = Redis held | every 2xx stored once, live | consumer lag 0 | accepted during the fault | no order accepted for | buyers |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
exit "$failed"
