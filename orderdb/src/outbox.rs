//! Each shard's outbox: the events of moves made in MySQL, written in the
//! move's transaction and sent to Kafka by the settler's relay, which drops
//! them once the broker acknowledged them.

use chrono::NaiveDateTime;
use order::event::OrderEvent;
use sqlx::{MySql, Transaction};

use crate::shards::ShardPools;

/// An event waiting in a shard's outbox.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    pub id: i64,
    pub order_id: i64,
    pub user_id: u64,
    pub payload: Vec<u8>,
}

impl ShardPools {
    /// The oldest `limit` events in shard `shard`'s outbox.
    pub async fn outbox(&self, shard: usize, limit: u32) -> Result<Vec<OutboxEntry>, sqlx::Error> {
        let rows: Vec<(i64, i64, u64, Vec<u8>)> =
            sqlx::query_as("SELECT id, order_id, user_id, payload FROM order_outbox ORDER BY id LIMIT ?")
                .bind(limit)
                .fetch_all(&self.pools[shard])
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, order_id, user_id, payload)| OutboxEntry { id, order_id, user_id, payload })
            .collect())
    }

    /// Drops outbox entries whose events the broker acknowledged.
    pub async fn outbox_sent(&self, shard: usize, ids: &[i64]) -> Result<(), sqlx::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut delete = sqlx::QueryBuilder::new("DELETE FROM order_outbox WHERE id IN (");
        let mut list = delete.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        delete.push(")");
        delete.build().execute(&self.pools[shard]).await?;
        Ok(())
    }
}

/// Puts `event` of order `order_id` in the outbox, inside the move's `tx`.
pub(crate) async fn put(
    tx: &mut Transaction<'_, MySql>,
    order_id: i64,
    user_id: u64,
    event: &OrderEvent,
    at: NaiveDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO order_outbox (order_id, user_id, payload, created_at) VALUES (?, ?, ?, ?)")
        .bind(order_id)
        .bind(user_id)
        .bind(event.encode())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
