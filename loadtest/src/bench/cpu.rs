//! What a phase cost in CPU: each watched process's user + system time,
//! read from `/proc/<pid>/stat` before and after, per 1,000 operations. On
//! a shared machine this is steadier than operations per second. And, where
//! the machine counts them, the instructions the process doing the work
//! ran per operation (`perf stat`).

use std::process::Stdio;

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// A process whose CPU time the bench reads.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    pub name: &'static str,
    pub pid: u32,
}

/// CPU time one process spent on a phase.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    pub process: &'static str,
    pub ms_per_1k: f64,
}

/// CPU times of the watched processes at a phase's start.
pub struct CpuStart(Vec<(Watched, Option<f64>)>);

/// Reads the CPU times of `watched` now.
pub fn start(watched: &[Watched]) -> CpuStart {
    CpuStart(watched.iter().map(|w| (*w, cpu_ms(w.pid))).collect())
}

impl CpuStart {
    /// CPU each process spent since the start, ms; a process that went
    /// away (or was never there) is left out.
    fn spent(self) -> impl Iterator<Item = (&'static str, f64)> {
        self.0.into_iter().filter_map(|(watched, before)| Some((watched.name, cpu_ms(watched.pid)? - before?)))
    }

    /// CPU each process spent since the start, per 1,000 of `operations`.
    pub fn per_thousand(self, operations: u64) -> Vec<ProcessCpu> {
        let thousands = operations.max(1) as f64 / 1_000.0;
        self.spent().map(|(process, ms)| ProcessCpu { process, ms_per_1k: ms / thousands }).collect()
    }
}

/// Waits until the watched processes together use less than a tenth of a
/// core (what the last phase left them doing, e.g. a database flushing,
/// must not be counted in the next), at most `limit`.
pub async fn wait_quiet(watched: &[Watched], limit: std::time::Duration) {
    const SAMPLE: std::time::Duration = std::time::Duration::from_millis(300);
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let before = start(watched);
        tokio::time::sleep(SAMPLE).await;
        let busy_ms: f64 = before.spent().map(|(_, ms)| ms).sum();
        if busy_ms < 0.1 * SAMPLE.as_millis() as f64 {
            return;
        }
    }
}

/// A process's user + system time so far, ms (all its threads).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = procfs::process::Process::new(pid as i32).ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 * 1_000.0 / procfs::ticks_per_second() as f64)
}

/// A process's peak resident memory (VmHWM), MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let kib = procfs::process::Process::new(pid as i32).ok()?.status().ok()?.vmhwm?;
    Some(kib as f64 / 1024.0)
}

/// Sends `signal` (a name: STOP, CONT, INT) to `pid`.
pub async fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().await?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// `perf stat` counting one process's instructions over a phase; `None`
/// where perf is missing or the machine does not count instructions.
pub struct InstructionCount(Child);

impl InstructionCount {
    pub fn start(pid: u32) -> Option<Self> {
        let child = Command::new("perf")
            .args(["stat", "-x,", "-e", "instructions", "-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        Some(Self(child))
    }

    /// Stops counting; instructions per operation.
    pub async fn per_operation(mut self, operations: u64) -> Option<f64> {
        let pid = self.0.id()?;
        // perf prints its counts when interrupted.
        signal(pid, "INT").await.ok()?;
        let mut printed = String::new();
        self.0.stderr.take()?.read_to_string(&mut printed).await.ok()?;
        self.0.wait().await.ok()?;
        let count: f64 = printed.lines().find(|line| line.contains("instructions"))?.split(',').next()?.parse().ok()?;
        Some(count / operations.max(1) as f64)
    }
}
