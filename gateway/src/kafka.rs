//! The order-event producer: idempotent, `acks=all`, and a send returns only
//! once the broker has acknowledged the event (or given up on it).

use std::time::Duration;

use order::event::OrderEvent;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::config;

pub struct EventProducer {
    producer: FutureProducer,
    topic: String,
}

impl EventProducer {
    pub fn new(config: &config::Kafka) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set("linger.ms", config.linger_ms.to_string())
            .create()?;
        Ok(Self { producer, topic: config.topic.clone() })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends one event and waits for the broker's acknowledgement.
    pub async fn send(&self, event: &OrderEvent) -> Result<(), KafkaError> {
        let key = event.key();
        let payload = event.encode();
        let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
        // A full local queue fails at once rather than queueing the request.
        match self.producer.send(record, Timeout::After(Duration::ZERO)).await {
            Ok(_) => Ok(()),
            Err((err, _message)) => {
                metrics::counter!("gateway_produce_failures_total").increment(1);
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
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }
}
