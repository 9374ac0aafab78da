//! Settler configuration: defaults, then a TOML file, then `SETTLER_*`
//! environment variables (`SETTLER_KAFKA__BOOTSTRAP` sets `kafka.bootstrap`).
//! `config/settler.example.toml` documents every field.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use paychannel::channels::{self, development_endpoints, Endpoint};
use serde::{Deserialize, Serialize};
pub use stock::RedisConfig;
pub use telemetry::TracingConfig;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: Kafka,
    pub mysql: Mysql,
    pub batch: Batch,
    pub redis: RedisConfig,
    pub sweeper: Sweeper,
    pub lifecycle: Lifecycle,
    pub refunds: Refunds,
    pub abuse: Abuse,
    pub ops: Ops,
    /// The spans of traced orders (the gateway decides which), exported
    /// over OTLP: off by default.
    pub tracing: TracingConfig,
}

/// Strikes against buyers: each order they let expire or cancelled counts
/// for `window_secs` from their first (the gateway's `abuse.window_secs`:
/// keep them equal).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Abuse {
    pub window_secs: u64,
}

impl Default for Abuse {
    fn default() -> Self {
        Self { window_secs: 3_600 }
    }
}

/// The health and metrics endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ops {
    /// Address of `GET /healthz` and `GET /metrics` (port 0: any free one).
    pub listen: std::net::SocketAddr,
}

impl Default for Ops {
    fn default() -> Self {
        Self { listen: ([127, 0, 0, 1], 9101).into() }
    }
}

/// The order lifecycle's background work: the outbox relay and auto-completion.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lifecycle {
    /// How often every shard's outbox is sent and its shipped orders looked at, ms.
    pub every_ms: u64,
    /// A shipped order the buyer has not confirmed completes after this long (10 days).
    pub auto_complete_after_secs: u64,
    /// Whether the units of a paid order cancelled before shipping go back
    /// on sale while the sale runs (otherwise they leave the sale).
    pub restock_cancelled_paid: bool,
    /// Base URL of the warehouse a pushed order is handed to (the gateway's `warehouse.url`).
    pub warehouse_url: String,
    /// A call to the warehouse slower than this fails, ms.
    pub warehouse_timeout_ms: u64,
    /// An after-sale request must be reviewed within this long (24 h)...
    pub review_within_secs: u64,
    /// ...or it is approved (`approve`) or escalated to customer service (`escalate`).
    pub unreviewed: Unreviewed,
    /// Member points spent on a checkout's item that no order row names
    /// this long after the spend are given back, seconds (2 days: past
    /// every window in which the item could still be accepted).
    pub lost_points_after_secs: u64,
}

/// What becomes of an after-sale request nobody reviewed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unreviewed {
    Approve,
    Escalate,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            every_ms: 200,
            auto_complete_after_secs: 10 * 24 * 3_600,
            restock_cancelled_paid: true,
            warehouse_url: "http://127.0.0.1:9700".into(),
            warehouse_timeout_ms: 3_000,
            review_within_secs: 24 * 3_600,
            unreviewed: Unreviewed::Approve,
            lost_points_after_secs: 2 * 86_400,
        }
    }
}

/// Refunds through the payment channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Refunds {
    /// The payment channels by id (the gateway's `payments.channels`): a
    /// refund goes back through the channel its payment came through (one
    /// recorded before there were several, through "card").
    pub channels: BTreeMap<String, Endpoint>,
    /// The gateway's `/v1/refunds/notify`, as the channels reach it; a
    /// channel's notifications go to it followed by `/<channel id>`.
    pub notify_url: String,
    /// A call to a channel slower than this fails, ms.
    pub channel_timeout_ms: u64,
    /// Wait before asking about a refund whose outcome is not known yet,
    /// ms; it doubles with each attempt, up to 16 times this, drawn
    /// between half and all of it.
    pub retry_every_ms: u64,
    /// Attempts before a refund is STUCK for an operator.
    pub max_attempts: u32,
}

impl Default for Refunds {
    fn default() -> Self {
        Self {
            channels: development_endpoints(),
            notify_url: "http://127.0.0.1:8080/v1/refunds/notify".into(),
            channel_timeout_ms: 3_000,
            retry_every_ms: 30_000,
            max_attempts: 10,
        }
    }
}

/// The timeout sweeper: cancels orders whose payment window passed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sweeper {
    /// Whether this settler runs the sweeper (it is safe to run on all).
    pub enabled: bool,
    /// How often each active sale (one holding reservations) is swept, ms.
    pub every_ms: u64,
    /// How often every loaded sale is checked for reservations that are not
    /// in the active set (lost to a failed write or a failover), ms.
    pub rescan_every_ms: u64,
    /// Most orders one sweep of one sale cancels.
    pub batch: usize,
}

impl Default for Sweeper {
    fn default() -> Self {
        Self { enabled: true, every_ms: 1_000, rescan_every_ms: 60_000, batch: 500 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Kafka {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub bootstrap: String,
    /// Topic the gateway writes order events to.
    pub topic: String,
    /// Where messages that cannot be decoded go, with the error attached.
    pub dlq_topic: String,
    /// Consumer group; settler instances sharing it split the partitions.
    pub group_id: String,
    /// Consumer session timeout. Short enough that a dead settler's
    /// partitions move quickly; also how long a first join may take.
    pub session_timeout_ms: u64,
    /// Partitions `settler setup` creates the topic with. Events are keyed
    /// by user; changing the count moves users to other partitions, so an
    /// existing topic with another count is refused, not changed.
    pub partitions: i32,
    /// Copies of each partition `settler setup` asks for; 0: as many as the
    /// cluster has brokers, at most 3. More than the brokers is refused.
    pub replication_factor: i32,
    /// The topics' `min.insync.replicas`: how many copies an acknowledged
    /// event is on (the producer asks `acks=all`); 0: 2 where there are 3
    /// replicas or more, else 1.
    pub min_insync_replicas: i32,
    /// How long the broker keeps events (`retention.ms`): longer than any
    /// settler outage the pipeline must survive without losing an order.
    pub retention_ms: i64,
    /// The broker holds a fetch until this many bytes are ready
    /// (librdkafka `fetch.min.bytes`) or `fetch_wait_max_ms` passed: fewer,
    /// fuller fetches cost the broker less CPU beside the gateway's produces.
    pub fetch_min_bytes: u32,
    /// Longest a fetch waits at the broker (`fetch.wait.max.ms`), ms.
    pub fetch_wait_max_ms: u32,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mysql {
    /// One DSN per physical shard, in shard order (the gateway's list).
    #[serde(serialize_with = "startup::secret::masked_urls")]
    pub shards: Vec<String>,
    /// Connections per shard pool.
    pub pool_size: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Batch {
    /// Most messages written in one batch.
    pub max_messages: usize,
    /// Longest wait for a batch to fill after its first message, ms.
    pub max_wait_ms: u64,
    /// Backoff between retries of a failed database write, first and largest, ms.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for Kafka {
    fn default() -> Self {
        Self {
            bootstrap: "127.0.0.1:9092".into(),
            topic: "order-events".into(),
            dlq_topic: "order-events.dlq".into(),
            group_id: "settler".into(),
            session_timeout_ms: 6_000,
            partitions: 8,
            replication_factor: 0,
            min_insync_replicas: 0,
            retention_ms: 7 * 24 * 3_600_000,
            fetch_min_bytes: 64 * 1024,
            fetch_wait_max_ms: 100,
        }
    }
}

impl std::fmt::Debug for Mysql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shards: Vec<String> = self.shards.iter().map(|dsn| startup::secret::mask_password(dsn)).collect();
        f.debug_struct("Mysql").field("shards", &shards).field("pool_size", &self.pool_size).finish()
    }
}

impl Default for Mysql {
    fn default() -> Self {
        Self { shards: orderdb::shards::local_dsns(), pool_size: 4 }
    }
}

impl Mysql {
    /// The shard pools; a shard that is down fails its writes (they are
    /// retried), it does not stop the settler from starting.
    pub fn connect_lazy(&self) -> Result<orderdb::ShardPools, sqlx::Error> {
        orderdb::ShardPools::connect_lazy(&self.shards, self.pool_size, std::time::Duration::from_secs(5))
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self { max_messages: 4_000, max_wait_ms: 20, retry_min_ms: 100, retry_max_ms: 5_000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Parse(#[from] Box<startup::ConfigFileError>),
    #[error("config: {0}")]
    Invalid(&'static str),
    #[error("config: refunds.channels {0}")]
    Channels(String),
    #[error("config: tracing: {0}")]
    Tracing(String),
}

impl Config {
    /// Defaults, overlaid by `file` (if given) and then by `SETTLER_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Config = startup::load_config(file, "SETTLER_")?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if order::shard::ShardRouter::new(self.mysql.shards.len()).is_none() {
            return Err(ConfigError::Invalid("mysql.shards must list between 1 and 1024 DSNs"));
        }
        if self.batch.max_messages == 0 || self.mysql.pool_size == 0 || self.kafka.partitions < 1 {
            return Err(ConfigError::Invalid(
                "batch.max_messages, mysql.pool_size and kafka.partitions must be positive",
            ));
        }
        let kafka = &self.kafka;
        if kafka.replication_factor < 0
            || kafka.min_insync_replicas < 0
            || kafka.retention_ms < 1
            || (kafka.replication_factor > 0 && kafka.min_insync_replicas > kafka.replication_factor)
        {
            return Err(ConfigError::Invalid(
                "kafka.replication_factor and min_insync_replicas must be 0 (automatic) or positive, \
                 min_insync_replicas at most replication_factor, and retention_ms positive",
            ));
        }
        if self.sweeper.every_ms == 0 || self.sweeper.rescan_every_ms == 0 || self.sweeper.batch == 0 {
            return Err(ConfigError::Invalid("sweeper.every_ms, rescan_every_ms and batch must be positive"));
        }
        if self.batch.retry_min_ms == 0 || self.batch.retry_max_ms < self.batch.retry_min_ms {
            return Err(ConfigError::Invalid("batch.retry_min_ms must be positive and at most retry_max_ms"));
        }
        // The settler only takes the secrets to check lookup answers: the
        // gateway's own check says which are fit for production.
        channels::check_endpoints(&self.refunds.channels, true).map_err(ConfigError::Channels)?;
        self.tracing.validate().map_err(ConfigError::Tracing)
    }

    /// The producer of the sweeper's cancellations.
    pub fn producer(&self) -> events::producer::KafkaConfig {
        events::producer::KafkaConfig {
            bootstrap: self.kafka.bootstrap.clone(),
            topic: self.kafka.topic.clone(),
            ..Default::default()
        }
    }

    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.batch.max_wait_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Toml};
    use figment::Figment;

    #[test]
    fn the_example_file_is_the_defaults() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/settler.example.toml");
        let loaded: Config = Figment::new().merge(Toml::file_exact(example)).extract().unwrap();
        assert_eq!(format!("{loaded:?}"), format!("{:?}", Config::default()));
    }
}
