//! Logs and traces for the binaries: [`init`] sets up the log lines (stdout,
//! filtered by `RUST_LOG`) and, when `[tracing] otlp_endpoint` is set,
//! OpenTelemetry spans exported over OTLP/HTTP, sampled by
//! `sample_ratio`; [`propagation`] carries a sampled span's trace context
//! across Kafka (its message headers) and records its trace id on the
//! spans, so the log lines inside them carry it.

pub mod propagation;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// `[tracing]`: where the spans of an order's path go, and how many orders
/// are traced. Off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// A collector's OTLP/HTTP traces URL (protobuf, plain HTTP: a
    /// collector beside the process or in its cluster), e.g.
    /// `http://otel-collector:4318/v1/traces`; empty: no spans exported.
    pub otlp_endpoint: String,
    /// The share of requests traced, from 0 to 1. The gateway decides for
    /// each request it receives (a `traceparent` a client sends is not
    /// followed: a client must not choose what the gateway traces at
    /// peak); the settler follows the decision carried in the message.
    pub sample_ratio: f64,
    /// How often the spans collected are sent, ms.
    pub export_interval_ms: u64,
    /// How long one export may take, ms.
    pub export_timeout_ms: u64,
    /// The most spans held waiting for an export; past it new spans are
    /// dropped, never waited for.
    pub max_queued_spans: usize,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            sample_ratio: 0.01,
            export_interval_ms: 1_000,
            export_timeout_ms: 5_000,
            max_queued_spans: 4_096,
        }
    }
}

impl TracingConfig {
    /// What is wrong with the settings, if anything.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err("sample_ratio must be between 0 and 1".into());
        }
        let endpoint = &self.otlp_endpoint;
        // The exporter is built without TLS: an https:// URL would fail every export, unseen.
        if !endpoint.is_empty() && !endpoint.starts_with("http://") {
            return Err(
                "otlp_endpoint must be an http:// URL (no TLS: a collector beside the process), or empty".into()
            );
        }
        if self.export_interval_ms == 0 || self.export_timeout_ms == 0 || self.max_queued_spans == 0 {
            return Err("export_interval_ms, export_timeout_ms and max_queued_spans must be positive".into());
        }
        Ok(())
    }
}

/// Keeps the span exporter running; dropping it sends what is queued
/// (within the export timeout) and stops it.
#[must_use = "spans stop being exported when the guard is dropped"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(err) = provider.shutdown() {
                eprintln!("sending the last spans failed: {err}");
            }
        }
    }
}

/// Log lines to stdout, filtered by `RUST_LOG` (default: info, and
/// librdkafka's warnings); with `config.otlp_endpoint` set, the spans of
/// sampled requests too, as `service` (the OTLP resource's
/// `service.name`). The exporter sends from a thread of its own.
pub fn init(service: &'static str, config: &TracingConfig) -> Result<Telemetry, ExporterBuildError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rdkafka=warn".into());
    let provider = match config.otlp_endpoint.as_str() {
        "" => None,
        endpoint => Some(tracer_provider(service, endpoint, config)?),
    };
    let spans = provider.as_ref().map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(service)));
    tracing_subscriber::registry().with(filter).with(tracing_subscriber::fmt::layer()).with(spans).init();
    Ok(Telemetry { provider })
}

fn tracer_provider(
    service: &'static str,
    endpoint: &str,
    config: &TracingConfig,
) -> Result<SdkTracerProvider, ExporterBuildError> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_millis(config.export_timeout_ms))
        .build()?;
    let batches = BatchConfigBuilder::default()
        .with_scheduled_delay(Duration::from_millis(config.export_interval_ms))
        .with_max_queue_size(config.max_queued_spans)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batches).build())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio))))
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused() {
        assert!(TracingConfig::default().validate().is_ok());
        let ratio = TracingConfig { sample_ratio: 1.5, ..Default::default() };
        assert!(ratio.validate().unwrap_err().contains("sample_ratio"));
        for endpoint in ["collector:4318", "https://collector:4318/v1/traces"] {
            let config = TracingConfig { otlp_endpoint: endpoint.into(), ..Default::default() };
            assert!(config.validate().unwrap_err().contains("otlp_endpoint"), "{endpoint}");
        }
        let queue = TracingConfig { max_queued_spans: 0, ..Default::default() };
        assert!(queue.validate().is_err());
    }
}
