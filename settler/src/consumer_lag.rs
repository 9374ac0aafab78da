//! `settler_consumer_lag`: how many messages the partitions this settler
//! consumes are behind the log's end (the end less the group's committed
//! offset, or less the log's start where the group committed nothing yet),
//! asked of the brokers every few seconds apart from the consumer's own
//! polling, so a settler stalled on MySQL still reports its lag growing.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Offset;

/// How often the lag is asked.
const EVERY: Duration = Duration::from_secs(5);
/// How long the brokers have to answer one ask.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Reports the lag of `consumer`'s partitions until the task is aborted.
pub async fn report(consumer: Arc<StreamConsumer>) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let consumer = consumer.clone();
        match tokio::task::spawn_blocking(move || lag(&consumer)).await {
            Ok(Ok(lag)) => metrics::gauge!("settler_consumer_lag").set(lag as f64),
            Ok(Err(err)) => tracing::debug!(error = %err, "consumer lag not known this time"),
            Err(err) => tracing::warn!(error = %err, "consumer lag task failed"),
        }
    }
}

/// The lag summed over the partitions assigned to `consumer` (blocking).
fn lag(consumer: &StreamConsumer) -> Result<i64, rdkafka::error::KafkaError> {
    let assigned = consumer.assignment()?;
    let committed = consumer.committed_offsets(assigned, ASK_TIMEOUT)?;
    let mut lag = 0;
    for partition in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(partition.topic(), partition.partition(), ASK_TIMEOUT)?;
        let from = match partition.offset() {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        lag += (high - from).max(0);
    }
    Ok(lag)
}
