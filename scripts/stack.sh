#!/usr/bin/env bash
# Starts or stops the gateway, the settler and the payment channel simulator
# in the background, for k6, curl or a storefront. Run scripts/setup.sh (or
# scripts/demo.sh) first.
#
#   scripts/stack.sh start    gateway on 127.0.0.1:$GATEWAY_PORT (8080), settler, paysim on :9700
#   scripts/stack.sh stop     SIGTERM all: drain, flush, commit, exit
#   scripts/stack.sh status
#
# Config: GATEWAY_CONFIG (default config/gateway.local.toml: no per-IP
# bucket, since all local load comes from 127.0.0.1; its [traffic] section
# reloads on save) / SETTLER_CONFIG files and GATEWAY_* / SETTLER_*
# variables, as documented in config/*.example.toml. Logs go to .local/*.log.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start_one() {
  local name=$1
  if running "$name"; then log "$name: already running (pid $(cat "$STATE/$name.pid"))"; return; fi
  [ -f "$STATE/bin-dir" ] || { log "run scripts/setup.sh first"; exit 1; }
  nohup "$(cat "$STATE/bin-dir")/$name" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
  log "$name: started (pid $!, log .local/$name.log)"
}

stop_one() {
  local name=$1
  if ! running "$name"; then rm -f "$STATE/$name.pid"; return; fi
  local pid; pid=$(cat "$STATE/$name.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "$name: still running after 15 s, killing"; kill -KILL "$pid"; fi
  rm -f "$STATE/$name.pid"
  log "$name: stopped"
}

case "${1:-}" in
  start)
    export GATEWAY_CONFIG="${GATEWAY_CONFIG:-$ROOT/config/gateway.local.toml}"
    export GATEWAY_SERVER__LISTEN="${GATEWAY_SERVER__LISTEN:-127.0.0.1:$GATEWAY_PORT}"
    export GATEWAY_KAFKA__BOOTSTRAP="${GATEWAY_KAFKA__BOOTSTRAP:-$KAFKA_BOOTSTRAP}"
    export SETTLER_KAFKA__BOOTSTRAP="${SETTLER_KAFKA__BOOTSTRAP:-$KAFKA_BOOTSTRAP}"
    export GATEWAY_REDIS__URL="${GATEWAY_REDIS__URL:-$REDIS_URL}"
    export GATEWAY_PAYMENTS__NOTIFY_URL="${GATEWAY_PAYMENTS__NOTIFY_URL:-http://127.0.0.1:$GATEWAY_PORT/v1/payments/notify}"
    start_one paysim
    start_one settler
    start_one gateway
    deadline=$((SECONDS + 30))
    until curl -fsS "http://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null 2>&1; do
      if ((SECONDS > deadline)); then log "gateway not ready after 30 s; see .local/gateway.log"; exit 1; fi
      running gateway || { log "gateway exited; see .local/gateway.log"; tail -5 "$STATE/gateway.log"; exit 1; }
      sleep 0.3
    done
    log "ready: http://127.0.0.1:$GATEWAY_PORT (admin token: dev-admin-token unless configured)"
    ;;
  stop)
    stop_one gateway
    stop_one settler
    stop_one paysim
    ;;
  status)
    for name in gateway settler paysim; do
      if running "$name"; then echo "$name: running (pid $(cat "$STATE/$name.pid"))"; else echo "$name: stopped"; fi
    done
    ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
