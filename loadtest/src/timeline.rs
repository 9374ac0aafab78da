//! Throughput and latency second by second, from the samples of a run, and
//! the chart of them (SVG, plotters).

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

/// One second of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Seconds since the run began.
    pub t: u32,
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// Groups `(sent ms, latency µs)` samples by the second they were sent in.
pub fn per_second(samples: &[(u32, u32)]) -> Vec<Second> {
    let Some(last) = samples.iter().map(|(at, _)| at / 1_000).max() else { return Vec::new() };
    let mut seconds: Vec<_> = (0..=last).map(|_| latency_histogram()).collect();
    for (at_ms, latency_us) in samples {
        seconds[(at_ms / 1_000) as usize].saturating_record(u64::from(*latency_us));
    }
    let ms = |us: u64| us as f64 / 1_000.0;
    seconds
        .iter()
        .enumerate()
        .map(|(t, h)| Second {
            t: t as u32,
            requests: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
        })
        .collect()
}

/// Writes an SVG of requests per second (top) and latency percentiles (bottom).
pub fn write_chart(path: &Path, title: &str, seconds: &[Second]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(300);
    let end = seconds.len().max(1) as f64;

    let peak = seconds.iter().map(|s| s.requests).max().unwrap_or(1) as f64 * 1.1;
    let mut throughput = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0f64..peak.max(1.0))?;
    throughput.configure_mesh().x_desc("seconds").y_desc("requests / s").draw()?;
    throughput.draw_series(LineSeries::new(seconds.iter().map(|s| (f64::from(s.t), s.requests as f64)), &BLUE))?;

    let worst = seconds.iter().map(|s| s.p999_ms).fold(1.0, f64::max) * 1.1;
    let mut latency = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end, 0f64..worst)?;
    latency.configure_mesh().x_desc("seconds").y_desc("latency ms").draw()?;
    for (name, color, pick) in [
        ("p50", GREEN, (|s: &Second| s.p50_ms) as fn(&Second) -> f64),
        ("p99", RED, |s: &Second| s.p99_ms),
        ("p99.9", BLACK, |s: &Second| s.p999_ms),
    ] {
        latency
            .draw_series(LineSeries::new(seconds.iter().map(|s| (f64::from(s.t), pick(s))), color))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    latency.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Latency recorded in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_into_their_seconds() {
        let samples = [(10, 1_000), (900, 3_000), (1_500, 2_000), (3_100, 500)];
        let seconds = per_second(&samples);
        assert_eq!(seconds.iter().map(|s| s.requests).collect::<Vec<_>>(), vec![2, 1, 0, 1]);
        assert!((seconds[1].p50_ms - 2.0).abs() < 0.01);
        let path = std::env::temp_dir().join(format!("chart-{}.svg", std::process::id()));
        write_chart(&path, "test", &seconds).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
        std::fs::remove_file(path).unwrap();
    }
}
