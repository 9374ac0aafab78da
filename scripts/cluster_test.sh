#!/usr/bin/env bash
# Every Lua script and the hot path on a real Redis Cluster: three masters
# of this test's own on spare loopback ports (`redis-cli --cluster create`),
# then the stock crate's script tests and the gateway's order and payment
# tests with REDIS_URL pointing at the cluster. Stops the cluster after.
#
#   scripts/cluster_test.sh [extra nextest arguments]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="$STATE/redis-cluster"
rm -rf "$DIR"
mkdir -p "$DIR"
# A node also listens on its port + 10000 (the cluster bus): both must be free.
cluster_port() {
  python3 - <<'PY'
import random, socket
while True:
    port = random.randint(20000, 45000)
    try:
        for p in (port, port + 10000):
            socket.socket().bind(("127.0.0.1", p))
    except OSError:
        continue
    print(port)
    break
PY
}
PORTS=()
for _ in 1 2 3; do PORTS+=("$(cluster_port)"); done

stop_cluster() {
  for port in "${PORTS[@]}"; do proc_stop "redis-cluster-$port" 10 || true; done
}
trap stop_cluster EXIT

for port in "${PORTS[@]}"; do
  start_redis "redis-cluster-$port" "$port" "$DIR/$port" --appendonly no \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000
done
nodes=()
for port in "${PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/create.log"
deadline=$((SECONDS + 30))
until redis-cli -p "${PORTS[0]}" cluster info | grep -q 'cluster_state:ok'; do
  ((SECONDS < deadline)) || die "the cluster did not come up; see $DIR"
  sleep 0.2
done

export REDIS_URL="redis-cluster://${nodes[0]}?node=${nodes[1]}&node=${nodes[2]}"
log "redis cluster: $REDIS_URL"
cd "$ROOT"
# --workspace, as in test.sh: the same feature set, so nothing is built twice.
tests=(--workspace --test scripts --test tcc --test orders --test checkout --test payments --test faults)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run "${tests[@]}" --test-threads 4 --no-fail-fast "$@"
else
  cargo test "${tests[@]}" --no-fail-fast "$@"
fi
keys=0
for port in "${PORTS[@]}"; do keys=$((keys + $(redis-cli -p "$port" dbsize))); done
((keys > 0)) || die "the tests left no key on the cluster: were they pointed at it?"
log "cluster test passed ($keys keys over ${#PORTS[@]} masters)"
