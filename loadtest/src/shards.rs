//! Counting what the settler stored, across the shards.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::mysql::MySqlPool;

/// Orders of `sku` by status, over all shards.
pub async fn orders_by_status(shards: &[String], sku: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for dsn in shards {
        let pool = MySqlPool::connect(dsn).await?;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM orders WHERE sku = ? GROUP BY status")
                .bind(sku)
                .fetch_all(&pool)
                .await?;
        pool.close().await;
        for (status, count) in rows {
            *counts.entry(status).or_default() += count as u64;
        }
    }
    Ok(counts)
}

/// Polls the orders of `sku` by status until `done` says so or `timeout`
/// passes (the settler works behind the gateway); the last count.
pub async fn wait_for_orders(
    shards: &[String],
    sku: &str,
    timeout: Duration,
    done: impl Fn(&BTreeMap<String, u64>) -> bool,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let deadline = Instant::now() + timeout;
    loop {
        let stored = orders_by_status(shards, sku).await?;
        if done(&stored) || Instant::now() > deadline {
            return Ok(stored);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `stored` has at least the `expected` orders in each status.
pub fn at_least(stored: &BTreeMap<String, u64>, expected: &[(&str, u64)]) -> bool {
    expected.iter().all(|(status, n)| stored.get(*status).copied().unwrap_or(0) >= *n)
}
