#!/usr/bin/env bash
# The alerting rules (deploy/prometheus/alerts.yml): valid for Prometheus,
# each firing on the series that should page and quiet on a healthy night
# (`promtool test rules` on alerts_test.yml), and every metric they read
# served by the gateway or the settler. Installs Debian's prometheus
# package (for promtool) where it is missing.
#
#   scripts/alerts_test.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v promtool >/dev/null || apt_install prometheus
rules="$ROOT/deploy/prometheus"
promtool check rules "$rules/alerts.yml"
(cd "$rules" && promtool test rules alerts_test.yml)

# A rule on a metric nobody serves would never fire: each one the rules
# read must be named where the code records it.
python3 - "$rules/alerts.yml" "$ROOT" <<'PY'
import pathlib, re, sys
rules, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
exprs = " ".join(re.findall(r"expr:\s*\|?\s*\n?((?:.*\n)*?)\s*(?:for|labels):", rules.read_text()))
names = {re.sub(r"_bucket$", "", n) for n in re.findall(r"\b((?:gateway|settler)_[a-z_]+)\b", exprs)}
sources = " ".join(p.read_text() for crate in ("gateway", "ordercenter", "settler", "events", "stock")
                   for p in (root / crate / "src").rglob("*.rs"))
missing = sorted(n for n in names if f'"{n}"' not in sources)
if missing:
    sys.exit(f"alert rules read metrics nothing records: {missing}")
print(f"alert rules read {len(names)} metrics, each recorded by the code")
PY
log "alert rules checked"
