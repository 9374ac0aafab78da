//! Counting what the settler stored, across the shards.

use sqlx::mysql::MySqlPool;

/// Orders of `sku` over all shards.
pub async fn count_orders(shards: &[String], sku: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    for dsn in shards {
        let pool = MySqlPool::connect(dsn).await?;
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM orders WHERE sku = ?").bind(sku).fetch_one(&pool).await?;
        pool.close().await;
        total += count as u64;
    }
    Ok(total)
}
