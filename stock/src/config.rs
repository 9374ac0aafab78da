//! Where Redis is and how long to wait for it.

use serde::{Deserialize, Serialize};

/// Where Redis is and how long to wait for it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`; `redis-cluster://host:port?node=...` for a cluster.
    #[serde(serialize_with = "startup::secret::masked_url")]
    pub url: String,
    /// Connections in the pool; each one pipelines many requests.
    pub pool_size: usize,
    /// A command slower than this fails (and a request gets a 503), ms.
    pub command_timeout_ms: u64,
    /// Prefix of every key, to share one Redis between deployments (`staging:`).
    pub namespace: String,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &startup::secret::mask_password(&self.url))
            .field("pool_size", &self.pool_size)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: "redis://127.0.0.1:6379".into(), pool_size: 4, command_timeout_ms: 500, namespace: String::new() }
    }
}
