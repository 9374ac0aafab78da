#!/usr/bin/env bash
# Starts or stops the gateway, the settler and the payment channel simulator
# in the background, for k6, curl or a storefront. Run scripts/setup.sh (or
# scripts/demo.sh) first.
#
#   scripts/stack.sh start    gateway on 127.0.0.1:$GATEWAY_PORT (8080), settler (/healthz, /metrics
#                             on :$SETTLER_PORT, 9101), paysim on :$PAYSIM_PORT (9700)
#   scripts/stack.sh stop     SIGTERM all: drain, flush, commit, exit
#   scripts/stack.sh status
#
# Ports: REDIS_PORT, MYSQL_PORT, KAFKA_PORT, GATEWAY_PORT, PAYSIM_PORT reach
# every process (scripts/lib.sh). Config: GATEWAY_CONFIG (default
# config/gateway.local.toml: no per-IP bucket, since all local load comes
# from 127.0.0.1; its [traffic] section reloads on save) / SETTLER_CONFIG
# files and GATEWAY_<SECTION>__<FIELD> / SETTLER_<SECTION>__<FIELD>
# variables, as documented in config/*.example.toml. Logs go to
# $RUN_DIR/*.log (default .local/).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

running() { [ -f "$RUN/$1.pid" ] && pid_alive "$(cat "$RUN/$1.pid")"; }

# died NAME: the process exited during start-up; show why and stop.
died() {
  log "$1 exited during start-up; the end of $RUN/$1.log:"
  tail -20 "$RUN/$1.log" >&2
  exit 1
}

start_one() {
  local name=$1
  shift
  if running "$name"; then log "$name: already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  [ -f "$STATE/bin-dir" ] || die "run scripts/setup.sh first"
  nohup "$(cat "$STATE/bin-dir")/$name" "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  log "$name: started (pid $!, log $RUN/$name.log)"
}

# wait_listening NAME PORT: until NAME answers on PORT; fails loudly if it exits.
wait_listening() {
  local deadline=$((SECONDS + 30))
  until port_open "$2"; do
    running "$1" || died "$1"
    ((SECONDS < deadline)) || { log "$1 did not open port $2 in 30 s"; tail -20 "$RUN/$1.log" >&2; exit 1; }
    sleep 0.2
  done
}

# free_for NAME PORT VARIABLE: the port is free, or refuse to start.
free_for() {
  if ! running "$1" && port_open "$2"; then refuse_port "$2" "$3" "this stack's $1"; fi
}

stop_one() {
  local name=$1
  if ! running "$name"; then rm -f "$RUN/$name.pid"; return; fi
  local pid; pid=$(cat "$RUN/$name.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 150); do pid_alive "$pid" || break; sleep 0.1; done
  if pid_alive "$pid"; then log "$name: still running after 15 s, killing"; kill -KILL "$pid"; fi
  rm -f "$RUN/$name.pid"
  log "$name: stopped"
}

case "${1:-}" in
  start)
    export GATEWAY_CONFIG="${GATEWAY_CONFIG:-$ROOT/config/gateway.local.toml}"
    stack_env
    free_for paysim "$PAYSIM_PORT" PAYSIM_PORT
    free_for gateway "$GATEWAY_PORT" GATEWAY_PORT
    free_for settler "$SETTLER_PORT" SETTLER_PORT
    start_one paysim --listen "127.0.0.1:$PAYSIM_PORT"
    wait_listening paysim "$PAYSIM_PORT"
    start_one settler
    start_one gateway
    deadline=$((SECONDS + 30))
    until curl -fsS "$GATEWAY_URL/readyz" >/dev/null 2>&1; do
      running gateway || died gateway
      running settler || died settler
      if ((SECONDS > deadline)); then
        log "gateway not ready after 30 s; the end of $RUN/gateway.log:"
        tail -20 "$RUN/gateway.log" >&2
        exit 1
      fi
      sleep 0.3
    done
    wait_listening settler "$SETTLER_PORT"
    for name in paysim settler gateway; do running "$name" || died "$name"; done
    log "ready: $GATEWAY_URL (admin token: dev-admin-token unless configured)"
    ;;
  stop)
    stop_one gateway
    stop_one settler
    stop_one paysim
    ;;
  status)
    for name in gateway settler paysim; do
      if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
    done
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
