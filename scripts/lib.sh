# Shared by the scripts: paths, ports, the variables every process gets, and
# small helpers. Sourced, not run.
#
# One set of variables moves the whole stack: REDIS_PORT, MYSQL_PORT,
# KAFKA_PORT, GATEWAY_PORT, PAYSIM_PORT (the "card" payment channel's
# simulator), WALLET_PORT ("wallet"'s), SETTLER_PORT (or REDIS_URL, MYSQL_URL,
# KAFKA_BOOTSTRAP). `stack_env` turns them into the GATEWAY_<SECTION>__<FIELD>
# and SETTLER_<SECTION>__<FIELD> settings of the binaries, and the load
# generator and the tests read REDIS_URL, KAFKA_BOOTSTRAP, MYSQL_URL,
# MYSQL_SHARDS, GATEWAY_URL and PAYSIM_URL.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# free_port: a port nothing listens on now, below the ephemeral range
# (32768 and up), so no outgoing connection is given it while a broker or
# server the fault suite killed is down and its restart finds it free; and
# none that an exported *_PORT* variable already gives to another process
# (picked, not yet listening). Export each port picked before the next.
free_port() {
  python3 -c '
import os, random, socket
given = {v for k, v in os.environ.items() if "_PORT" in k}
while True:
    port = random.randrange(20000, 32000)
    if str(port) in given:
        continue
    try:
        socket.socket().bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break'
}

# SPARE_STACK=<name>, set before sourcing: a stack of a test's own, on free
# ports (whatever the caller's ports are), with its logs, pids and data in
# a fresh .local/<name>. Exported, so the scripts it runs use the same.
if [ -n "${SPARE_STACK:-}" ]; then
  for port in REDIS_PORT MYSQL_PORT KAFKA_PORT KAFKA_CONTROLLER_PORT GATEWAY_PORT PAYSIM_PORT WALLET_PORT SETTLER_PORT; do
    export "$port=$(free_port)"
  done
  unset REDIS_URL MYSQL_URL KAFKA_BOOTSTRAP MYSQL_SHARDS
  export RUN_DIR="$ROOT/.local/$SPARE_STACK"
  rm -rf "$RUN_DIR"
  unset SPARE_STACK
fi

STATE="$ROOT/.local"                 # venv and the built binaries' path; git-ignored
RUN="${RUN_DIR:-$STATE}"             # logs, pid files and data of what the scripts start
mkdir -p "$STATE" "$RUN"

REDIS_PORT="${REDIS_PORT:-6379}"
MYSQL_PORT="${MYSQL_PORT:-3306}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}" # scripts/kafka.sh: node 1's KRaft controller
GATEWAY_PORT="${GATEWAY_PORT:-8080}"
PAYSIM_PORT="${PAYSIM_PORT:-9700}"
WALLET_PORT="${WALLET_PORT:-9701}"
SETTLER_PORT="${SETTLER_PORT:-9101}"                # the settler's /healthz and /metrics
REPLICA_PRIMARY_PORT="${REPLICA_PRIMARY_PORT:-3307}" # scripts/replica.sh: a primary with a binary log
REPLICA_PORT="${REPLICA_PORT:-3308}"                 # and its replica

export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"
export MYSQL_URL="${MYSQL_URL:-mysql://flashsale:flashsale@127.0.0.1:$MYSQL_PORT}"
export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"
export MYSQL_SHARDS="${MYSQL_SHARDS:-$MYSQL_URL/orders_0,$MYSQL_URL/orders_1,$MYSQL_URL/orders_2,$MYSQL_URL/orders_3}"
export GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
export PAYSIM_URL="http://127.0.0.1:$PAYSIM_PORT"
export WALLET_URL="http://127.0.0.1:$WALLET_PORT"
# The wallet channel's simulator signs with its own secret (development only).
export WALLET_SECRET="${WALLET_SECRET:-dev-wallet-secret}"
export MYSQL_REPLICATION_PRIMARY="mysql://flashsale:flashsale@127.0.0.1:$REPLICA_PRIMARY_PORT"
export MYSQL_REPLICA="mysql://flashsale:flashsale@127.0.0.1:$REPLICA_PORT"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# stack_env: exports the settings that point the gateway and the settler at
# the ports above (a variable set by the caller wins).
stack_env() {
  local shards_toml
  shards_toml="[\"${MYSQL_SHARDS//,/\",\"}\"]"
  export GATEWAY_SERVER__LISTEN="${GATEWAY_SERVER__LISTEN:-127.0.0.1:$GATEWAY_PORT}"
  export GATEWAY_REDIS__URL="${GATEWAY_REDIS__URL:-$REDIS_URL}"
  export SETTLER_REDIS__URL="${SETTLER_REDIS__URL:-$REDIS_URL}"
  export GATEWAY_KAFKA__BOOTSTRAP="${GATEWAY_KAFKA__BOOTSTRAP:-$KAFKA_BOOTSTRAP}"
  export SETTLER_KAFKA__BOOTSTRAP="${SETTLER_KAFKA__BOOTSTRAP:-$KAFKA_BOOTSTRAP}"
  export GATEWAY_MYSQL__SHARDS="${GATEWAY_MYSQL__SHARDS:-$shards_toml}"
  export SETTLER_MYSQL__SHARDS="${SETTLER_MYSQL__SHARDS:-$shards_toml}"
  export GATEWAY_PAYMENTS__CHANNELS__CARD__URL="${GATEWAY_PAYMENTS__CHANNELS__CARD__URL:-$PAYSIM_URL}"
  export GATEWAY_PAYMENTS__CHANNELS__WALLET__URL="${GATEWAY_PAYMENTS__CHANNELS__WALLET__URL:-$WALLET_URL}"
  export GATEWAY_PAYMENTS__CHANNELS__WALLET__SECRET="${GATEWAY_PAYMENTS__CHANNELS__WALLET__SECRET:-$WALLET_SECRET}"
  export GATEWAY_PAYMENTS__NOTIFY_URL="${GATEWAY_PAYMENTS__NOTIFY_URL:-$GATEWAY_URL/v1/payments/notify}"
  export GATEWAY_WAREHOUSE__URL="${GATEWAY_WAREHOUSE__URL:-$PAYSIM_URL}"
  export SETTLER_LIFECYCLE__WAREHOUSE_URL="${SETTLER_LIFECYCLE__WAREHOUSE_URL:-$PAYSIM_URL}"
  export SETTLER_REFUNDS__CHANNELS__CARD__URL="${SETTLER_REFUNDS__CHANNELS__CARD__URL:-$PAYSIM_URL}"
  export SETTLER_REFUNDS__CHANNELS__WALLET__URL="${SETTLER_REFUNDS__CHANNELS__WALLET__URL:-$WALLET_URL}"
  export SETTLER_REFUNDS__CHANNELS__WALLET__SECRET="${SETTLER_REFUNDS__CHANNELS__WALLET__SECRET:-$WALLET_SECRET}"
  export SETTLER_REFUNDS__NOTIFY_URL="${SETTLER_REFUNDS__NOTIFY_URL:-$GATEWAY_URL/v1/refunds/notify}"
  export SETTLER_OPS__LISTEN="${SETTLER_OPS__LISTEN:-127.0.0.1:$SETTLER_PORT}"
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT SECONDS NAME
wait_port() {
  local deadline=$((SECONDS + $2))
  until port_open "$1"; do
    if ((SECONDS > deadline)); then log "$3 did not open port $1 in $2 s"; return 1; fi
    sleep 0.2
  done
}

# wait_port_closed PORT SECONDS: true once nothing listens on PORT, false if
# something still does after SECONDS (a killed JVM holds its sockets until
# its last thread is gone).
wait_port_closed() {
  local deadline=$((SECONDS + $2))
  while port_open "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# port_pid PORT: the pid of the process listening on 127.0.0.1:PORT (empty if none).
port_pid() {
  ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

# peak_rss_mib PID: the process's peak resident set so far, MiB.
peak_rss_mib() {
  awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

# What answers on a port, by the protocol it speaks: is_redis, is_mysql, is_kafka.
is_redis() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf 'PING\r\n' >&3; head -c 5 <&3" 2>/dev/null | grep -q '^+PONG'
}
is_mysql() {
  # The server speaks first: a greeting carrying its version, e.g. 10.11.6-MariaDB.
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -c 64 <&3" 2>/dev/null | tr -c '[:print:]' ' ' \
    | grep -q -E '[0-9]+\.[0-9]+\.[0-9]+'
}
is_kafka() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, struct, sys
# ApiVersions v0 with correlation id 7; a Kafka-protocol broker echoes the id.
body = struct.pack(">hhih", 18, 0, 7, 5) + b"probe"
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3) as s:
    s.sendall(struct.pack(">i", len(body)) + body)
    head = s.recv(8)
sys.exit(0 if len(head) == 8 and struct.unpack(">ii", head)[1] == 7 else 1)
PY
}

# kafka_metadata PORT [TOPIC]: what the broker on PORT knows (Metadata v4):
# "brokers N", then "partition P leader L" for each partition of TOPIC.
kafka_metadata() {
  python3 - "$@" <<'PY'
import socket, struct, sys

def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b

topics = sys.argv[2:]
body = struct.pack(">hhi", 3, 4, 9) + string("probe")
body += struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics) + b"\0"
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3) as s:
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    data = s.recv(size, socket.MSG_WAITALL)
at = 0
def take(fmt):
    global at
    values = struct.unpack_from(fmt, data, at)
    at += struct.calcsize(fmt)
    return values
def skip_string():
    (n,) = take(">h")
    take(f">{max(n, 0)}s")
correlation, _throttle, brokers = take(">iii")
if correlation != 9:
    sys.exit(1)
print("brokers", brokers)
for _ in range(brokers):
    take(">i"); skip_string(); take(">i"); skip_string()
skip_string()  # cluster id
take(">i")  # controller
(count,) = take(">i")
for _ in range(count):
    take(">h"); skip_string(); take(">b")
    (partitions,) = take(">i")
    for _ in range(partitions):
        _error, partition, leader = take(">hii")
        for _array in range(2):
            (n,) = take(">i"); take(f">{n}i")
        print("partition", partition, "leader", leader)
PY
}

# metadata_brokers PORT: how many live brokers the broker on PORT knows of.
metadata_brokers() { kafka_metadata "$1" | awk '$1 == "brokers" { print $2 }'; }

# pid_alive PID: the process runs (a zombie that no init reaped does not count).
pid_alive() {
  kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

# refuse_port PORT VARIABLE WHAT: stops with a message naming the variable
# to change, for a port taken by something that is not WHAT.
refuse_port() {
  die "port $1 on 127.0.0.1 is taken by something that is not $3; set $2 to a free port (e.g. $2=$(free_port))"
}

# Runs as root, through sudo when the user is not.
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  command -v apt-get >/dev/null || die "cannot install $*: no apt-get here; install them yourself (docs/setup.md)"
  local out="$STATE/apt.log"
  {
    if [ -z "${APT_UPDATED:-}" ]; then as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  } >"$out" 2>&1 || { tail -20 "$out" >&2; die "installing Debian packages $* failed"; }
  APT_UPDATED=1
  log "installed Debian packages: $*"
}

# --- processes the scripts start: pid in $RUN/NAME.pid, output in $RUN/NAME.log

# proc_alive NAME: its pid file names a live process.
proc_alive() { [ -f "$RUN/$1.pid" ] && pid_alive "$(cat "$RUN/$1.pid")"; }

# proc_start NAME COMMAND...: runs COMMAND in the background.
proc_start() {
  local name=$1
  shift
  nohup "$@" >>"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

# proc_stop NAME [SECONDS]: SIGTERM (after SIGCONT, for a stalled one), then
# SIGKILL if it still runs after SECONDS (15); false if it was not running.
proc_stop() {
  local name=$1 wait=${2:-15} pid
  if ! proc_alive "$name"; then rm -f "$RUN/$name.pid"; return 1; fi
  pid=$(cat "$RUN/$name.pid")
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((wait * 10))); do pid_alive "$pid" || break; sleep 0.1; done
  if pid_alive "$pid"; then log "$name: still running after $wait s, killing"; kill -KILL "$pid"; fi
  rm -f "$RUN/$name.pid"
}

# proc_failed NAME WHY: stops the script with WHY and the end of NAME's log.
proc_failed() {
  log "$1 $2; the end of $RUN/$1.log:"
  tail -20 "$RUN/$1.log" >&2
  exit 1
}

# wait_ready NAME URL SECONDS: until URL answers 2xx, while NAME runs.
wait_ready() {
  local deadline=$((SECONDS + $3))
  until curl -fsS "$2" >/dev/null 2>&1; do
    proc_alive "$1" || proc_failed "$1" "exited during start-up"
    ((SECONDS < deadline)) || proc_failed "$1" "not ready after $3 s"
    sleep 0.3
  done
}

# wait_listening NAME PORT SECONDS: until something listens on PORT, while NAME runs.
wait_listening() {
  local deadline=$((SECONDS + $3))
  until port_open "$2"; do
    proc_alive "$1" || proc_failed "$1" "exited during start-up"
    ((SECONDS < deadline)) || proc_failed "$1" "did not open port $2 in $3 s"
    sleep 0.2
  done
}

# start_redis NAME PORT DIR [redis-server options]: a Redis of the scripts'
# own on 127.0.0.1:PORT, files and log (NAME.log) in DIR, no snapshots. A
# daemon in a session of its own: a Ctrl-C in the script that started it
# leaves it running.
start_redis() {
  local name=$1 port=$2 dir=$3
  shift 3
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$dir"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" \
    --logfile "$dir/$name.log" --pidfile "$RUN/$name.pid" "$@"
  wait_port "$port" 20 "$name" || { tail -20 "$dir/$name.log" >&2; exit 1; }
}

# start_mariadb NAME PORT [mariadbd options]: a MariaDB of the scripts' own
# on 127.0.0.1:PORT, its data in $RUN/NAME (made on first use, root over
# the socket $RUN/NAME.sock).
start_mariadb() {
  local name=$1 port=$2 data="$RUN/$1"
  shift 2
  [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
  if [ ! -d "$data/mysql" ]; then
    log "$name: creating a data directory in $data"
    mariadb-install-db --no-defaults --force --datadir="$data" --user="$(id -un)" \
      --auth-root-authentication-method=normal >>"$RUN/$name.log" 2>&1 \
      || proc_failed "$name" "could not create its data directory (mariadb-install-db)"
  fi
  proc_start "$name" /usr/sbin/mariadbd --no-defaults --datadir="$data" --socket="$data.sock" \
    --pid-file="$data.pid" --bind-address=127.0.0.1 --port="$port" --user="$(id -un)" \
    --log-error="$RUN/$name.log" "$@"
  wait_listening "$name" "$port" 60
}
