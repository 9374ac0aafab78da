//! Order lists, newest first, paged by a cursor on the order id (ids grow
//! with time, so "below the last id seen" is the next page, with no OFFSET):
//! a buyer's orders on their shard, and one shard's part of the merchant's
//! search with the merge of the parts.

use chrono::{DateTime, Utc};
use order::id::OrderId;
use order::status::OrderStatus;
use sqlx::mysql::MySqlPool;
use sqlx::{MySql, QueryBuilder};

use crate::orders::{stored, OrderRow, COLUMNS};
use crate::StoredOrder;

/// What a list keeps; every field left `None` keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub user_id: Option<u64>,
    pub sku: Option<String>,
    pub status: Option<OrderStatus>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    pub min_amount_cents: Option<i64>,
    pub max_amount_cents: Option<i64>,
}

/// Up to `limit` orders of one shard that `filter` keeps, with ids below
/// `before`, newest first. With a user it is one range scan of
/// `idx_user_order` (`idx_user_status_order` with a status); with a SKU and
/// a status, of `idx_sku_status`. Other searches read newest first.
pub async fn page(
    pool: &MySqlPool,
    filter: &OrderFilter,
    before: Option<OrderId>,
    limit: u32,
) -> Result<Vec<StoredOrder>, sqlx::Error> {
    let mut query = QueryBuilder::<MySql>::new(format!("SELECT {COLUMNS} FROM orders WHERE TRUE"));
    if let Some(user_id) = filter.user_id {
        query.push(" AND user_id = ").push_bind(user_id);
    }
    if let Some(sku) = &filter.sku {
        query.push(" AND sku = ").push_bind(sku.clone());
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(from) = filter.created_from {
        query.push(" AND created_at >= ").push_bind(from.naive_utc());
    }
    if let Some(before) = filter.created_before {
        query.push(" AND created_at < ").push_bind(before.naive_utc());
    }
    if let Some(min) = filter.min_amount_cents {
        query.push(" AND amount_cents >= ").push_bind(min);
    }
    if let Some(max) = filter.max_amount_cents {
        query.push(" AND amount_cents <= ").push_bind(max);
    }
    if let Some(before) = before {
        query.push(" AND order_id < ").push_bind(before.raw() as i64);
    }
    query.push(" ORDER BY order_id DESC LIMIT ").push_bind(limit);
    let rows: Vec<OrderRow> = query.build_query_as().fetch_all(pool).await?;
    rows.into_iter().map(stored).collect()
}

/// One page out of every shard's page (each of up to `limit` orders below
/// the same cursor): the `limit` newest, and the cursor of the next page,
/// the last id on this one, if it is full.
pub fn merge(parts: Vec<Vec<StoredOrder>>, limit: u32) -> (Vec<StoredOrder>, Option<OrderId>) {
    let mut orders: Vec<StoredOrder> = parts.into_iter().flatten().collect();
    orders.sort_unstable_by_key(|order| std::cmp::Reverse(order.order_id));
    orders.truncate(limit as usize);
    let next = (orders.len() == limit as usize).then(|| orders.last().map(|order| order.order_id)).flatten();
    (orders, next)
}
