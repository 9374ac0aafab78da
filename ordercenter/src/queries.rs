//! Order lists: a buyer's own orders on their shard, and the merchant's
//! search over every shard at once (scatter-gather), both newest first and
//! paged by the last order id seen. Each shard's part reads its replica
//! while it keeps up, else (or if the replica fails or is slow) its primary.

use std::time::Duration;

use futures::future::join_all;
use order::id::OrderId;
use orderdb::queries::{self, OrderFilter};
use orderdb::StoredOrder;

use crate::center::OrderCenter;

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub orders: Vec<StoredOrder>,
    /// The cursor of the next page; `None` on the last one.
    pub next: Option<OrderId>,
    /// The shards left out because they did not answer in time, or failed.
    pub missing_shards: Vec<usize>,
}

/// A page of the buyer's orders: one shard, one range scan, within
/// `queries.shard_timeout_ms`.
pub async fn of_buyer(
    center: &OrderCenter,
    filter: OrderFilter,
    before: Option<OrderId>,
    limit: u32,
) -> Result<Page, sqlx::Error> {
    let user_id = filter.user_id.expect("a buyer's list names the buyer");
    let shard = center.services.reads.router.shard_for_user(user_id);
    let timeout = Duration::from_millis(center.settings.queries.shard_timeout_ms);
    let orders = tokio::time::timeout(timeout, shard_page(center, shard, &filter, before, limit))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))?;
    let (orders, next) = queries::merge(vec![orders], limit);
    Ok(Page { orders, next, missing_shards: Vec::new() })
}

/// A page of the search over every shard, each given `queries.shard_timeout_ms`.
pub async fn search(center: &OrderCenter, filter: OrderFilter, before: Option<OrderId>, limit: u32) -> Page {
    let timeout = Duration::from_millis(center.settings.queries.shard_timeout_ms);
    let parts = join_all((0..center.services.reads.pools.len()).map(|shard| {
        let filter = &filter;
        async move { tokio::time::timeout(timeout, shard_page(center, shard, filter, before, limit)).await }
    }))
    .await;
    let mut pages = Vec::with_capacity(parts.len());
    let mut missing_shards = Vec::new();
    for (shard, part) in parts.into_iter().enumerate() {
        match part {
            Ok(Ok(orders)) => pages.push(orders),
            Ok(Err(err)) => {
                tracing::warn!(shard, error = %err, "search: shard failed; answer is partial");
                missing_shards.push(shard);
            }
            Err(_) => {
                metrics::counter!("gateway_search_shard_timeouts_total").increment(1);
                tracing::warn!(shard, ?timeout, "search: shard too slow; answer is partial");
                missing_shards.push(shard);
            }
        }
    }
    let (orders, next) = queries::merge(pages, limit);
    Page { orders, next, missing_shards }
}

/// One shard's page: its replica if it keeps up, else (or if the replica
/// fails, or takes half the shard's time) its primary.
async fn shard_page(
    center: &OrderCenter,
    shard: usize,
    filter: &OrderFilter,
    before: Option<OrderId>,
    limit: u32,
) -> Result<Vec<StoredOrder>, sqlx::Error> {
    if let Some(replica) = center.services.replicas.keeping_up(shard) {
        let patience = Duration::from_millis(center.settings.queries.shard_timeout_ms / 2);
        let read = tokio::time::timeout(patience, queries::page(replica, filter, before, limit));
        match read.await.unwrap_or(Err(sqlx::Error::PoolTimedOut)) {
            Ok(orders) => {
                metrics::counter!("gateway_list_reads_total", "source" => "replica").increment(1);
                return Ok(orders);
            }
            Err(err) => {
                tracing::warn!(shard, error = %err, "read replica failed a query; reading the primary");
                center.services.replicas.failed(shard);
            }
        }
    }
    let orders = queries::page(&center.services.reads.pools[shard], filter, before, limit).await?;
    metrics::counter!("gateway_list_reads_total", "source" => "primary").increment(1);
    Ok(orders)
}
