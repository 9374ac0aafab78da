//! The settler's pipeline: consume a batch of order events, send what cannot
//! be decoded to the dead-letter topic, write the rest to their shards, and
//! only then commit the batch's offsets.
//!
//! Every step is safe to redo: a crash or rebalance before the commit means
//! the batch is delivered again, the dead letters are sent again (at least
//! once) and the inserts find their rows already there.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use order::event::{OrderCreated, OrderEvent};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::shards::ShardPools;
use crate::transitions;
use crate::writer::write_orders;

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("mysql: {0}")]
    Mysql(#[from] sqlx::Error),
}

pub struct Settler {
    config: Config,
    consumer: StreamConsumer,
    dead_letters: FutureProducer,
    shards: ShardPools,
}

impl Settler {
    pub fn new(config: Config) -> Result<Self, SettleError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.bootstrap)
            .set("group.id", &config.kafka.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", config.kafka.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", (config.kafka.session_timeout_ms / 4).max(100).to_string())
            .create()?;
        consumer.subscribe(&[&config.kafka.topic])?;
        let dead_letters: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()?;
        let shards = ShardPools::connect_lazy(&config.mysql.shards, config.mysql.pool_size)?;
        Ok(Self { config, consumer, dead_letters, shards })
    }

    /// Settles batches until `shutdown` resolves. A batch under way when it
    /// does is finished and committed first.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), SettleError> {
        tokio::pin!(shutdown);
        loop {
            let first = tokio::select! {
                message = self.consumer.recv() => message,
                _ = &mut shutdown => break,
            };
            let mut batch = match first {
                Ok(message) => vec![message.detach()],
                Err(err) => {
                    tracing::warn!(error = %err, "consume failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            self.fill(&mut batch).await;
            self.settle(&batch).await?;
        }
        tracing::info!("settler stopped");
        Ok(())
    }

    /// Adds messages until the batch is full or its wait is over.
    async fn fill(&self, batch: &mut Vec<OwnedMessage>) {
        let deadline = tokio::time::Instant::now() + self.config.max_wait();
        while batch.len() < self.config.batch.max_messages {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(err)) => tracing::warn!(error = %err, "consume failed"),
                Err(_) => break,
            }
        }
    }

    /// New orders first, in one multi-row insert per shard, then the other
    /// events one by one in their order. Events of one order share a
    /// partition (the key is the user id), so an order's creation is always
    /// written before its later events.
    async fn settle(&self, batch: &[OwnedMessage]) -> Result<(), SettleError> {
        let mut orders: Vec<OrderCreated> = Vec::with_capacity(batch.len());
        let mut moves: Vec<OrderEvent> = Vec::new();
        for message in batch {
            match OrderEvent::decode(message.payload().unwrap_or_default()) {
                Ok(OrderEvent::OrderCreated(created)) => orders.push(created),
                Ok(event) => moves.push(event),
                Err(err) => self.dead_letter(message, &err.to_string()).await?,
            }
        }
        self.until_stored("new orders", || write_orders(&self.shards, &orders)).await;
        for event in &moves {
            self.until_stored("order transition", || transitions::apply(self.shards.for_user(event.user_id()), event))
                .await;
        }
        self.commit(batch)?;
        tracing::debug!(messages = batch.len(), orders = orders.len(), transitions = moves.len(), "batch settled");
        Ok(())
    }

    /// Retries with capped exponential backoff until the shard takes the
    /// write: offsets must not move past events that are not stored.
    async fn until_stored<F, Fut>(&self, what: &str, mut write: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), sqlx::Error>>,
    {
        let mut backoff = Duration::from_millis(self.config.batch.retry_min_ms);
        let max = Duration::from_millis(self.config.batch.retry_max_ms);
        while let Err(err) = write().await {
            tracing::warn!(error = %err, what, retry_in = ?backoff, "shard write failed");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max);
        }
    }

    async fn dead_letter(&self, message: &OwnedMessage, error: &str) -> Result<(), SettleError> {
        tracing::warn!(
            partition = message.partition(),
            offset = message.offset(),
            error,
            "undecodable event sent to the dead-letter topic"
        );
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "error", value: Some(error) })
            .insert(Header { key: "source.topic", value: Some(message.topic()) })
            .insert(Header { key: "source.partition", value: Some(&partition) })
            .insert(Header { key: "source.offset", value: Some(&offset) });
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.config.kafka.dlq_topic)
            .payload(message.payload().unwrap_or_default())
            .headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        self.dead_letters.send(record, Timeout::Never).await.map_err(|(err, _)| err)?;
        Ok(())
    }

    /// Commits, per partition, the offset after the batch's last message.
    fn commit(&self, batch: &[OwnedMessage]) -> Result<(), SettleError> {
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        for message in batch {
            let entry = next.entry((message.topic(), message.partition())).or_insert(0);
            *entry = (*entry).max(message.offset() + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        if let Err(err) = self.consumer.commit(&offsets, CommitMode::Sync) {
            // After a rebalance the partition's new owner re-reads from the
            // last commit; the inserts are idempotent, so this is only work.
            tracing::warn!(error = %err, "offset commit failed; the batch will be settled again");
        }
        Ok(())
    }
}
