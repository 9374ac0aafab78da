#!/usr/bin/env bash
# A replicated MariaDB pair of the project's own, for the read-replica
# tests: a primary with a binary log on REPLICA_PRIMARY_PORT (3307) and a
# replica of it on REPLICA_PORT (3308), each with its data, socket and log
# under .local, a `flashsale` user on both. Idempotent: what runs is left
# running; replication is set up once. The tests find them through
# MYSQL_REPLICATION_PRIMARY and MYSQL_REPLICA (server URLs, no database).
#
#   scripts/replica.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# start_server PORT SERVER_ID [extra mariadbd options]
start_server() {
  local port=$1 id=$2
  shift 2
  if port_open "$port"; then
    is_mysql "$port" || refuse_port "$port" "$([ "$id" = 1 ] && echo REPLICA_PRIMARY_PORT || echo REPLICA_PORT)" MariaDB
    return
  fi
  log "mariadb ($port): starting, server id $id"
  start_mariadb "mariadb-repl-$port" "$port" --server-id="$id" --max-connections=200 "$@"
}

# sql PORT STATEMENTS: as root over the socket of a server started here,
# else (a pair another checkout started) over TCP as root, then as flashsale.
sql() {
  local socket="$RUN/mariadb-repl-$1.sock"
  if [ -S "$socket" ]; then mariadb -uroot -S "$socket" -N -e "$2"; return; fi
  mariadb -uroot -h127.0.0.1 -P"$1" -N -e "$2" 2>/dev/null \
    || mariadb -uflashsale -pflashsale -h127.0.0.1 -P"$1" -N -e "$2"
}

start_server "$REPLICA_PRIMARY_PORT" 1 --log-bin=primary-bin --binlog-format=ROW
start_server "$REPLICA_PORT" 2 --relay-log=replica-relay
users="
  CREATE USER IF NOT EXISTS 'flashsale'@'127.0.0.1' IDENTIFIED BY 'flashsale';
  CREATE USER IF NOT EXISTS 'flashsale'@'localhost' IDENTIFIED BY 'flashsale';
  GRANT ALL PRIVILEGES ON *.* TO 'flashsale'@'127.0.0.1';
  GRANT ALL PRIVILEGES ON *.* TO 'flashsale'@'localhost';"
# The replica gets its users first and without the binary log's help:
# the primary's copies of them replicate as no-ops.
sql "$REPLICA_PORT" "SET sql_log_bin = 0; $users"
sql "$REPLICA_PRIMARY_PORT" "$users
  CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
  GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';"
if [ -z "$(sql "$REPLICA_PORT" "SHOW SLAVE STATUS")" ]; then
  log "mariadb ($REPLICA_PORT): replicating from 127.0.0.1:$REPLICA_PRIMARY_PORT"
  sql "$REPLICA_PORT" "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$REPLICA_PRIMARY_PORT,
    MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos;"
fi
# A test may have stopped a thread (to make the replica lag) and died.
sql "$REPLICA_PORT" "START SLAVE;"
log "ready: replication 127.0.0.1:$REPLICA_PRIMARY_PORT -> 127.0.0.1:$REPLICA_PORT"
