#!/usr/bin/env bash
# Checks the module structure (scripts/module_check.py: no module imports
# another that imports it back, each crate's layout comment names its
# modules, no file over 450 lines) and the alerting rules
# (scripts/alerts_test.sh: promtool's unit tests), then runs every test
# against real services (after scripts/k8s_check.sh on the Kubernetes
# manifests, once the set-up built the binaries):
# sets up the machine (scripts/setup.sh:
# Redis, MariaDB and an Apache Kafka node, installed where missing; and
# scripts/replica.sh for the read-replica tests), drops the databases, Redis
# keys, topics and Kafka nodes that earlier test runs left, runs the
# workspace's tests with
# cargo-nextest (cargo test where nextest is missing), then the Lua scripts
# and the hot path again on a Redis Cluster of three masters
# (scripts/cluster_test.sh), then scripts/ports_test.sh (the stack just
# built, on spare ports with services of its own: the OCI images built
# and linted (scripts/images.sh), k6 smoke runs with their thresholds
# enforced on the binaries copied out of the images, a small flash sale),
# then the short form of
# scripts/chaos.sh (faults injected mid-sale on a three-broker Kafka cluster,
# invariants checked after).
#
#   scripts/test.sh [extra nextest/cargo test arguments]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# No import circle, every module named in its crate's layout, no file over 450 lines.
python3 "$ROOT/scripts/module_check.py"
# The alerting rules: valid, unit-tested, on metrics the code records.
bash "$ROOT/scripts/alerts_test.sh"

bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/replica.sh"
# The Kubernetes manifests render, validate, and mount configs the binaries take.
bash "$ROOT/scripts/k8s_check.sh"

# Shard databases earlier runs' tests left (on the replicated pair's primary
# too: the drop replicates).
for port in "$MYSQL_PORT" "$REPLICA_PRIMARY_PORT"; do
  stale=$(mariadb -uflashsale -pflashsale -h127.0.0.1 -P"$port" -N -e \
    "SELECT schema_name FROM information_schema.schemata WHERE schema_name REGEXP '^t_[0-9a-f]{12}_[0-9]+$'")
  for db in $stale; do
    mariadb -uflashsale -pflashsale -h127.0.0.1 -P"$port" -e "DROP DATABASE IF EXISTS \`$db\`"
  done
done

# Redis keys of earlier runs' tests (each test has a `test_…:` namespace).
if command -v redis-cli >/dev/null; then
  redis-cli -p "$REDIS_PORT" --scan --pattern 'test_*' | xargs -r -n 500 redis-cli -p "$REDIS_PORT" del >/dev/null
fi

# Topics of earlier runs' tests (each named `<prefix>_<12 hex digits>`), on
# the Kafka node the set-up started; and Kafka nodes of tests that were
# killed before they could stop their own.
if [ -f "$RUN/kafka-$KAFKA_PORT/nodes" ]; then
  bash "$ROOT/scripts/kafka.sh" delete-topics '.*_[0-9a-f]{12}(\.dlq)?'
fi
pkill -KILL -f "$STATE/test-brokers/" 2>/dev/null || true
rm -rf "$STATE/test-brokers"

cd "$ROOT"
if cargo nextest --version >/dev/null 2>&1; then
  log "running the tests (cargo nextest)"
  # Most tests wait on the network, not the CPU: run more than the core count.
  cargo nextest run --workspace --test-threads 4 --no-fail-fast "$@"
else
  log "running the tests (cargo test; install cargo-nextest for a faster run)"
  cargo test --workspace --no-fail-fast "$@"
fi

bash "$ROOT/scripts/cluster_test.sh"
bash "$ROOT/scripts/ports_test.sh"
bash "$ROOT/scripts/chaos.sh" --short
