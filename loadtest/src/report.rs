//! What a run measured: answers by status, latency percentiles from an HDR
//! histogram, throughput, and the invariant checks.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::shards::StatusCounts;
use crate::timeline::{per_second, write_chart, Second};
use crate::workers::Tally;

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        Self {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// What happened after the burst, when the buyers went on to pay.
#[derive(Debug, Serialize)]
pub struct Lifecycle {
    pub paid: u64,
    /// Pay calls (start at the gateway, complete at the channel) that failed.
    pub pay_failures: u64,
    /// Left unpaid until the payment window passed.
    pub timed_out: u64,
    pub second_wave_buyers: u64,
    /// Units bought again by the second wave.
    pub resold: u64,
    /// What the paid orders went on to do (`after_payment`), by fate.
    pub after_payment: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

pub fn check(name: &str, ok: bool, detail: String) -> Check {
    Check { name: name.to_owned(), ok, detail }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    /// Only for the ramp: the highest offered rate the stack kept up with.
    pub knee_rps: Option<f64>,
    pub sku: String,
    pub stock: i64,
    pub requests: u64,
    pub elapsed_secs: f64,
    pub throughput_rps: f64,
    /// Answers by HTTP status, or "error" for a failed connection.
    pub answers: BTreeMap<String, u64>,
    pub latency: Latency,
    /// Requests and latency second by second.
    pub timeline: Vec<Second>,
    pub lifecycle: Option<Lifecycle>,
    /// Orders of the SKU in MySQL by status.
    pub orders_in_mysql: StatusCounts,
    pub checks: Vec<Check>,
}

impl Report {
    /// The figures of a run's answers, with the orders MySQL holds and the checks.
    pub fn of(
        scenario: &'static str,
        sku: String,
        stock: i64,
        tally: Tally,
        orders_in_mysql: StatusCounts,
        checks: Vec<Check>,
    ) -> Self {
        let latency = tally.latency();
        let elapsed_secs = tally.elapsed.as_secs_f64();
        Self {
            scenario,
            knee_rps: None,
            sku,
            stock,
            requests: latency.len(),
            elapsed_secs,
            throughput_rps: latency.len() as f64 / elapsed_secs,
            timeline: per_second(&tally.samples),
            answers: tally.answers,
            latency: Latency::from_histogram(&latency),
            lifecycle: None,
            orders_in_mysql,
            checks,
        }
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }

    pub fn answers_with(&self, status: &str) -> u64 {
        self.answers.get(status).copied().unwrap_or(0)
    }

    pub fn print(&self) {
        println!("\n== {} on {} ({} units) ==", self.scenario, self.sku, self.stock);
        println!("requests     {} in {:.2} s = {:.0} req/s", self.requests, self.elapsed_secs, self.throughput_rps);
        if self.answers.contains_key("202") || self.answers.is_empty() {
            println!(
                "accepted     {:>7}  (202)\nsold out     {:>7}  (409)\nrate limited {:>7}  (429)\nunavailable  {:>7}  (503)",
                self.answers_with("202"),
                self.answers_with("409"),
                self.answers_with("429"),
                self.answers_with("503"),
            );
            let other: Vec<_> = self
                .answers
                .iter()
                .filter(|(status, _)| !["202", "409", "429", "503"].contains(&status.as_str()))
                .collect();
            if !other.is_empty() {
                println!("other        {other:?}");
            }
        } else {
            // Answers labelled by the scenario (e.g. "409 sold_out").
            for (answer, n) in &self.answers {
                println!("{answer:<24} {n:>7}");
            }
        }
        let l = &self.latency;
        println!(
            "latency ms   p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
        if let Some(l) = &self.lifecycle {
            println!(
                "then         {} paid, {} timed out (units back), {} of {} second-wave buyers bought them",
                l.paid, l.timed_out, l.resold, l.second_wave_buyers
            );
            let fates: Vec<String> = l.after_payment.iter().map(|(fate, n)| format!("{n} {fate}")).collect();
            if !fates.is_empty() {
                println!("after paying {}", fates.join(", "));
            }
        }
        let stored: Vec<String> = self.orders_in_mysql.iter().map(|(status, n)| format!("{n} {status}")).collect();
        println!("in MySQL     {}", if stored.is_empty() { "no orders".into() } else { stored.join(", ") });
        if let Some(knee) = self.knee_rps {
            println!("knee         {knee:.0} req/s offered, the highest the stack kept up with");
        }
        for check in &self.checks {
            println!("[{}] {}: {}", if check.ok { " ok " } else { "FAIL" }, check.name, check.detail);
        }
    }
}

impl Report {
    /// Writes the JSON report and the chart where asked, and prints the
    /// change against an earlier JSON report.
    pub fn write(&self, json: Option<&Path>, chart: Option<&Path>, compare: Option<&Path>) -> anyhow::Result<()> {
        if let Some(path) = json {
            std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
            println!("report written to {}", path.display());
        }
        if let Some(path) = chart {
            write_chart(path, &format!("{} on {}", self.scenario, self.sku), &self.timeline)?;
            println!("chart written to {}", path.display());
        }
        if let Some(path) = compare {
            let old: Value =
                serde_json::from_slice(&std::fs::read(path)?).with_context(|| format!("reading {}", path.display()))?;
            let new = serde_json::to_value(self)?;
            println!("\nchange against {}:", path.display());
            for (name, pointer) in [
                ("throughput req/s", "/throughput_rps"),
                ("p50 ms", "/latency/p50_ms"),
                ("p99 ms", "/latency/p99_ms"),
                ("p99.9 ms", "/latency/p999_ms"),
                ("max ms", "/latency/max_ms"),
            ] {
                let (Some(before), Some(after)) =
                    (old.pointer(pointer).and_then(Value::as_f64), new.pointer(pointer).and_then(Value::as_f64))
                else {
                    continue;
                };
                let change = if before == 0.0 { 0.0 } else { (after - before) / before * 100.0 };
                println!("  {name:<18} {before:>10.2} -> {after:>10.2}  ({change:+.1} %)");
            }
        }
        Ok(())
    }
}
