//! The order rows: the one column list of a new order, the insert, the
//! lookup by id and the counts by sale that reports and checks read.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use futures::future::try_join_all;
use order::event::{CancelReason, OrderCreated, Shipment};
use order::id::OrderId;
use order::sale_stats::SaleStats;
use order::status::OrderStatus;
use serde::Serialize;
use sqlx::mysql::{MySqlDatabaseError, MySqlPool};
use sqlx::{MySql, QueryBuilder};

use crate::shards::ShardPools;

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredOrder {
    pub order_id: OrderId,
    pub user_id: u64,
    pub sku: String,
    pub qty: u32,
    pub amount_cents: i64,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    pub pay_by: DateTime<Utc>,
    /// The parcel, once shipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipment: Option<Shipment>,
}

/// One stored copy of an order of a sale, as the fault checks count them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleOrder {
    pub order_id: OrderId,
    pub user_id: u64,
    pub status: OrderStatus,
    pub qty: i64,
    /// The shard it was found on, in shard order.
    pub shard: usize,
}

/// `INSERT` of new orders in `status`, one row each, without a trailing
/// clause: the settler adds its `ON DUPLICATE KEY`, the benchmark's floor
/// runs it plain.
pub fn insert<'a>(orders: &'a [&'a OrderCreated], status: OrderStatus) -> QueryBuilder<'a, MySql> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO orders (order_id, user_id, sku, qty, amount_cents, status, idempotency_key, created_at, pay_by, \
         sale_generation, warehouse, channel) ",
    );
    insert.push_values(orders, |mut row, order| {
        row.push_bind(order.order_id.raw() as i64)
            .push_bind(order.user_id)
            .push_bind(&order.sku)
            .push_bind(order.qty)
            .push_bind(order.amount_cents)
            .push_bind(status.as_str())
            .push_bind(&order.idempotency_key)
            .push_bind(order.created_at.naive_utc())
            .push_bind(order.pay_by.naive_utc())
            .push_bind(order.sale_generation)
            .push_bind(order.warehouse.as_deref())
            .push_bind(order.channel.as_deref());
    });
    insert
}

/// Which of `rows` the shard holds already.
async fn stored_already(pool: &MySqlPool, rows: &[&OrderCreated]) -> Result<HashSet<OrderId>, sqlx::Error> {
    let mut stored = HashSet::new();
    for chunk in rows.chunks(CHUNK) {
        let mut query = QueryBuilder::<MySql>::new("SELECT order_id FROM orders WHERE order_id IN (");
        let mut ids = query.separated(", ");
        for order in chunk {
            ids.push_bind(order.order_id.raw() as i64);
        }
        query.push(")");
        let found: Vec<(i64,)> = query.build_query_as().fetch_all(pool).await?;
        stored.extend(found.into_iter().map(|(id,)| OrderId::from_raw(id as u64)));
    }
    Ok(stored)
}

/// Most rows one INSERT statement takes.
const CHUNK: usize = 512;

/// Splits `rows` into statements: full chunks, then the rest as powers of
/// two. Each statement text is prepared once per connection, so a batch of
/// any size reuses a handful of texts instead of making the server parse a
/// new one for every batch size.
fn chunks<'a, 'b>(rows: &'b [&'a OrderCreated]) -> Vec<&'b [&'a OrderCreated]> {
    let mut rest = rows;
    chunk_sizes(rows.len())
        .map(|size| {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            chunk
        })
        .collect()
}

fn chunk_sizes(rows: usize) -> impl Iterator<Item = usize> {
    let rest = rows % CHUNK;
    let halves = (0..CHUNK.trailing_zeros()).rev().map(|bit| 1 << bit).filter(move |size| rest & size != 0);
    std::iter::repeat_n(CHUNK, rows / CHUNK).chain(halves)
}

/// Inserts `rows` in one statement (atomic on its own), or, if one of them
/// is stored already (a redelivery), again with an upsert that leaves the
/// stored ones alone. The ids of the rows stored now.
async fn insert_chunk(pool: &MySqlPool, rows: &[&OrderCreated]) -> Result<Vec<OrderId>, sqlx::Error> {
    let ids = || rows.iter().map(|order| order.order_id);
    match insert(rows, OrderStatus::PendingPayment).build().execute(pool).await {
        Ok(_) => Ok(ids().collect()),
        Err(err) if is_duplicate(&err) => {
            let stored = stored_already(pool, rows).await?;
            let mut upsert = insert(rows, OrderStatus::PendingPayment);
            upsert.push(" ON DUPLICATE KEY UPDATE order_id = order_id");
            upsert.build().execute(pool).await?;
            Ok(ids().filter(|id| !stored.contains(id)).collect())
        }
        Err(err) => Err(err),
    }
}

/// The MySQL / MariaDB error number of a refusal by the server, if `err` is one.
pub fn error_number(err: &sqlx::Error) -> Option<u16> {
    Some(err.as_database_error()?.try_downcast_ref::<MySqlDatabaseError>()?.number())
}

/// MySQL's "duplicate entry" (ER_DUP_ENTRY).
pub(crate) fn is_duplicate(err: &sqlx::Error) -> bool {
    error_number(err) == Some(1062)
}

/// The columns of a [`StoredOrder`], as [`OrderRow`] reads them.
pub(crate) const COLUMNS: &str =
    "order_id, user_id, sku, qty, amount_cents, status, created_at, pay_by, carrier, tracking_no";

pub(crate) type OrderRow =
    (i64, u64, String, u32, i64, String, NaiveDateTime, NaiveDateTime, Option<String>, Option<String>);

pub(crate) fn stored(row: OrderRow) -> Result<StoredOrder, sqlx::Error> {
    let (order_id, user_id, sku, qty, amount_cents, status_name, created_at, pay_by, carrier, tracking_no) = row;
    Ok(StoredOrder {
        order_id: OrderId::from_raw(order_id as u64),
        user_id,
        sku,
        qty,
        amount_cents,
        status: status(&status_name)?,
        created_at: created_at.and_utc(),
        pay_by: pay_by.and_utc(),
        shipment: carrier.zip(tracking_no).map(|(carrier, tracking_no)| Shipment { carrier, tracking_no }),
    })
}

/// A status read back from a row; a name this build does not know is a decode error.
pub(crate) fn status(name: &str) -> Result<OrderStatus, sqlx::Error> {
    OrderStatus::parse(name).ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {name:?}").into()))
}

impl ShardPools {
    /// The status of the order now, for a caller that must act before the
    /// move (the warehouse's interception); the move itself checks again.
    pub async fn status_of(&self, order_id: OrderId, owner: Option<u64>) -> Result<Option<OrderStatus>, sqlx::Error> {
        let row: Option<(u64, String)> = sqlx::query_as("SELECT user_id, status FROM orders WHERE order_id = ?")
            .bind(order_id.raw() as i64)
            .fetch_optional(self.for_order(order_id))
            .await?;
        match row {
            Some((user_id, name)) if owner.is_none_or(|owner| owner == user_id) => Ok(Some(status(&name)?)),
            _ => Ok(None),
        }
    }

    /// Shipped orders of shard `shard` not confirmed since before `cutoff`,
    /// at most `limit`: the sweeper completes them.
    pub async fn shipped_before(
        &self,
        shard: usize,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OrderId>, sqlx::Error> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT order_id FROM orders WHERE status = 'SHIPPED' AND shipped_at < ? LIMIT ?")
                .bind(cutoff.naive_utc())
                .bind(limit)
                .fetch_all(&self.pools[shard])
                .await?;
        Ok(rows.into_iter().map(|(id,)| OrderId::from_raw(id as u64)).collect())
    }

    /// Inserts new orders pending payment, each into its user's shard, in
    /// statements of at most [`CHUNK`] rows, all at once (each shard's pool
    /// bounds how many run on it together): a drain keeps every shard busy
    /// instead of waiting for one transaction per shard. Idempotent on the
    /// order id: a row that exists already (a redelivered event) is left as
    /// it is, since its status may have moved on. Fails if any statement
    /// fails; rows already written are skipped on the retry. The ids of the
    /// orders this call stored (not those it found stored already).
    pub async fn insert_new(&self, orders: &[&OrderCreated]) -> Result<Vec<OrderId>, sqlx::Error> {
        let mut by_shard: Vec<Vec<&OrderCreated>> = vec![Vec::new(); self.pools.len()];
        for order in orders {
            by_shard[self.router.shard_for_user(order.user_id)].push(*order);
        }
        let writes = by_shard
            .iter()
            .zip(&self.pools)
            .flat_map(|(rows, pool)| chunks(rows).into_iter().map(move |chunk| insert_chunk(pool, chunk)));
        let stored: Vec<Vec<OrderId>> = try_join_all(writes).await?;
        Ok(stored.concat())
    }

    /// The order, from the shard its id names.
    pub async fn get(&self, order_id: OrderId) -> Result<Option<StoredOrder>, sqlx::Error> {
        let row: Option<OrderRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE order_id = ?"))
            .bind(order_id.raw() as i64)
            .fetch_optional(self.for_order(order_id))
            .await?;
        row.map(stored).transpose()
    }

    /// Orders of `sku` by status, over all shards.
    pub async fn count_by_status(&self, sku: &str) -> Result<BTreeMap<OrderStatus, u64>, sqlx::Error> {
        let mut counts = BTreeMap::new();
        for pool in &self.pools {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT status, COUNT(*) FROM orders WHERE sku = ? GROUP BY status")
                    .bind(sku)
                    .fetch_all(pool)
                    .await?;
            for (name, count) in rows {
                *counts.entry(status(&name)?).or_default() += count as u64;
            }
        }
        Ok(counts)
    }

    /// A storefront channel's orders by status, over all shards: how many,
    /// and what they come to in cents.
    pub async fn channel_figures(&self, channel: &str) -> Result<BTreeMap<OrderStatus, (u64, i64)>, sqlx::Error> {
        let mut figures: BTreeMap<OrderStatus, (u64, i64)> = BTreeMap::new();
        for pool in &self.pools {
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*), CAST(COALESCE(SUM(amount_cents), 0) AS SIGNED) FROM orders \
                 WHERE channel = ? GROUP BY status",
            )
            .bind(channel)
            .fetch_all(pool)
            .await?;
            for (name, count, cents) in rows {
                let figure = figures.entry(status(&name)?).or_default();
                figure.0 += count as u64;
                figure.1 += cents;
            }
        }
        Ok(figures)
    }

    /// Units of one sale of `sku` by status and warehouse (regional stock;
    /// `None` for a sale in one pool), over all shards: its orders carry its
    /// generation (`loaded_ms`), or, from before generations were recorded,
    /// were created since it was loaded.
    pub async fn units_of_sale(
        &self,
        sku: &str,
        generation: i64,
    ) -> Result<BTreeMap<(OrderStatus, Option<String>), i64>, sqlx::Error> {
        let loaded_at = DateTime::from_timestamp_millis(generation).unwrap_or_default().naive_utc();
        let mut units = BTreeMap::new();
        for pool in &self.pools {
            let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
                "SELECT status, warehouse, CAST(SUM(qty) AS SIGNED) FROM orders WHERE sku = ? \
                 AND (sale_generation = ? OR (sale_generation = 0 AND created_at >= ?)) GROUP BY status, warehouse",
            )
            .bind(sku)
            .bind(generation)
            .bind(loaded_at)
            .fetch_all(pool)
            .await?;
            for (name, warehouse, qty) in rows {
                *units.entry((status(&name)?, warehouse)).or_default() += qty;
            }
        }
        Ok(units)
    }

    /// (id, units) of the orders of one sale of `sku` cancelled after
    /// payment, over all shards (the sale as in [`ShardPools::units_of_sale`]).
    pub async fn cancelled_after_payment(
        &self,
        sku: &str,
        generation: i64,
    ) -> Result<Vec<(OrderId, u32)>, sqlx::Error> {
        let mut found = Vec::new();
        for pool in &self.pools {
            let rows: Vec<(i64, u32)> = sqlx::query_as(
                "SELECT order_id, qty FROM orders WHERE sku = ? AND sale_generation = ? \
                 AND status = 'CANCELLED' AND cancel_reason = 'after_payment'",
            )
            .bind(sku)
            .bind(generation)
            .fetch_all(pool)
            .await?;
            found.extend(rows.into_iter().map(|(id, qty)| (OrderId::from_raw(id as u64), qty)));
        }
        Ok(found)
    }

    /// Every stored copy of every order of `sku`, with the shard it is on.
    pub async fn orders_of_sku(&self, sku: &str) -> Result<Vec<SaleOrder>, sqlx::Error> {
        let mut found = Vec::new();
        for (shard, pool) in self.pools.iter().enumerate() {
            let rows: Vec<(i64, u64, String, i64)> =
                sqlx::query_as("SELECT order_id, user_id, status, CAST(qty AS SIGNED) FROM orders WHERE sku = ?")
                    .bind(sku)
                    .fetch_all(pool)
                    .await?;
            for (order_id, user_id, name, qty) in rows {
                let order_id = OrderId::from_raw(order_id as u64);
                found.push(SaleOrder { order_id, user_id, status: status(&name)?, qty, shard });
            }
        }
        Ok(found)
    }

    /// `sku`'s sale figures recomputed from every shard: orders stored,
    /// paid (with a payment recorded), cancelled by reason, refunds the
    /// channel confirmed.
    pub async fn sale_stats(&self, sku: &str) -> Result<SaleStats, sqlx::Error> {
        let mut stats = SaleStats::default();
        for pool in &self.pools {
            let (accepted, accepted_cents, paid, paid_cents): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(amount_cents), 0) AS SIGNED), COUNT(paid_at), \
                 CAST(COALESCE(SUM(IF(paid_at IS NULL, 0, amount_cents)), 0) AS SIGNED) FROM orders WHERE sku = ?",
            )
            .bind(sku)
            .fetch_one(pool)
            .await?;
            let cancelled: Vec<(Option<String>, i64)> = sqlx::query_as(
                "SELECT cancel_reason, COUNT(*) FROM orders WHERE sku = ? AND status = 'CANCELLED' GROUP BY cancel_reason",
            )
            .bind(sku)
            .fetch_all(pool)
            .await?;
            let (refunded, refunded_cents): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(r.amount_cents), 0) AS SIGNED) FROM refunds r \
                 JOIN refund_jobs j ON j.refund_id = r.refund_id WHERE r.sku = ? AND j.state = 'DONE'",
            )
            .bind(sku)
            .fetch_one(pool)
            .await?;
            let mut shard = SaleStats {
                accepted,
                accepted_cents,
                paid,
                paid_cents,
                refunded,
                refunded_cents,
                ..SaleStats::default()
            };
            for (reason, count) in cancelled {
                let reason = reason.as_deref().and_then(CancelReason::parse).ok_or_else(|| {
                    sqlx::Error::Decode(format!("cancelled order of {sku} with cancel reason {reason:?}").into())
                })?;
                *shard.cancelled(reason) += count;
            }
            stats.add(&shard);
        }
        Ok(stats)
    }

    /// Orders on all shards.
    pub async fn count_all(&self) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        for pool in &self.pools {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders").fetch_one(pool).await?;
            total += n as u64;
        }
        Ok(total)
    }
}

/// Runs `insert` of `orders` as it is, in chunks of `chunk` rows (the
/// benchmark's floor: what the database takes without the settler).
pub async fn insert_plain(pool: &MySqlPool, orders: &[&OrderCreated], chunk: usize) -> Result<(), sqlx::Error> {
    for rows in orders.chunks(chunk) {
        insert(rows, OrderStatus::PendingPayment).build().execute(pool).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_into_few_statement_sizes_that_add_up() {
        let sizes: Vec<usize> = chunk_sizes(1_300).collect();
        assert_eq!(sizes, [512, 512, 256, 16, 4]);
        for rows in 0..2_000 {
            let sizes: Vec<usize> = chunk_sizes(rows).collect();
            assert_eq!(sizes.iter().sum::<usize>(), rows);
            assert!(sizes.iter().all(|size| size.is_power_of_two() && *size <= CHUNK), "{sizes:?}");
        }
    }
}
