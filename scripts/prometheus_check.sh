#!/usr/bin/env bash
# A real Prometheus (Debian's) scraping the running stack's gateway and
# settler with the alerting rules loaded: every rule evaluates without an
# error against the live metrics, the metrics the rules read that are
# served from the start (before any failure has counted) have series, and
# every query of the dashboard (dashboards/gateway.json) runs.
# Run by scripts/ports_test.sh while its stack runs; stops what it starts.
#
#   scripts/prometheus_check.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v prometheus >/dev/null || apt_install prometheus
port=$(free_port)
dir="$RUN/prometheus"
rm -rf "$dir" && mkdir -p "$dir"
cat >"$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: gateway
    static_configs: [{targets: ["127.0.0.1:$GATEWAY_PORT"]}]
  - job_name: settler
    static_configs: [{targets: ["127.0.0.1:$SETTLER_PORT"]}]
YML
proc_start prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
  --web.listen-address="127.0.0.1:$port"
trap 'proc_stop prometheus >/dev/null || true' EXIT
wait_port "$port" 30 prometheus || { tail -20 "$RUN/prometheus.log" >&2; exit 1; }

api="http://127.0.0.1:$port/api/v1"
python3 - "$api" "$ROOT/dashboards/gateway.json" <<'PY'
import json, sys, time, urllib.error, urllib.parse, urllib.request
api, dashboard = sys.argv[1], sys.argv[2]
get = lambda path: json.load(urllib.request.urlopen(api + path, timeout=5))["data"]

deadline = time.time() + 60
while True:
    targets = get("/targets")["activeTargets"]
    rules = [rule for group in get("/rules")["groups"] for rule in group["rules"]]
    up = all(t["health"] == "up" for t in targets) and len(targets) == 2
    evaluated = rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules)
    if up and evaluated:
        break
    if time.time() > deadline:
        sys.exit(f"prometheus: targets {[(t['labels']['job'], t['health'], t.get('lastError')) for t in targets]}, "
                 f"rules evaluated: {bool(evaluated)}")
    time.sleep(1)
broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
if broken:
    sys.exit(f"rules failing against the live metrics: {broken}")
served = ["gateway_requests_total", "gateway_breaker_state", "gateway_reservations_total",
          "gateway_redis_reserve_seconds_bucket", "gateway_kafka_produce_seconds_bucket",
          "settler_events_total", "settler_consumer_lag", "process_resident_memory_bytes"]
missing = [m for m in served if not get("/series?" + urllib.parse.urlencode({"match[]": m}))]
if missing:
    sys.exit(f"metrics the rules read, not served by the running stack: {missing}")
# The dashboard's queries, with Grafana's variables given values.
queries = [target["expr"].replace("$__range", "1h").replace("$sku", ".*")
           for panel in json.load(open(dashboard))["panels"] for target in panel.get("targets", [])]
failing = []
for query in queries:
    try:
        get("/query?" + urllib.parse.urlencode({"query": query}))
    except urllib.error.HTTPError as err:
        failing.append((query, json.load(err).get("error")))
if failing:
    sys.exit(f"dashboard queries Prometheus refuses: {failing}")
print(f"prometheus: {len(rules)} rules evaluated against the stack's metrics, none failing; "
      f"{len(served)} metrics they read are served; {len(queries)} dashboard queries run")
PY
log "prometheus check passed"
