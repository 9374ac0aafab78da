//! Sending order events to Kafka. The gateway, the settler's sweeper and its
//! dead-letter path share one producer type: idempotent, `acks=all`, and
//! honest about a failed send — whether the broker may still have the event.
//!
//! Layout: [`producer`]: [`producer::EventProducer`] and its [`producer::KafkaConfig`].

pub mod producer;
