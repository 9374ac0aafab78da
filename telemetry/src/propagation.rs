//! A sampled span's W3C trace context (`traceparent`, `tracestate`) as
//! message headers, and back: the gateway's produce span becomes the
//! parent of the settler's consume span. Unsampled spans send no header,
//! so an untraced order's messages are as they were.

use std::collections::HashMap;
use std::ffi::CStr;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The headers of the W3C trace context (C strings, for a consumer that
/// looks them up through librdkafka).
pub const TRACE_HEADERS: [&CStr; 2] = [c"traceparent", c"tracestate"];

/// The trace context headers of the current span, if it is sampled
/// (nothing otherwise, and nothing when traces are off).
pub fn trace_headers() -> Vec<(String, String)> {
    let context = Span::current().context();
    if !context.span().span_context().is_sampled() {
        return Vec::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    // An empty `tracestate` says nothing.
    carrier.into_iter().filter(|(_, value)| !value.is_empty()).collect()
}

/// A remote parent: the trace context a message carried.
pub struct Parent(opentelemetry::Context);

impl Parent {
    /// The trace context in `headers` (name and value pairs), if they carry a valid one.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<Self> {
        let carrier: HashMap<String, String> = headers
            .into_iter()
            .filter(|(name, _)| TRACE_HEADERS.iter().any(|header| header.to_bytes() == name.as_bytes()))
            .filter_map(|(name, value)| Some((name.to_owned(), std::str::from_utf8(value).ok()?.to_owned())))
            .collect();
        if carrier.is_empty() {
            return None;
        }
        let context = TraceContextPropagator::new().extract(&carrier);
        context.span().span_context().is_valid().then_some(Self(context))
    }

    /// Makes `span` this parent's child, and records its trace id.
    pub fn adopt(self, span: &Span) {
        // Refused only when no trace layer is installed: then nothing is traced.
        let _ = span.set_parent(self.0);
        record_trace_id(span);
    }
}

/// Records `span`'s trace id in its `trace_id` field if the span is
/// sampled, so the log lines inside it name the trace.
pub fn record_trace_id(span: &Span) {
    let context = span.context();
    let otel_span = context.span();
    let span_context = otel_span.span_context();
    if span_context.is_sampled() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn subscriber(lines: Lines, provider: &SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || lines.clone()))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
    }

    #[test]
    fn a_sampled_span_passes_its_trace_to_the_consumer_and_its_logs() {
        let provider = SdkTracerProvider::builder().build();
        let lines = Lines::default();
        tracing::subscriber::with_default(subscriber(lines.clone(), &provider), || {
            let request = tracing::info_span!("request", order_id = 42, trace_id = tracing::field::Empty);
            record_trace_id(&request);
            let (headers, trace_id) = request.in_scope(|| {
                tracing::info!("order accepted");
                let produce = tracing::info_span!("produce");
                let headers = produce.in_scope(trace_headers);
                (headers, Span::current().context().span().span_context().trace_id())
            });
            assert!(headers.iter().any(|(name, _)| name == "traceparent"), "{headers:?}");
            let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
            assert!(logged.contains(&format!("trace_id={trace_id}")), "{logged}");
            assert!(logged.contains("order_id=42"), "{logged}");

            let parent = Parent::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes()))).unwrap();
            let consume = tracing::info_span!("consume", trace_id = tracing::field::Empty);
            parent.adopt(&consume);
            assert_eq!(consume.context().span().span_context().trace_id(), trace_id);
        });
    }

    #[test]
    fn an_unsampled_span_sends_no_header() {
        let provider = SdkTracerProvider::builder().with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff).build();
        tracing::subscriber::with_default(subscriber(Lines::default(), &provider), || {
            let request = tracing::info_span!("request", trace_id = tracing::field::Empty);
            assert!(request.in_scope(trace_headers).is_empty());
        });
        assert!(Parent::from_headers([("traceparent", b"garbage".as_slice())]).is_none());
        assert!(Parent::from_headers([("key", b"value".as_slice())]).is_none());
    }
}
