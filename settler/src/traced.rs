//! The settler's spans of a traced order: the gateway's produce span
//! sent its trace context in the message's headers, and the settler
//! continues that trace with a consume span (from the start of the
//! message's batch to its commit) and a shard-write span under it.

use order::event::{DecodeError, OrderEvent};
use rdkafka::message::{Headers, Message, OwnedMessage};
use telemetry::propagation::Parent;
use tracing::field::Empty;
use tracing::Span;

/// The consume span of `message`, if its headers carry a trace context.
pub fn consume_span(message: &OwnedMessage, event: &Result<OrderEvent, DecodeError>) -> Option<Span> {
    let headers = message.headers()?;
    let parent = Parent::from_headers(headers.iter().filter_map(|header| Some((header.key, header.value?))))?;
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
