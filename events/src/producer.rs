//! The order-event producer: idempotent, `acks=all`, and a send returns only
//! once the broker has acknowledged the event or given up on it. A failed
//! send says whether the event certainly did not reach the broker
//! (librdkafka's "not persisted") or may have (a timeout after it was sent):
//! only the first allows undoing what the event announces.
//!
//! A fatal producer error, or a broker refusing the producer's identity
//! (fenced, epoch or sequence lost, e.g. after a broker stall), would fail
//! every later send; the producer is then rebuilt, once, by the first send
//! that sees it (a new producer id), and counted in
//! `kafka_producer_rebuilds_total`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use order::event::OrderEvent;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use rdkafka_sys::rd_kafka_msg_status_t;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::Instrument;

/// Where the order events go and how long a send may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub bootstrap: String,
    /// Topic of the order events.
    pub topic: String,
    /// How long the producer keeps trying to deliver one event before the
    /// send fails, ms. An order whose event was certainly not delivered is
    /// released with a 503; one whose event may have landed keeps its units
    /// until its confirm deadline.
    pub message_timeout_ms: u64,
    /// How long the producer waits to batch events (librdkafka `linger.ms`),
    /// ms. Fewer, larger produce requests cost the broker and the gateway
    /// less CPU per order than they add in waiting (`scripts/bench.sh`).
    pub linger_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "order-events".into(),
            message_timeout_ms: 5_000,
            linger_ms: 5,
        }
    }
}

/// Why a send failed, and whether the broker may have the event anyway.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error} ({})", if *.delivered_maybe { "it may have been delivered" } else { "not delivered" })]
pub struct SendError {
    pub error: KafkaError,
    /// False only when librdkafka knows the event never reached the broker.
    pub delivered_maybe: bool,
}

/// Hands each delivery report, with its persistence status, to its sender.
pub struct DeliveryReports;

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = Box<oneshot::Sender<Result<(), SendError>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Self::DeliveryOpaque) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(error, message)| {
            // SAFETY: the message is valid for the duration of the callback.
            let status = unsafe { rdkafka_sys::rd_kafka_message_status(message.ptr()) };
            SendError {
                error: error.clone(),
                delivered_maybe: status != rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED,
            }
        });
        let _ = reply.send(outcome);
    }
}

type Inner = ThreadedProducer<DeliveryReports>;

/// Broker answers meaning this producer's id or sequence is gone for good.
const IDENTITY_LOST: &[RDKafkaErrorCode] = &[
    RDKafkaErrorCode::ProducerFenced,
    RDKafkaErrorCode::InvalidProducerEpoch,
    RDKafkaErrorCode::OutOfOrderSequenceNumber,
    RDKafkaErrorCode::UnknownProducerId,
    RDKafkaErrorCode::InvalidProducerIdMapping,
];

pub struct EventProducer {
    producer: ArcSwap<Inner>,
    settings: ClientConfig,
    rebuilding: Mutex<()>,
    topic: String,
}

impl EventProducer {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        // Each setting and the failure it guards against: ARCHITECTURE.md,
        // "The producer and the consumer on Kafka".
        let mut settings = ClientConfig::new();
        settings
            .set("bootstrap.servers", &config.bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set("request.timeout.ms", config.message_timeout_ms.min(30_000).to_string())
            .set("retry.backoff.ms", "50")
            .set("retry.backoff.max.ms", "500")
            .set("linger.ms", config.linger_ms.to_string());
        let producer = settings.create_with_context(DeliveryReports)?;
        Ok(Self {
            producer: ArcSwap::from_pointee(producer),
            settings,
            rebuilding: Mutex::new(()),
            topic: config.topic.clone(),
        })
    }

    /// Sends one event to the order-events topic and waits for the broker's
    /// acknowledgement. A traced order's event carries its trace context
    /// in the message's headers: the settler's spans continue the trace.
    pub async fn send(&self, event: &OrderEvent) -> Result<(), SendError> {
        let span = tracing::info_span!(
            "kafka.produce",
            otel.kind = "producer",
            topic = %self.topic,
            event = event.kind(),
            order_id = %event.order_id(),
        );
        async {
            let trace = telemetry::propagation::trace_headers();
            let headers = (!trace.is_empty()).then(|| {
                trace.iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
                    headers.insert(Header { key, value: Some(value.as_str()) })
                })
            });
            let sent = self.send_to(&self.topic, Some(event.key().as_bytes()), &event.encode(), headers).await;
            if let Err(err) = &sent {
                tracing::warn!(topic = %self.topic, error = %err, "order event not acknowledged");
            }
            sent
        }
        .instrument(span)
        .await
    }

    /// Sends an event encoded earlier (a transactional outbox's row) to the
    /// order-events topic, keyed by its user, and waits for the acknowledgement.
    pub async fn send_encoded(&self, user_id: u64, payload: &[u8]) -> Result<(), SendError> {
        self.send_to(&self.topic, Some(user_id.to_string().as_bytes()), payload, None).await
    }

    /// Sends one message to `topic` and waits for the broker's acknowledgement.
    pub async fn send_to(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), SendError> {
        let producer = self.producer.load_full();
        let (reply, delivered) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(reply)).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        // A full local queue fails at once rather than queueing the caller.
        let outcome = match producer.send(record) {
            Err((error, _)) => Err(SendError { error, delivered_maybe: false }),
            Ok(()) => delivered.await.unwrap_or(Err(SendError { error: KafkaError::Canceled, delivered_maybe: true })),
        };
        if let Err(err) = &outcome {
            self.rebuild_if_broken(&producer, &err.error);
        }
        outcome
    }

    /// Replaces `failed` with a new producer if it can never send again and
    /// is still the one in use.
    fn rebuild_if_broken(&self, failed: &Arc<Inner>, error: &KafkaError) {
        let reason = match (failed.client().fatal_error(), error.rdkafka_error_code()) {
            (Some((code, reason)), _) => format!("{code:?}: {reason}"),
            (None, Some(code)) if IDENTITY_LOST.contains(&code) => format!("{code:?}"),
            _ => return,
        };
        let _one_at_a_time = self.rebuilding.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !Arc::ptr_eq(&self.producer.load(), failed) {
            return;
        }
        match self.settings.create_with_context(DeliveryReports) {
            Ok(fresh) => {
                self.producer.store(Arc::new(fresh));
                metrics::counter!("kafka_producer_rebuilds_total").increment(1);
                tracing::error!(reason, "kafka producer can no longer send; rebuilt it");
            }
            Err(err) => tracing::error!(reason, error = %err, "kafka producer can no longer send; rebuilding failed"),
        }
    }

    /// Whether the broker answers a metadata request for the topic in time.
    pub async fn ready(&self, timeout: Duration) -> bool {
        let producer = self.producer.load_full();
        let topic = self.topic.clone();
        // librdkafka's metadata call blocks its thread.
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(Some(&topic), timeout).is_ok())
            .await
            .unwrap_or(false)
    }

    /// Delivers what is still queued, waiting at most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.producer.load_full();
        tokio::task::spawn_blocking(move || producer.flush(timeout)).await.unwrap_or(Err(KafkaError::Canceled))
    }
}
