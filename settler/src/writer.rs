//! Writes a batch of new orders to their shards: one multi-row insert per
//! shard, idempotent on the order id, so a batch redelivered after a crash
//! or a rebalance changes nothing the second time.

use futures::future::try_join_all;
use order::event::OrderCreated;
use order::status::OrderStatus;
use sqlx::{MySql, QueryBuilder};

use crate::shards::ShardPools;

/// Inserts every order into the shard its user maps to. Shards are written
/// concurrently; the call fails if any shard fails, and the whole batch is
/// then retried (rows already written are skipped).
pub async fn write_orders(shards: &ShardPools, orders: &[&OrderCreated]) -> Result<(), sqlx::Error> {
    let mut by_shard: Vec<Vec<&OrderCreated>> = vec![Vec::new(); shards.pools.len()];
    for order in orders {
        by_shard[shards.router.shard_for_user(order.user_id)].push(*order);
    }
    let writes = by_shard.iter().enumerate().filter(|(_, rows)| !rows.is_empty()).map(|(shard, rows)| async move {
        let mut insert: QueryBuilder<MySql> = QueryBuilder::new(
            "INSERT INTO orders (order_id, user_id, sku, qty, amount_cents, status, idempotency_key, created_at, pay_by, \
             sale_generation) ",
        );
        insert.push_values(rows, |mut row, order| {
            row.push_bind(order.order_id.raw() as i64)
                .push_bind(order.user_id)
                .push_bind(&order.sku)
                .push_bind(order.qty)
                .push_bind(order.amount_cents)
                .push_bind(OrderStatus::PendingPayment.as_str())
                .push_bind(&order.idempotency_key)
                .push_bind(order.created_at.naive_utc())
                .push_bind(order.pay_by.naive_utc())
                .push_bind(order.sale_generation);
        });
        // A row that exists already (a redelivered event) is left as it is:
        // its status may have moved on since.
        insert.push(" ON DUPLICATE KEY UPDATE order_id = order_id");
        insert.build().execute(&shards.pools[shard]).await
    });
    try_join_all(writes).await?;
    Ok(())
}
