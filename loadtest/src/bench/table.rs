//! The bench's two tables: rates against their floors, and CPU per 1,000
//! operations by process; and the accepted path's rounds.

use super::{BenchReport, Phase};

/// The accepted path round after round: rate, p99, and the gateway's and
/// the broker's CPU per order.
pub fn print_rounds(phases: &[Phase]) {
    println!("| round | orders/s | p99 ms | gateway µs/order | broker µs/order |");
    println!("|---:|---:|---:|---:|---:|");
    for (round, phase) in phases.iter().enumerate() {
        let cpu = |name| phase.cpu.iter().find(|c| c.process == name).map_or(f64::NAN, |c| c.ms_per_1k);
        let p99 = phase.latency.as_ref().map_or(f64::NAN, |l| l.p99_ms);
        println!(
            "| {} | {:.0} | {p99:.2} | {:.1} | {:.1} |",
            round + 1,
            phase.per_second,
            cpu("gateway"),
            cpu("broker")
        );
    }
}

/// The processes of the CPU table, in its column order.
const PROCESSES: [&str; 7] = ["hyper", "gateway", "settler", "redis", "broker", "mysql", "loadtest"];

impl BenchReport {
    /// Each phase, its floor where it has one, and the target ratio.
    fn rows(&self) -> Vec<(&Phase, Option<&Phase>, &'static str)> {
        let mut rows = vec![
            (&self.http_floor, None, "floor"),
            (&self.sold_out_path, Some(&self.http_floor), "≥ 0.9"),
            (&self.redis_floor, None, "part of the composed floor"),
            (&self.produce_floor, None, "part of the composed floor"),
            (&self.composed_floor, None, "floor"),
            (&self.accepted_path, Some(&self.composed_floor), "≥ 0.7"),
        ];
        if let Some(paused) = &self.accepted_path_settler_paused {
            rows.push((paused, Some(&self.composed_floor), ""));
        }
        rows.push((&self.fallback_path, Some(&self.redis_floor), "measured (issue 28)"));
        rows.push((&self.database_floor, None, "floor"));
        rows.push((&self.settler_drain, Some(&self.database_floor), "≥ 0.8"));
        rows
    }

    pub fn print(&self) {
        println!("\n| measurement | ops | unexpected | per second | p50 ms | p99 ms | ratio to its floor | target |");
        println!("|---|---:|---:|---:|---:|---:|---:|---|");
        for (phase, floor, target) in self.rows() {
            let (p50, p99) = phase
                .latency
                .as_ref()
                .map_or(("–".into(), "–".into()), |l| (format!("{:.2}", l.p50_ms), format!("{:.2}", l.p99_ms)));
            let ratio = floor.map_or("–".into(), |floor| format!("{:.2}", phase.per_second / floor.per_second));
            println!(
                "| {} | {} | {} | {:.0} | {p50} | {p99} | {ratio} | {target} |",
                phase.name, phase.operations, phase.unexpected, phase.per_second
            );
        }

        println!("\nCPU time per 1,000 operations, ms (user + system, from /proc/<pid>/stat):\n");
        println!("| measurement | {} | instructions per operation |", PROCESSES.join(" | "));
        println!("|---|{}---:|", "---:|".repeat(PROCESSES.len()));
        for (phase, _, _) in self.rows() {
            let cells: Vec<String> = PROCESSES
                .iter()
                .map(|name| {
                    phase
                        .cpu
                        .iter()
                        .find(|cpu| cpu.process == *name)
                        .map_or("–".into(), |cpu| format!("{:.1}", cpu.ms_per_1k))
                })
                .collect();
            let instructions = phase.instructions_per_op.map_or("not counted".into(), |n| format!("{n:.0}"));
            println!("| {} | {} | {instructions} |", phase.name, cells.join(" | "));
        }

        if let Some(paused) = &self.accepted_path_settler_paused {
            println!(
                "\nthe settler draining beside the accepted path costs it {:.0} % of the rate it reaches with the settler paused",
                100.0 * (1.0 - self.accepted_path.per_second / paused.per_second)
            );
        }
        let mib = |v: Option<f64>| v.map_or("unknown".into(), |v| format!("{v:.1} MiB"));
        println!(
            "gateway peak RSS {} (target < 64 MiB), settler peak RSS {}",
            mib(self.gateway_peak_rss_mib),
            mib(self.settler_peak_rss_mib)
        );
    }
}
