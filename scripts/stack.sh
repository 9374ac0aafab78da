#!/usr/bin/env bash
# Starts or stops the gateway, the settler and the payment channel simulator
# in the background, for k6, curl or a storefront. Run scripts/setup.sh (or
# scripts/demo.sh) first.
#
#   scripts/stack.sh start    gateway on 127.0.0.1:$GATEWAY_PORT (8080), settler (/healthz, /metrics
#                             on :$SETTLER_PORT, 9101), the payment channels' simulators:
#                             "card" on :$PAYSIM_PORT (9700), "wallet" on :$WALLET_PORT (9701)
#   scripts/stack.sh stop     SIGTERM all: drain, flush, commit, exit
#   scripts/stack.sh status
#
# Ports: REDIS_PORT, MYSQL_PORT, KAFKA_PORT, GATEWAY_PORT, PAYSIM_PORT, WALLET_PORT reach
# every process (scripts/lib.sh). Config: GATEWAY_CONFIG (default
# config/gateway.local.toml: no per-IP bucket, since all local load comes
# from 127.0.0.1; its [traffic] section reloads on save) / SETTLER_CONFIG
# files and GATEWAY_<SECTION>__<FIELD> / SETTLER_<SECTION>__<FIELD>
# variables, as documented in config/*.example.toml. Logs go to
# $RUN_DIR/*.log (default .local/). BIN_DIR runs the binaries of another
# folder (those copied out of the images: scripts/images.sh --extract)
# instead of the last build's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# start_as NAME BINARY ARGS...: one of the stack's processes, named NAME
# (its pid and log files), running BINARY of the build.
start_as() {
  local name=$1 binary=$2
  shift 2
  if proc_alive "$name"; then log "$name: already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  [ -n "${BIN_DIR:-}" ] || [ -f "$STATE/bin-dir" ] || die "run scripts/setup.sh first"
  : >"$RUN/$name.log"
  proc_start "$name" "${BIN_DIR:-$(cat "$STATE/bin-dir")}/$binary" "$@"
  log "$name: started (pid $(cat "$RUN/$name.pid"), log $RUN/$name.log)"
}

start_one() { start_as "$1" "$@"; }

# free_for NAME PORT VARIABLE: the port is free, or refuse to start.
free_for() {
  if ! proc_alive "$1" && port_open "$2"; then refuse_port "$2" "$3" "this stack's $1"; fi
}

stop_one() { if proc_stop "$1"; then log "$1: stopped"; fi; }

case "${1:-}" in
  start)
    export GATEWAY_CONFIG="${GATEWAY_CONFIG:-$ROOT/config/gateway.local.toml}"
    stack_env
    free_for paysim "$PAYSIM_PORT" PAYSIM_PORT
    free_for wallet "$WALLET_PORT" WALLET_PORT
    free_for gateway "$GATEWAY_PORT" GATEWAY_PORT
    free_for settler "$SETTLER_PORT" SETTLER_PORT
    start_one paysim --listen "127.0.0.1:$PAYSIM_PORT"
    wait_listening paysim "$PAYSIM_PORT" 30
    start_as wallet paysim --listen "127.0.0.1:$WALLET_PORT" --secret "$WALLET_SECRET"
    wait_listening wallet "$WALLET_PORT" 30
    start_one settler
    start_one gateway
    wait_ready gateway "$GATEWAY_URL/readyz" 30
    wait_listening settler "$SETTLER_PORT" 30
    for name in paysim wallet settler gateway; do proc_alive "$name" || proc_failed "$name" "exited"; done
    log "ready: $GATEWAY_URL (admin token: dev-admin-token unless configured)"
    ;;
  stop)
    for name in gateway settler wallet paysim; do stop_one "$name"; done
    ;;
  status)
    for name in gateway settler wallet paysim; do
      if proc_alive "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
    done
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
