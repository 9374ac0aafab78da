//! The hot-order cache: each order's view as `GET /v1/orders/{id}` answers
//! it, under `order:{o<id>}` with a TTL. Written when an order is accepted
//! (before its 202), changed in place by the moves that reach MySQL later
//! through Kafka (payment, a pending order's cancellation), deleted after
//! every move MySQL makes first; a miss is read from the shard and cached.
//! The TTL bounds both its size (orders accepted or read within it) and
//! how long an entry a failed write left behind can be read.

use std::time::Duration;

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use order::id::OrderId;

use crate::error::StoreError;
use crate::store::SaleStore;

impl SaleStore {
    /// Caches a view unless the order has one already (a move may have
    /// changed it meanwhile).
    pub async fn cache_new_order(&self, order_id: OrderId, view: &str, ttl: Duration) -> Result<(), StoreError> {
        let expire = Expiration::PX(ttl.as_millis() as i64);
        let _: Option<String> = self
            .pool
            .next()
            .set(self.global.cached_order(order_id), view, Some(expire), Some(SetOptions::NX), false)
            .await?;
        Ok(())
    }

    /// Caches a view read from the shard (a miss), for `ttl`.
    pub async fn cache_order(&self, order_id: OrderId, view: &str, ttl: Duration) -> Result<(), StoreError> {
        let expire = Expiration::PX(ttl.as_millis() as i64);
        let _: Option<String> =
            self.pool.next().set(self.global.cached_order(order_id), view, Some(expire), None, false).await?;
        Ok(())
    }

    /// Replaces a cached view, keeping its TTL; nothing if none is cached.
    pub async fn recache_order(&self, order_id: OrderId, view: &str) -> Result<(), StoreError> {
        let _: Option<String> = self
            .pool
            .next()
            .set(self.global.cached_order(order_id), view, Some(Expiration::KEEPTTL), Some(SetOptions::XX), false)
            .await?;
        Ok(())
    }

    pub async fn cached_order(&self, order_id: OrderId) -> Result<Option<String>, StoreError> {
        Ok(self.pool.next().get(self.global.cached_order(order_id)).await?)
    }

    /// Drops the cached views of `orders` (one `DEL` each, pipelined: in a
    /// cluster each lives in its own slot).
    pub async fn forget_orders(&self, orders: &[OrderId]) -> Result<(), StoreError> {
        if orders.is_empty() {
            return Ok(());
        }
        let pipeline = self.pool.next().pipeline();
        for order_id in orders {
            let _: () = pipeline.del(self.global.cached_order(*order_id)).await?;
        }
        let _: Vec<i64> = pipeline.all().await?;
        Ok(())
    }
}
