//! The settler's spans of a traced order: the gateway's produce span
//! sent its trace context in the message's headers, and the settler
//! continues that trace with a consume span (from the start of the
//! message's batch to its commit) and a shard-write span under it.

use order::event::{DecodeError, OrderEvent};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
use telemetry::propagation::{Parent, TRACE_HEADERS};
use tracing::field::Empty;
use tracing::Span;

/// A message's trace context headers, as (name, value).
pub type TraceContext = Vec<(&'static str, Vec<u8>)>;

/// The trace context headers of `message`, looked up by name. (rdkafka's
/// header iterator panics on a key that is not UTF-8, which any producer
/// may write: one such message would stop the settler at every restart.)
pub fn trace_context(message: &BorrowedMessage<'_>) -> TraceContext {
    let mut headers = std::ptr::null_mut();
    // SAFETY: the message is alive for the call; the headers it hands out
    // belong to it, and are only read before it is dropped.
    if unsafe { rdkafka_sys::rd_kafka_message_headers(message.ptr(), &mut headers) } != RD_KAFKA_RESP_ERR_NO_ERROR {
        return Vec::new();
    }
    TRACE_HEADERS
        .into_iter()
        .filter_map(|key| {
            let (mut value, mut size) = (std::ptr::null(), 0);
            // SAFETY: `headers` is the message's; on success `value` points at `size` bytes of it.
            let found = unsafe { rdkafka_sys::rd_kafka_header_get_last(headers, key.as_ptr(), &mut value, &mut size) };
            (found == RD_KAFKA_RESP_ERR_NO_ERROR && !value.is_null()).then(|| {
                let name = key.to_str().expect("the trace headers' names are ASCII");
                (name, unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }.to_vec())
            })
        })
        .collect()
}

/// The consume span of `message`, if its trace context is a valid one.
pub fn consume_span(
    message: &OwnedMessage,
    trace: &TraceContext,
    event: &Result<OrderEvent, DecodeError>,
) -> Option<Span> {
    let parent = Parent::from_headers(trace.iter().map(|(name, value)| (*name, value.as_slice())))?;
    let event = event.as_ref().ok();
    let span = tracing::info_span!(
        "settler.consume",
        otel.kind = "consumer",
        event = event.map(OrderEvent::kind),
        order_id = event.map(|event| tracing::field::display(event.order_id())),
        partition = message.partition(),
        offset = message.offset(),
        trace_id = Empty,
    );
    parent.adopt(&span);
    Some(span)
}

/// A shard-write span under each of `consumed`, for the writes of a batch
/// of `messages`; they end when dropped.
pub fn write_spans<'a>(consumed: impl Iterator<Item = &'a Span>, messages: usize) -> Vec<Span> {
    consumed.map(|parent| tracing::info_span!(parent: parent, "shard.write", messages)).collect()
}
