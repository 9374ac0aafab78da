//! Reads persisted orders from the MySQL shard an order id names. Pools
//! connect lazily, so the gateway starts while a shard is down.

use chrono::{DateTime, NaiveDateTime, Utc};
use order::id::OrderId;
use order::shard::ShardRouter;
use serde::Serialize;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

/// An order as the settler stored it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredOrder {
    pub order_id: OrderId,
    pub user_id: u64,
    pub sku: String,
    pub qty: u32,
    pub amount_cents: i64,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub pay_by: DateTime<Utc>,
}

pub struct OrderStore {
    router: ShardRouter,
    shards: Vec<MySqlPool>,
}

impl OrderStore {
    pub fn connect_lazy(dsns: &[String]) -> Result<Self, sqlx::Error> {
        let router = ShardRouter::new(dsns.len())
            .ok_or_else(|| sqlx::Error::Configuration("between 1 and 1024 shards".into()))?;
        let shards = dsns
            .iter()
            .map(|dsn| {
                MySqlPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(std::time::Duration::from_secs(2))
                    .connect_lazy(dsn)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { router, shards })
    }

    pub async fn get(&self, order_id: OrderId) -> Result<Option<StoredOrder>, sqlx::Error> {
        let pool = &self.shards[self.router.shard_of(order_id.bucket())];
        let row: Option<(u64, String, u32, i64, String, NaiveDateTime, NaiveDateTime)> = sqlx::query_as(
            "SELECT user_id, sku, qty, amount_cents, status, created_at, pay_by FROM orders WHERE order_id = ?",
        )
        .bind(order_id.raw() as i64)
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|(user_id, sku, qty, amount_cents, status, created_at, pay_by)| StoredOrder {
            order_id,
            user_id,
            sku,
            qty,
            amount_cents,
            status,
            created_at: created_at.and_utc(),
            pay_by: pay_by.and_utc(),
        }))
    }
}
