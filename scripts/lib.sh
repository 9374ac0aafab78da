# Shared by the scripts: paths, defaults and small helpers. Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.local"                 # venv, logs, pid files; git-ignored
mkdir -p "$STATE"

REDIS_PORT="${REDIS_PORT:-6379}"
MYSQL_PORT="${MYSQL_PORT:-3306}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
GATEWAY_PORT="${GATEWAY_PORT:-8080}"

export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"
export MYSQL_URL="${MYSQL_URL:-mysql://flashsale:flashsale@127.0.0.1:$MYSQL_PORT}"
export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

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

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
