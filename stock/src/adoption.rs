//! An order the database fallback took while Redis could not be reached,
//! handed to Redis (`adopt.lua`): from then on it lives there like an order
//! `reserve.lua` placed (see `order::fallback`).

use order::fallback::FallbackOrder;
use order::id::OrderId;

use crate::error::StoreError;
use crate::store::SaleStore;

/// What `adopt.lua` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// Redis holds the order and its units (now, or since an earlier call).
    Adopted,
    /// Its idempotency key placed this other order in Redis, acknowledged:
    /// the database's order is to be cancelled (decided once, for good).
    Duplicate { first: Option<OrderId> },
    /// Its key placed another order in Redis that is not acknowledged yet:
    /// ask again once that one is settled.
    Wait,
    /// The sale was replaced since the order was taken.
    OtherSale,
    /// Redis holds no sale of its SKU.
    UnknownSku,
    /// An order of Redis has its id.
    IdTaken,
}

impl SaleStore {
    /// Hands `order` to Redis, idempotent by order id. An order not yet
    /// accepted gets a confirm deadline `confirm_ms` from now.
    pub async fn adopt(
        &self,
        order: &FallbackOrder,
        idempotency_ttl_secs: u64,
        confirm_ms: u64,
    ) -> Result<Adopted, StoreError> {
        let args = vec![
            order.order_id.to_string(),
            order.user_id.to_string(),
            order.qty.to_string(),
            order.amount_cents.to_string(),
            order.created_ms.to_string(),
            order.pay_by_ms.to_string(),
            order.sale_generation.to_string(),
            order.idempotency_key.clone(),
            idempotency_ttl_secs.to_string(),
            if order.accepted { "1" } else { "0" }.to_owned(),
            confirm_ms.to_string(),
        ];
        let keys = self.redis.keys(&order.sku).adopt(&order.idempotency_key);
        let reply: Vec<String> =
            self.redis.scripts.adopt.evalsha_with_reload(self.redis.pool.next(), keys, args).await?;
        let adopted = match reply.first().map(String::as_str) {
            Some("adopted") => Adopted::Adopted,
            Some("duplicate") => Adopted::Duplicate { first: reply.get(1).and_then(|id| id.parse().ok()) },
            Some("wait") => Adopted::Wait,
            Some("other_sale") => Adopted::OtherSale,
            Some("unknown_sku") => Adopted::UnknownSku,
            Some("id_taken") => Adopted::IdTaken,
            _ => return Err(StoreError::Reply { script: "adopt.lua", reply }),
        };
        if adopted == Adopted::Adopted {
            // The sweeper must see its deadline; an add lost here is found
            // by its rescan.
            if let Err(err) = self.set_active(&order.sku, true).await {
                tracing::warn!(sku = %order.sku, error = %err, "sale not marked active; the next rescan finds it");
            }
        }
        Ok(adopted)
    }
}
