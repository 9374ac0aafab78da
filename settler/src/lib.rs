//! The settler: moves accepted orders from Kafka into sharded MySQL.
//!
//! Layout:
//! - [`config`]: TOML + environment configuration.
//! - [`consumer`]: the pipeline: batch → decode → write → dead letters aside → commit.
//! - [`failures`]: which database errors are retried and which set an event aside.
//! - [`writer`]: idempotent multi-row inserts of new orders, one per shard.
//! - [`transitions`]: paid / cancelled / refund events as conditional updates with history.
//! - [`sweeper`]: cancels orders whose payment deadline passed and sends the outbox.
//! - [`ops`]: `GET /healthz` and `GET /metrics`.
//! - [`reconcile`]: compares a sale's counters in Redis with its orders in MySQL.
//! - [`shards`]: shard pools, migrations, database creation.
//! - [`setup`]: `settler setup`: databases, schema and topics for a deployment.

pub mod config;
pub mod consumer;
pub mod failures;
pub mod ops;
pub mod reconcile;
pub mod setup;
pub mod shards;
pub mod sweeper;
pub mod transitions;
pub mod writer;

pub use consumer::Settler;
