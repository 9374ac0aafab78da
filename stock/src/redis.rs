//! [`Redis`]: the connection every store of this crate shares — a pool of
//! pipelining connections, the key namespace, and the scripts, loaded once
//! and called by SHA (loaded again on `NOSCRIPT`, e.g. after a restart or
//! failover). Cloning it shares the pool.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;

use crate::config::RedisConfig;
use crate::error::StoreError;
use crate::keys::{GlobalKeys, SaleKeys};
use crate::scripts::Scripts;

#[derive(Clone)]
pub struct Redis {
    pub(crate) pool: Pool,
    pub(crate) namespace: Arc<str>,
    pub(crate) global: Arc<GlobalKeys>,
    pub(crate) scripts: Arc<Scripts>,
    command_timeout: Duration,
}

impl Redis {
    /// Builds the pool and starts connecting. Does not wait for Redis: a
    /// service started while Redis is down fails its calls fast (and says
    /// so in `/readyz`) until the reconnect loop gets through.
    pub fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let mut redis_config = Config::from_url(&config.url)?;
        redis_config.fail_fast = false;
        let pool = Builder::from_config(redis_config)
            .with_performance_config(|perf| perf.default_command_timeout = timeout)
            .with_connection_config(|conn| {
                conn.connection_timeout = timeout;
                // A retried script could run twice; one attempt, and the
                // idempotency records answer the caller's retry.
                conn.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_constant(0, 250))
            .build_pool(config.pool_size.max(1))?;
        pool.connect_pool();
        Ok(Self {
            pool,
            namespace: config.namespace.as_str().into(),
            global: Arc::new(GlobalKeys::new(&config.namespace)),
            scripts: Arc::new(Scripts::new()),
            command_timeout: timeout,
        })
    }

    /// How long one command may take before it fails.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    pub(crate) fn keys(&self, sku: &str) -> SaleKeys {
        SaleKeys::new(&self.namespace, sku)
    }

    /// Waits up to `timeout` for the first connections.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.pool.wait_for_connect()).await.is_ok_and(|r| r.is_ok())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.pool.next().ping(None).await?;
        Ok(())
    }

    /// Redis's clock, Unix ms: the one clock every gateway and sweeper
    /// compares deadlines against.
    pub async fn now_ms(&self) -> Result<i64, StoreError> {
        let time = fred::types::CustomCommand::new_static("TIME", None, false);
        let reply: Vec<String> = self.pool.next().custom(time, Vec::<String>::new()).await?;
        match reply.iter().map(|part| part.parse::<i64>()).collect::<Result<Vec<_>, _>>().as_deref() {
            Ok([secs, micros]) => Ok(secs * 1_000 + micros / 1_000),
            _ => Err(StoreError::Reply { script: "TIME", reply }),
        }
    }
}
