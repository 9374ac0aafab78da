//! The hot-order cache: each order's view as `GET /v1/orders/{id}` answers
//! it, under `order:{o<id>}` with a TTL; and beside it, under
//! `order_move:{o<id>}`, the status a pending order moved to in Redis
//! (paid, cancelled) while that move travels to MySQL through Kafka. A
//! reader lays the move over a view that still says `PENDING_PAYMENT`, and
//! only over such a view, so a move recorded late or kept too long never
//! takes an order back. The view's TTL bounds the cache's size (orders
//! accepted or read within it) and how long an entry a failed delete left
//! behind can be read.

use std::time::Duration;

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use order::id::OrderId;

use crate::error::StoreError;
use crate::redis::Redis;

/// How long a recorded move waits for the settler to apply it and delete it.
const MOVE_TTL: Duration = Duration::from_secs(86_400);

/// The hot-order cache and the moves recorded beside it.
#[derive(Clone)]
pub struct OrderCache {
    redis: Redis,
}

impl OrderCache {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Caches a view unless the order has one already.
    pub async fn cache_new_order(&self, order_id: OrderId, view: &str, ttl: Duration) -> Result<(), StoreError> {
        self.set_view(order_id, view, ttl, Some(SetOptions::NX)).await
    }

    /// Caches a view read from the shard (a miss), for `ttl`.
    pub async fn cache_order(&self, order_id: OrderId, view: &str, ttl: Duration) -> Result<(), StoreError> {
        self.set_view(order_id, view, ttl, None).await
    }

    async fn set_view(
        &self,
        order_id: OrderId,
        view: &str,
        ttl: Duration,
        options: Option<SetOptions>,
    ) -> Result<(), StoreError> {
        let expire = Expiration::PX(ttl.as_millis() as i64);
        let _: Option<String> = self
            .redis
            .pool
            .next()
            .set(self.redis.global.cached_order(order_id), view, Some(expire), options, false)
            .await?;
        Ok(())
    }

    /// Records the status a pending order moved to in Redis, before its
    /// event is sent (so the settler's delete after applying it comes after).
    pub async fn record_order_move(&self, order_id: OrderId, status: &str) -> Result<(), StoreError> {
        let expire = Expiration::PX(MOVE_TTL.as_millis() as i64);
        let _: Option<String> = self
            .redis
            .pool
            .next()
            .set(self.redis.global.order_move(order_id), status, Some(expire), None, false)
            .await?;
        Ok(())
    }

    /// The cached view and the recorded move of an order (one `MGET`: same slot).
    pub async fn cached_order(&self, order_id: OrderId) -> Result<(Option<String>, Option<String>), StoreError> {
        let keys = vec![self.redis.global.cached_order(order_id), self.redis.global.order_move(order_id)];
        let mut values: Vec<Option<String>> = self.redis.pool.next().mget(keys).await?;
        let moved = values.pop().flatten();
        Ok((values.pop().flatten(), moved))
    }

    /// Drops the cached views and recorded moves of `orders`, once MySQL
    /// has their moves (one `DEL` of an order's two keys each, pipelined:
    /// in a cluster each order lives in its own slot).
    pub async fn forget_orders(&self, orders: &[OrderId]) -> Result<(), StoreError> {
        if orders.is_empty() {
            return Ok(());
        }
        let pipeline = self.redis.pool.next().pipeline();
        for order_id in orders {
            let keys = vec![self.redis.global.cached_order(*order_id), self.redis.global.order_move(*order_id)];
            let _: () = pipeline.del(keys).await?;
        }
        let _: Vec<i64> = pipeline.all().await?;
        Ok(())
    }
}
