//! Counting what the settler stored, across the shards.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use order::status::OrderStatus;
use orderdb::ShardPools;

/// Orders of one SKU by status.
pub type StatusCounts = BTreeMap<OrderStatus, u64>;

/// Polls the orders of `sku` by status until `done` says so or `timeout`
/// passes (the settler works behind the gateway); the last count.
pub async fn wait_for_orders(
    shards: &[String],
    sku: &str,
    timeout: Duration,
    done: impl Fn(&StatusCounts) -> bool,
) -> anyhow::Result<StatusCounts> {
    let pools = ShardPools::connect_lazy(shards, 1, Duration::from_secs(5))?;
    let deadline = Instant::now() + timeout;
    let stored = loop {
        let stored = pools.count_by_status(sku).await?;
        if done(&stored) || Instant::now() > deadline {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    pools.close().await;
    Ok(stored)
}

/// `PAID 700, CANCELLED 300` for a report line.
pub fn describe(stored: &StatusCounts) -> String {
    stored.iter().map(|(status, n)| format!("{status} {n}")).collect::<Vec<_>>().join(", ")
}

/// Whether `stored` has at least the `expected` orders in each status.
pub fn at_least(stored: &StatusCounts, expected: &[(OrderStatus, u64)]) -> bool {
    expected.iter().all(|(status, n)| stored.get(status).copied().unwrap_or(0) >= *n)
}

/// Whether `stored` has exactly the `expected` orders in each status named.
pub fn exactly(stored: &StatusCounts, expected: &[(OrderStatus, u64)]) -> bool {
    expected.iter().all(|(status, n)| stored.get(status).copied().unwrap_or(0) == *n)
}
