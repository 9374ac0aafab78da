//! A consumer group's lag on a topic: the messages it has not committed
//! yet. The settler commits a batch's offsets only once its shards have
//! the batch, so a lag of 0 means every message is stored (or set aside).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One client that reads a group's committed offsets and the topic's
/// watermarks, kept for many looks (it never joins the group).
#[derive(Clone)]
pub struct GroupLag {
    consumer: Arc<BaseConsumer>,
    topic: String,
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl GroupLag {
    pub fn connect(bootstrap: &str, topic: &str, group: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(Self { consumer: Arc::new(consumer), topic: topic.to_owned() })
    }

    /// Messages of the topic the group has not committed yet.
    pub async fn lag(&self) -> anyhow::Result<i64> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.lag_now()).await?
    }

    fn lag_now(&self) -> anyhow::Result<i64> {
        let metadata = self.consumer.fetch_metadata(Some(&self.topic), TIMEOUT)?;
        let mut partitions = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions.add_partition(&self.topic, partition.id());
        }
        let committed = self.consumer.committed_offsets(partitions, TIMEOUT)?;
        let mut lag = 0;
        for element in committed.elements() {
            let (low, high) = self.consumer.fetch_watermarks(&self.topic, element.partition(), TIMEOUT)?;
            let at = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            lag += (high - at).max(0);
        }
        Ok(lag)
    }
}
