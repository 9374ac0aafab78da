//! The settler: moves accepted orders from Kafka into sharded MySQL.
//!
//! Layout:
//! - [`config`]: TOML + environment configuration.
//! - [`consumer`]: the pipeline: batch → decode (dead letters aside) → write → commit.
//! - [`writer`]: idempotent multi-row inserts, one per shard.
//! - [`shards`]: shard pools, migrations, database creation.
//! - [`setup`]: `settler setup`: databases, schema and topics for a deployment.

pub mod config;
pub mod consumer;
pub mod setup;
pub mod shards;
pub mod writer;

pub use consumer::Settler;
