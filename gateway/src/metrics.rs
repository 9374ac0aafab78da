//! Prometheus metrics through the `metrics` facade. The recorder is
//! process-wide, so it is installed once and shared by every gateway the
//! process runs (tests run several).
//!
//! The recorder keeps every histogram sample until upkeep (or a scrape)
//! folds it into the buckets: without upkeep the gateway's memory grows
//! with each request between scrapes, without bound when nobody scrapes.
//! A scrape reads the process's figures too (`process_resident_memory_bytes`,
//! CPU seconds, open files: the `metrics-process` collector).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from 100 µs to 5 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// How often pending histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            let upkept = handle.clone();
            metrics_process::Collector::default().describe();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkept.run_upkeep();
                })
                .expect("a thread can be spawned at start");
            handle
        })
        .clone()
}
