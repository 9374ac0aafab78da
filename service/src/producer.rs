//! The order-event producer: idempotent, `acks=all`, and a send returns only
//! once the broker has acknowledged the event (or given up on it).

use std::time::Duration;

use order::event::OrderEvent;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};

/// Where the order events go and how long a send may take.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub bootstrap: String,
    /// Topic of the order events.
    pub topic: String,
    /// How long the producer keeps trying to deliver one event before the
    /// send fails (and, in the gateway, the order is released with a 503), ms.
    pub message_timeout_ms: u64,
    /// How long the producer waits to batch events (librdkafka `linger.ms`), ms.
    pub linger_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "order-events".into(),
            message_timeout_ms: 5_000,
            linger_ms: 1,
        }
    }
}

pub struct EventProducer {
    producer: FutureProducer,
    topic: String,
}

impl EventProducer {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set("linger.ms", config.linger_ms.to_string())
            .create()?;
        Ok(Self { producer, topic: config.topic.clone() })
    }

    /// Sends one event and waits for the broker's acknowledgement.
    pub async fn send(&self, event: &OrderEvent) -> Result<(), KafkaError> {
        let key = event.key();
        let payload = event.encode();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        // A full local queue fails at once rather than queueing the caller.
        match self.producer.send(record, Timeout::After(Duration::ZERO)).await {
            Ok(_) => Ok(()),
            Err((err, _message)) => {
                tracing::warn!(topic = %self.topic, error = %err, "order event not acknowledged");
                Err(err)
            }
        }
    }

    /// Whether the broker answers a metadata request for the topic in time.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        // librdkafka's metadata call blocks its thread.
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(Some(&topic), timeout).is_ok())
            .await
            .unwrap_or(false)
    }

    /// Delivers what is still queued, waiting at most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout)).await.unwrap_or(Err(KafkaError::Canceled))
    }
}
