#!/usr/bin/env bash
# Apache Kafka (KRaft, no ZooKeeper) on loopback, resolved from Maven Central
# by Maven (scripts/kafka/pom.xml pins the version) into .local/kafka/lib.
# A cluster is one directory, $RUN/kafka-$KAFKA_PORT, holding each node's
# settings, data, log and pid; every node is both broker and controller.
#
#   scripts/kafka.sh install          resolve the jars (Java and Maven from Debian's packages if missing)
#   scripts/kafka.sh start [NODES]    a single node (default) or an N-node cluster; starts what is down,
#                                     keeps the data, waits until every broker serves and sees the others
#   scripts/kafka.sh stop             SIGTERM every node (controlled shutdown), SIGKILL after 30 s
#   scripts/kafka.sh status           a line per node: id, broker port, pid or "down"
#   scripts/kafka.sh bootstrap        the cluster's bootstrap list, host:port,...
#   scripts/kafka.sh kill N | stall N | resume N | start-node N | pid N
#                                     faults on one node (SIGKILL, SIGSTOP, SIGCONT, start it again)
#   scripts/kafka.sh leader TOPIC     the node leading the most partitions of TOPIC
#   scripts/kafka.sh cut N | heal N   node N cut off from every other process (its packets
#                                     dropped, its connections hanging, the process alive) and back;
#                                     needs a cluster made with KAFKA_CUTTABLE=1, as root, and iptables
#   scripts/kafka.sh wipe             stop and delete the cluster's directory (its data)
#   scripts/kafka.sh delete-topics REGEX
#
# Ports: node 1 serves clients on KAFKA_PORT (9092) and its controller on
# KAFKA_CONTROLLER_PORT (9093); nodes 2..N take free ports, recorded in the
# cluster's `nodes` file so a restarted node comes back where it was.
# KAFKA_HEAP_OPTS sets the JVM heap (-Xms256m -Xmx512m). KAFKA_CUTTABLE=1,
# when a cluster is made, runs node N as uid 64000+N (no login, owning only
# its directory), so that an iptables rule on that uid cuts it off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_HOME="$STATE/kafka"
CLUSTER="$RUN/kafka-$KAFKA_PORT"
POM="$ROOT/scripts/kafka/pom.xml"

install() {
  local stamp="$KAFKA_HOME/pom.sha256" want
  want=$(sha256sum "$POM" | cut -d' ' -f1)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  rm -rf "$KAFKA_HOME/lib"
  mkdir -p "$KAFKA_HOME"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$KAFKA_HOME/lib" >"$KAFKA_HOME/install.log" 2>&1 \
    || { tail -20 "$KAFKA_HOME/install.log" >&2; die "kafka: resolving $POM failed"; }
  echo "$want" >"$stamp"
  log "kafka: installed $(basename "$(ls "$KAFKA_HOME"/lib/kafka_2.13-*.jar)" .jar) into $KAFKA_HOME/lib (Maven)"
}

# java CLASS ARGS... runs a Kafka class on the installed jars.
# shellcheck disable=SC2206 # the heap options are words
JAVA=(java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" -cp "$KAFKA_HOME/lib/*")

# The `nodes` file: "id broker_port controller_port" per line.
node_field() { awk -v id="$1" -v col="$2" '$1 == id { print $col }' "$CLUSTER/nodes"; }
node_ids() { cut -d' ' -f1 "$CLUSTER/nodes"; }
node_pid() { cat "$CLUSTER/node-$1/pid" 2>/dev/null || true; }
node_up() { local pid; pid=$(node_pid "$1"); [ -n "$pid" ] && pid_alive "$pid"; }
cuttable() { [ -f "$CLUSTER/cuttable" ]; }
node_uid() { echo $((64000 + $1)); }

# Lays out a new cluster of N nodes: ports, settings, formatted storage.
create() {
  local nodes=$1 id voters="" cluster_id
  mkdir -p "$CLUSTER"
  if [ "${KAFKA_CUTTABLE:-0}" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "kafka: KAFKA_CUTTABLE=1 needs root (each node runs as a uid of its own)"
    touch "$CLUSTER/cuttable"
  fi
  : >"$CLUSTER/nodes"
  for id in $(seq 1 "$nodes"); do
    if [ "$id" = 1 ]; then
      echo "1 $KAFKA_PORT $KAFKA_CONTROLLER_PORT" >>"$CLUSTER/nodes"
    else
      # Each exported as soon as picked, so the next pick is another port.
      local broker controller
      broker=$(free_port) && export "KAFKA_NODE_${id}_PORT=$broker"
      controller=$(free_port) && export "KAFKA_NODE_${id}_CONTROLLER_PORT=$controller"
      echo "$id $broker $controller" >>"$CLUSTER/nodes"
    fi
    voters+="${voters:+,}$id@127.0.0.1:$(node_field "$id" 3)"
  done
  cluster_id=$("${JAVA[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  local replicas=$((nodes < 3 ? nodes : 3)) isr=$((nodes < 3 ? 1 : 2))
  for id in $(node_ids); do
    local dir="$CLUSTER/node-$id"
    mkdir -p "$dir"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_field "$id" 2),CONTROLLER://127.0.0.1:$(node_field "$id" 3)
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_field "$id" 2)
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
# Topics are made by \`settler setup\` with their replication and retention;
# a mistyped topic fails rather than appearing with the defaults.
auto.create.topics.enable=false
unclean.leader.election.enable=false
# Internal topics (consumer offsets, transactions) replicated like ours.
offsets.topic.replication.factor=$replicas
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$isr
# A consumer group's first member gets its partitions at once.
group.initial.rebalance.delay.ms=0
# A follower that stops fetching leaves the in-sync set after 10 s (30 s by
# default), and a broker that stops heartbeating is fenced after 6 s (9 s):
# its partitions' leadership moves and acks=all stops waiting for it.
# Shorter would fence brokers that a busy 2-core machine merely slowed.
replica.lag.time.max.ms=10000
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1500
EOF
    "${JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "kafka: formatting node $id failed"; }
  done
}

start_node() {
  local id=$1 dir="$CLUSTER/node-$1"
  node_up "$id" && return
  wait_port_closed "$(node_field "$id" 2)" 10 || refuse_port "$(node_field "$id" 2)" KAFKA_PORT "this cluster's node $id"
  local as=()
  if cuttable; then
    chown -R "$(node_uid "$id"):$(node_uid "$id")" "$dir"
    as=(setpriv --reuid="$(node_uid "$id")" --regid="$(node_uid "$id")" --clear-groups)
  fi
  nohup "${as[@]}" "${JAVA[@]}" kafka.Kafka "$dir/server.properties" >>"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/pid"
}

# Live brokers as node 1..N see them (Metadata v4), the highest count.
live_brokers() {
  local id best=0 seen
  for id in $(node_ids); do
    seen=$(metadata_brokers "$(node_field "$id" 2)" 2>/dev/null || echo 0)
    ((seen > best)) && best=$seen
  done
  echo "$best"
}

wait_serving() {
  local nodes want=$1 deadline=$((SECONDS + 90))
  until [ "$(live_brokers)" -ge "$want" ]; do
    for id in $(node_ids); do
      node_up "$id" || { tail -20 "$CLUSTER/node-$id/kafka.log" >&2; die "kafka: node $id exited"; }
    done
    ((SECONDS < deadline)) || die "kafka: $want brokers not serving after 90 s (logs in $CLUSTER/node-*/kafka.log)"
    sleep 0.3
  done
}

start() {
  local nodes=${1:-1}
  install
  if [ -f "$CLUSTER/nodes" ] && [ "$(node_ids | wc -l)" != "$nodes" ]; then
    die "kafka: $CLUSTER holds a cluster of $(node_ids | wc -l) nodes; 'scripts/kafka.sh wipe' first to make one of $nodes"
  fi
  [ -f "$CLUSTER/nodes" ] || create "$nodes"
  local started=()
  for id in $(node_ids); do
    node_up "$id" && continue
    start_node "$id"
    started+=("$id")
  done
  wait_serving "$nodes"
  if [ ${#started[@]} -gt 0 ]; then
    log "kafka: $nodes node(s) serving on $(bootstrap) (started ${started[*]}; data in $CLUSTER)"
  fi
}

bootstrap() {
  local list="" id
  for id in $(node_ids); do list+="${list:+,}127.0.0.1:$(node_field "$id" 2)"; done
  echo "$list"
}

# The rule that drops every packet node N sends (replies included).
cut_rule() { echo "OUTPUT -o lo -m owner --uid-owner $(node_uid "$1") -j DROP"; }

cut_off() {
  cuttable || die "kafka: $CLUSTER was not made with KAFKA_CUTTABLE=1"
  command -v iptables >/dev/null || apt_install iptables
  # shellcheck disable=SC2046 # the rule is words
  iptables -w -C $(cut_rule "$1") 2>/dev/null || iptables -w -I $(cut_rule "$1")
}

reconnect() {
  # shellcheck disable=SC2046
  while iptables -w -D $(cut_rule "$1") 2>/dev/null; do :; done
}

stop() {
  [ -f "$CLUSTER/nodes" ] || return 0
  local id pids=()
  if cuttable; then for id in $(node_ids); do reconnect "$id"; done; fi
  for id in $(node_ids); do node_up "$id" && kill -CONT "$(node_pid "$id")" && kill -TERM "$(node_pid "$id")" && pids+=("$id"); done
  local deadline=$((SECONDS + 30))
  for id in "${pids[@]}"; do
    while node_up "$id" && ((SECONDS < deadline)); do sleep 0.2; done
    node_up "$id" && kill -KILL "$(node_pid "$id")"
    rm -f "$CLUSTER/node-$id/pid"
  done
  if [ ${#pids[@]} -gt 0 ]; then log "kafka: stopped node(s) ${pids[*]} of $CLUSTER"; fi
  return 0
}

need_cluster() { [ -f "$CLUSTER/nodes" ] || die "kafka: no cluster in $CLUSTER (scripts/kafka.sh start)"; }

case "${1:-}" in
  install) install ;;
  start) start "${2:-1}" ;;
  stop) stop ;;
  wipe) stop; rm -rf "$CLUSTER" ;;
  status)
    need_cluster
    for id in $(node_ids); do
      if node_up "$id"; then state="pid $(node_pid "$id")"; else state=down; fi
      echo "node $id: 127.0.0.1:$(node_field "$id" 2) $state"
    done
    ;;
  bootstrap) need_cluster; bootstrap ;;
  pid) need_cluster; node_pid "$2" ;;
  leader)
    need_cluster
    for id in $(node_ids); do
      node_up "$id" || continue
      kafka_metadata "$(node_field "$id" 2)" "$2" | awk '$1 == "partition" { print $4 }' | sort | uniq -c \
        | sort -rn | awk 'NR == 1 { print $2 }'
      break
    done
    ;;
  kill)
    need_cluster
    if node_up "$2"; then
      pid=$(node_pid "$2")
      kill -KILL "$pid"
      # Until it is gone and its ports with it: a dying JVM's socket still
      # takes connections, and a start right after would find its port taken.
      for _ in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
      wait_port_closed "$(node_field "$2" 2)" 10 && wait_port_closed "$(node_field "$2" 3)" 10 || true
    fi
    rm -f "$CLUSTER/node-$2/pid"
    ;;
  stall) need_cluster; kill -STOP "$(node_pid "$2")" ;;
  cut) need_cluster; cut_off "$2" ;;
  heal) need_cluster; reconnect "$2" ;;
  resume) need_cluster; kill -CONT "$(node_pid "$2")" ;;
  start-node) need_cluster; start_node "$2"; wait_port "$(node_field "$2" 2)" 60 "kafka node $2" ;;
  delete-topics)
    need_cluster
    "${JAVA[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" --delete --topic "$2" \
      --if-exists >/dev/null 2>&1 || true
    ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
