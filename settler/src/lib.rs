//! The settler: moves accepted orders from Kafka into sharded MySQL.
//!
//! Layout:
//! - [`config`]: TOML + environment configuration.
//! - [`consumer`]: the pipeline: batch → decode → write → dead letters aside → commit;
//!   [`consumer_lag`]: how far behind it is, asked of the brokers apart from it;
//!   [`traced`]: the spans of a traced order's events, continuing the gateway's trace.
//! - [`failures`]: which database errors are retried and which set an event aside.
//! - [`sweeper`]: cancels orders whose payment deadline passed and sends the outbox.
//! - [`timers`]: relays the shards' outboxes, drives refunds, completes shipped orders.
//! - [`refunds`]: asks the payment channel for refunds until each is settled.
//! - [`ops`]: `GET /healthz` and `GET /metrics`.
//! - [`reconcile`]: compares a sale's counters in Redis with its orders in MySQL.
//! - [`sale_report`]: the daily report: live sale figures against MySQL's.
//! - [`setup`]: `settler setup`: databases, schema and topics for a deployment.
//!
//! The orders database itself (pools, schema, every statement) is the
//! `orderdb` crate.

pub mod config;
pub mod consumer;
pub mod consumer_lag;
pub mod failures;
pub mod ops;
pub mod reconcile;
pub mod refunds;
pub mod sale_report;
pub mod setup;
pub mod sweeper;
pub mod timers;
pub mod traced;

pub use consumer::Settler;
