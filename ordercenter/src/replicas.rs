//! Read replicas: where lists and searches read, shard by shard, while the
//! replica keeps up. A watcher reads each replica's lag (`SHOW SLAVE
//! STATUS`) every `queries.replica_check_ms`; a replica not replicating,
//! further behind than `queries.replica_max_lag_secs`, or failing a query
//! is passed over for its primary until a later check finds it keeping up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::Row;

struct Replica {
    pool: MySqlPool,
    keeping_up: AtomicBool,
}

/// One entry per shard, `None` for a shard without a replica.
pub struct Replicas(Vec<Option<Replica>>);

impl Replicas {
    /// Lazy pools: a replica that is down costs nothing until it is checked.
    pub fn connect_lazy(dsns: &[String], size: u32, acquire_timeout: Duration) -> Result<Self, sqlx::Error> {
        let replicas = dsns
            .iter()
            .map(|dsn| {
                (!dsn.is_empty())
                    .then(|| {
                        let pool = MySqlPoolOptions::new()
                            .max_connections(size)
                            .acquire_timeout(acquire_timeout)
                            .connect_lazy(dsn)?;
                        // Not read until a check found it keeping up.
                        Ok(Replica { pool, keeping_up: AtomicBool::new(false) })
                    })
                    .transpose()
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Self(replicas))
    }

    /// The shard's replica, if it has one that keeps up.
    pub fn keeping_up(&self, shard: usize) -> Option<&MySqlPool> {
        let replica = self.0.get(shard)?.as_ref()?;
        replica.keeping_up.load(Ordering::Relaxed).then_some(&replica.pool)
    }

    /// A query on the shard's replica failed: its primary answers until
    /// the next check.
    pub fn failed(&self, shard: usize) {
        if let Some(Some(replica)) = self.0.get(shard) {
            replica.keeping_up.store(false, Ordering::Relaxed);
        }
    }

    /// Checks every replica each `every` until the gateway stops; one lagging
    /// more than `max_lag` is not read until it catches up.
    pub async fn watch(&self, max_lag: Duration, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            self.check(max_lag, every).await;
        }
    }

    /// Reads every replica's lag at once; one that does not answer within
    /// `timeout` is not keeping up.
    async fn check(&self, max_lag: Duration, timeout: Duration) {
        let replicas = self.0.iter().enumerate().filter_map(|(shard, replica)| Some((shard, replica.as_ref()?)));
        join_all(replicas.map(|(shard, replica)| async move {
            let lag = tokio::time::timeout(timeout, lag(&replica.pool)).await.unwrap_or(Err(sqlx::Error::PoolTimedOut));
            let keeping_up = matches!(lag, Ok(Some(lag)) if lag <= max_lag);
            if keeping_up != replica.keeping_up.swap(keeping_up, Ordering::Relaxed) {
                tracing::warn!(shard, ?lag, keeping_up, "read replica changed state");
            }
            let seconds = match lag {
                Ok(Some(lag)) => lag.as_secs_f64(),
                _ => -1.0,
            };
            metrics::gauge!("gateway_replica_lag_seconds", "shard" => shard.to_string()).set(seconds);
        }))
        .await;
    }
}

/// How far behind its primary the server is; `None` if it is not
/// replicating (no replication set up, or a thread stopped).
async fn lag(pool: &MySqlPool) -> Result<Option<Duration>, sqlx::Error> {
    let Some(status) = sqlx::query("SHOW SLAVE STATUS").fetch_optional(pool).await? else { return Ok(None) };
    let running = |column| status.try_get::<String, _>(column).is_ok_and(|state| state == "Yes");
    if !running("Slave_IO_Running") || !running("Slave_SQL_Running") {
        return Ok(None);
    }
    let seconds: Option<u64> = status.try_get("Seconds_Behind_Master")?;
    Ok(seconds.map(Duration::from_secs))
}
