//! Gateway configuration: defaults, then a TOML file, then `GATEWAY_*`
//! environment variables (`GATEWAY_REDIS__URL` sets `redis.url`), validated
//! once at start. `config/gateway.example.toml` documents every field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use crate::auth::{Auth, AuthMode, KeyAlgorithm, TokenKey, DEV_TOKEN_SECRET};
pub use events::producer::KafkaConfig;
use order::scheduling::SchedulingRules;
use paychannel::channels;
use serde::{Deserialize, Serialize};
pub use startup::secret::Secret;
pub use stock::RedisConfig;
pub use telemetry::TracingConfig;

/// The admin token of the defaults, accepted only in development mode.
pub const DEV_ADMIN_TOKEN: &str = "dev-admin-token";
pub use ordercenter::settings::{Abuse, Breaker, Breakers, Cache, Checkout, Orders, Payments, Queries, Settings};
pub use traffic::{Bucket, Channel, Channels, Deny, LimitedRoute, RouteLimits, Traffic};

mod traffic;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub admin: Admin,
    pub redis: RedisConfig,
    pub kafka: KafkaConfig,
    pub mysql: Mysql,
    pub orders: Orders,
    pub payments: Payments,
    pub warehouse: Warehouse,
    /// The hot-order cache in Redis.
    pub cache: Cache,
    /// Order lists and the merchant's search.
    pub queries: Queries,
    /// Cart checkouts: the carrier's package limits.
    pub checkout: Checkout,
    /// Buyers who hoard units: refused for a while.
    pub abuse: Abuse,
    /// Who the buyer is: reloaded while running (key rotation).
    pub auth: Auth,
    /// Limits, deny lists, breakers and load shedding: reloaded while running.
    pub traffic: Traffic,
    /// Which warehouses of a regional sale serve each region: reloaded
    /// while running.
    pub scheduling: SchedulingRules,
    /// The spans of sampled requests, exported over OTLP: off by default.
    pub tracing: TracingConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// This instance's number, 0–15, part of every order id it mints. Each
    /// gateway instance of one deployment needs its own.
    pub node_id: u8,
    /// How long shutdown waits for in-flight requests, in seconds.
    pub shutdown_grace_secs: u64,
    /// A client must send a request's whole header within this, ms, counted
    /// from the connection's start or the end of the previous answer: it
    /// also closes idle keep-alive connections.
    pub header_read_timeout_ms: u64,
    /// A client must send a request's whole body within this, ms (else 408).
    pub body_read_timeout_ms: u64,
    /// A write to a client that makes no progress for this long (it stopped
    /// reading) closes the connection, ms.
    pub write_timeout_ms: u64,
    /// Connections open at once; past it new ones are closed at accept.
    pub max_connections: usize,
    /// Connections open at once from one peer address; trusted proxies
    /// (`traffic.trusted_proxies`) are not capped. 0 switches it off.
    pub max_connections_per_ip: usize,
    /// Development mode: the development admin token, payment secret and
    /// token-signing key are accepted. The local scripts set it; outside
    /// it, the gateway refuses to start with any of them.
    pub development: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Admin {
    /// Bearer tokens for `/admin/*`, by name; the name is written in the
    /// audit log line of every change. Reloaded while running, so a token
    /// can be rotated: add the new one, move the callers, drop the old.
    pub tokens: BTreeMap<String, Secret>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mysql {
    /// One DSN per physical shard, in shard order. Order lookups go to the
    /// shard an order id names; it must match the settler's list.
    /// Passwords in them are shown masked.
    #[serde(serialize_with = "startup::secret::masked_urls")]
    pub shards: Vec<String>,
    /// A read replica per shard, in shard order ("" for none; an empty list
    /// for none at all). Lists and searches read there while it is less
    /// than `queries.replica_max_lag_secs` behind; reads of one order by id
    /// never do (the cache or the primary answer them). Its user needs the
    /// `REPLICATION CLIENT` (MariaDB ≥ 10.5: `SLAVE MONITOR`) privilege to
    /// read its lag.
    #[serde(serialize_with = "startup::secret::masked_urls")]
    pub replicas: Vec<String>,
}

/// The warehouse (WMS) paid orders are pushed to, shipped from and intercepted at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Warehouse {
    /// Base URL of the warehouse's API.
    pub url: String,
    /// A call to the warehouse slower than this fails, ms.
    pub timeout_ms: u64,
}

impl Default for Warehouse {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:9700".into(), timeout_ms: 3_000 }
    }
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            node_id: 0,
            shutdown_grace_secs: 10,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
            max_connections: 10_000,
            max_connections_per_ip: 500,
            development: false,
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Self { tokens: BTreeMap::from([("dev".to_owned(), Secret::from(DEV_ADMIN_TOKEN))]) }
    }
}

impl std::fmt::Debug for Mysql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shards: Vec<String> = self.shards.iter().map(|dsn| startup::secret::mask_password(dsn)).collect();
        let replicas: Vec<String> = self.replicas.iter().map(|dsn| startup::secret::mask_password(dsn)).collect();
        f.debug_struct("Mysql").field("shards", &shards).field("replicas", &replicas).finish()
    }
}

impl Default for Mysql {
    fn default() -> Self {
        Self { shards: orderdb::shards::local_dsns(), replicas: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {0}")]
    Parse(#[from] Box<startup::ConfigFileError>),
    #[error("config: {field} {problem}")]
    Invalid { field: &'static str, problem: String },
}

impl Config {
    /// Defaults, overlaid by `file` (if given) and then by `GATEWAY_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        // A file's route table replaces the default one whole (serde fills
        // in the default only when the file names no routes).
        let config: Config = startup::load_config(file, "GATEWAY_")?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, problem: &str| Err(ConfigError::Invalid { field, problem: problem.into() });
        if self.server.node_id > order::id::MAX_NODE {
            return invalid("server.node_id", "must be between 0 and 14 (15 is the database fallback's)");
        }
        if self.server.header_read_timeout_ms == 0
            || self.server.body_read_timeout_ms == 0
            || self.server.write_timeout_ms == 0
        {
            return invalid(
                "server",
                "header_read_timeout_ms, body_read_timeout_ms and write_timeout_ms must be positive",
            );
        }
        if self.server.max_connections == 0 {
            return invalid("server.max_connections", "must be positive");
        }
        if !self.server.development {
            if self.admin.tokens.values().any(|token| token.expose() == DEV_ADMIN_TOKEN) {
                return invalid(
                    "admin.tokens",
                    "holds the development token: set your own (or server.development = true on a laptop)",
                );
            }
            let dev_key = |key: &TokenKey| key.secret.as_ref().is_some_and(|s| s.expose() == DEV_TOKEN_SECRET);
            if self.auth.mode == AuthMode::Jwt && self.auth.keys.iter().any(dev_key) {
                return invalid(
                    "auth.keys",
                    "holds the development signing key: set your issuer's (or server.development = true on a laptop)",
                );
            }
        }
        if let Err(problem) = self.scheduling.validate() {
            return Err(ConfigError::Invalid { field: "scheduling", problem: problem.0 });
        }
        if let Err(problem) = crate::auth::Verifier::build(&self.auth, self.server.development) {
            return Err(ConfigError::Invalid { field: "auth", problem });
        }
        // Real secrets are long; the development ones only need to be there.
        let shortest = if self.server.development { 8 } else { 16 };
        if self.admin.tokens.is_empty() || self.admin.tokens.values().any(|token| token.expose().len() < shortest) {
            return invalid("admin.tokens", "must name at least one token, each of at least 16 characters");
        }
        if self.redis.pool_size == 0 {
            return invalid("redis.pool_size", "must be at least 1");
        }
        if self.kafka.topic.is_empty() {
            return invalid("kafka.topic", "must not be empty");
        }
        if order::shard::ShardRouter::new(self.mysql.shards.len()).is_none() {
            return invalid("mysql.shards", "must list between 1 and 1024 DSNs");
        }
        if !self.mysql.replicas.is_empty() && self.mysql.replicas.len() != self.mysql.shards.len() {
            return invalid("mysql.replicas", "must be empty or list one DSN (or \"\") per shard");
        }
        if self.cache.ttl_secs > 86_400 {
            return invalid("cache.ttl_secs", "must be at most 86400 (a day)");
        }
        if self.queries.max_page == 0 || self.queries.shard_timeout_ms == 0 || self.queries.replica_check_ms == 0 {
            return invalid("queries", "max_page, shard_timeout_ms and replica_check_ms must be positive");
        }
        if self.checkout.max_package_weight_grams == 0 || self.checkout.max_package_volume_cm3 == 0 {
            return invalid("checkout", "max_package_weight_grams and max_package_volume_cm3 must be positive");
        }
        if self.checkout.cents_per_point < 1 {
            return invalid("checkout.cents_per_point", "must be at least 1");
        }
        let payments = &self.payments;
        let development = self.server.development;
        if let Err(problem) =
            channels::check(&payments.channels, &payments.default_channel, &payments.fallback_channel, development)
        {
            return Err(ConfigError::Invalid { field: "payments.channels", problem });
        }
        if self.payments.query_every_secs == 0 {
            return invalid("payments.query_every_secs", "must be positive");
        }
        if self.orders.payment_window_secs == 0 || self.orders.idempotency_ttl_secs == 0 {
            return invalid("orders", "payment_window_secs and idempotency_ttl_secs must be positive");
        }
        if self.orders.idempotency_ttl_secs < self.orders.payment_window_secs {
            return invalid("orders.idempotency_ttl_secs", "must be at least payment_window_secs");
        }
        if let Err(problem) = self.tracing.validate() {
            return Err(ConfigError::Invalid { field: "tracing", problem });
        }
        // An order still waiting for its broker acknowledgement must not be
        // swept from under the request placing it, and its confirm deadline
        // must come before its payment deadline (the sweeper tells them apart).
        let confirm_ms = self.orders.confirm_window_secs * 1_000;
        if confirm_ms <= self.in_flight_window_ms()
            || self.orders.confirm_window_secs >= self.orders.payment_window_secs
        {
            return invalid(
                "orders.confirm_window_secs",
                "must exceed kafka.message_timeout_ms + 3 × redis.command_timeout_ms + 1 s, and be below payment_window_secs",
            );
        }
        self.traffic.validate()
    }

    /// How long the request that reserved an order may still be waiting
    /// for the broker: its produce timeout and three Redis command timeouts
    /// (adding the sale to the active sales; the acknowledgement's wait for
    /// its batch, and its call), plus a second.
    pub fn in_flight_window_ms(&self) -> u64 {
        self.kafka.message_timeout_ms + 3 * self.redis.command_timeout_ms + 1_000
    }

    /// What the order center runs with.
    pub fn center_settings(&self) -> Settings {
        Settings {
            node_id: self.server.node_id,
            orders: self.orders.clone(),
            payments: self.payments.clone(),
            abuse: self.abuse.clone(),
            cache: self.cache.clone(),
            queries: self.queries.clone(),
            checkout: self.checkout.clone(),
            message_timeout_ms: self.kafka.message_timeout_ms,
            in_flight_window: Duration::from_millis(self.in_flight_window_ms()),
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_grace_secs)
    }
}

impl Server {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}

#[cfg(test)]
mod tests;
