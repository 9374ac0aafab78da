#!/usr/bin/env python3
"""Prints the throughput goals (docs/performance.md) beside their targets,
from the figures one `scripts/bench.sh` run wrote: the bench
(bench.json), the reads (queries.json), the whole sale (sale.json) and the
headline run (headline.json), with the peak RSS bench.sh read of the
gateway and the broker (rss.json). A part missing from the run is shown as
not measured.

    scripts/goals.py .local
"""

import json
import sys
from pathlib import Path

# The processes of the stack an accepted order costs CPU in.
STACK = ("gateway", "redis", "broker", "mysql", "settler")


def load(directory, name):
    path = Path(directory) / name
    return json.loads(path.read_text()) if path.exists() else None


def cpu_per_order(phase):
    """CPU per operation over the stack's processes, µs."""
    return sum(c["ms_per_1k"] for c in phase["cpu"] if c["process"] in STACK)


def windows(timeline, seconds=10):
    """Requests answered per `seconds` window, whole windows only (the whole
    sale run has stock for every request: each answer is an accepted order)."""
    accepted = [s["requests"] for s in timeline]
    return [sum(accepted[i : i + seconds]) / seconds for i in range(0, len(accepted) - seconds + 1, seconds)]


def goals(directory):
    bench, reads = load(directory, "bench.json"), load(directory, "queries.json")
    sale, headline = load(directory, "sale.json"), load(directory, "headline.json")
    rss = load(directory, "rss.json") or {}
    rows = []

    def goal(name, figure, target, met):
        rows.append((name, figure, target, "yes" if met else "no"))

    if bench:
        accepted, paused = bench["accepted_path"], bench["accepted_path_settler_paused"]
        total = cpu_per_order(accepted)
        parts = ", ".join(f"{c['process']} {c['ms_per_1k']:.0f}" for c in accepted["cpu"] if c["process"] in STACK)
        goal("1. CPU per accepted order, settler draining", f"{total:.0f} µs ({parts})", "≤ 80 µs", total <= 80)
        floor, sold_out = bench["http_floor"], bench["sold_out_path"]
        ratio = sold_out["per_second"] / floor["per_second"]
        p99 = sold_out["latency"]["p99_ms"] / floor["latency"]["p99_ms"]
        goal("3. sold-out path / bare hyper", f"{ratio:.2f}, p99 {p99:.1f}×", "≥ 0.95, p99 ≤ 2×", ratio >= 0.95 and p99 <= 2)
        drain = bench["settler_drain"]["per_second"] / bench["database_floor"]["per_second"]
        cost = 1 - accepted["per_second"] / paused["per_second"] if paused else float("nan")
        goal("5. settler drain / plain INSERT", f"{drain:.2f}", "≥ 0.8", drain >= 0.8)
        goal("5. the drain's cost to the accepted path", f"{cost:.1%}", "≤ 20 %", cost <= 0.2)
    if reads:
        errors = sum(row["errors"] for row in reads["rows"])
        hot = next(row for row in reads["rows"] if row["name"].endswith("hot"))
        goal(
            "4. reads while the settler drains",
            f"{errors} errors, hot hit ratio {hot['cache_hit_ratio']:.2f}",
            "0 errors, ≥ 0.95",
            errors == 0 and hot["cache_hit_ratio"] >= 0.95,
        )
    if sale:
        rates = windows(sale["timeline"])
        accepted = sale["answers"].get("202", 0)
        ratios = [rate / rates[0] for rate in rates] if rates and rates[0] else [float("inf")]
        goal(
            "2. flat over a whole sale",
            f"{accepted:,} accepted; 10 s windows {min(ratios):.2f} to {max(ratios):.2f} of the first's "
            f"{rates[0] if rates else 0:.0f}/s, the last {ratios[-1]:.2f}",
            "1,000,000 accepted, every window within 10 % of the first",
            accepted >= 1_000_000 and all(abs(ratio - 1) <= 0.10 for ratio in ratios),
        )
        if "gateway_mib" in rss:
            goal(
                "2. peak RSS over the sale",
                f"gateway {rss['gateway_mib']:.0f} MiB, broker {rss.get('broker_mib', float('nan')):.0f} MiB",
                "gateway ≤ 64 MiB, broker bounded",
                rss["gateway_mib"] <= 64,
            )
    if headline:
        ok = all(check["ok"] for check in headline["checks"])
        secs, p99 = headline["elapsed_secs"], headline["latency"]["p99_ms"]
        peak = rss.get("headline_gateway_mib", float("nan"))
        goal(
            f"6. headline: {headline['requests']:,} buyers, {headline['stock']:,} units",
            f"{secs:.1f} s, p99 {p99:.1f} ms, gateway peak {peak:.0f} MiB, checks {'held' if ok else 'FAILED'}",
            "≤ 12 s, p99 ≤ 25 ms, ≤ 64 MiB, checks hold",
            secs <= 12 and p99 <= 25 and peak <= 64 and ok,
        )
    return rows


def main():
    rows = goals(sys.argv[1] if len(sys.argv) > 1 else ".local")
    print("| goal | figure | target | met |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
