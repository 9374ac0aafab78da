//! Counting what the settler stored, across the shards.

use std::collections::BTreeMap;

use sqlx::mysql::MySqlPool;

/// Orders of `sku` by status, over all shards.
pub async fn orders_by_status(shards: &[String], sku: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for dsn in shards {
        let pool = MySqlPool::connect(dsn).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status, COUNT(*) FROM orders WHERE sku = ? GROUP BY status")
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
