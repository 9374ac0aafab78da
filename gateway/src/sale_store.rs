//! The sales in Redis: the Lua scripts that reserve and release units
//! atomically, the idempotency records they keep, and the admin view.
//!
//! Every key of one SKU carries the hash tag `{sku}`, so each script touches
//! one cluster slot. Scripts are loaded once and called by SHA; a server that
//! lost its script cache (restart, failover) gets them loaded again on
//! `NOSCRIPT`.

use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{Expiration, SetOptions};
use order::id::OrderId;
use serde::{Deserialize, Serialize};

use crate::config;

pub const RESERVE_LUA: &str = include_str!("../../lua/reserve.lua");
pub const RELEASE_LUA: &str = include_str!("../../lua/release.lua");
pub const LOAD_SALE_LUA: &str = include_str!("../../lua/load_sale.lua");

/// The Redis keys of one SKU's sale.
pub struct SaleKeys {
    pub sale: String,
    pub buyers: String,
    pub reservations: String,
    pub deadlines: String,
}

impl SaleKeys {
    pub fn new(sku: &str) -> Self {
        Self {
            sale: format!("sale:{{{sku}}}"),
            buyers: format!("buyers:{{{sku}}}"),
            reservations: format!("resv:{{{sku}}}"),
            deadlines: format!("deadlines:{{{sku}}}"),
        }
    }

    /// Idempotency keys are scoped to the SKU: the key names one press of one
    /// SKU's buy button, and sharing the SKU's slot keeps the script atomic.
    pub fn idempotency(sku: &str, key: &str) -> String {
        format!("idem:{{{sku}}}:{key}")
    }
}

/// What one call to `reserve.lua` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    Reserved { amount_cents: i64, stock_left: i64 },
    Duplicate(IdempotencyRecord),
    UnknownSku,
    /// Fewer than the asked units are left (0: sold out).
    OutOfStock { stock_left: i64 },
    LimitExceeded,
}

/// The first answer to an idempotency key, as `reserve.lua` stores it:
/// `"<R|A>:<user>:<qty>:<order id>:<amount cents>:<pay by ms>:<created ms>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The broker acknowledged the order's `OrderCreated` event.
    pub acknowledged: bool,
    pub user_id: u64,
    pub qty: u32,
    pub order_id: OrderId,
    pub amount_cents: i64,
    pub pay_by_ms: i64,
    pub created_ms: i64,
}

impl IdempotencyRecord {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let acknowledged = match parts.next()? {
            "A" => true,
            "R" => false,
            _ => return None,
        };
        let record = Self {
            acknowledged,
            user_id: parts.next()?.parse().ok()?,
            qty: parts.next()?.parse().ok()?,
            order_id: parts.next()?.parse().ok()?,
            amount_cents: parts.next()?.parse().ok()?,
            pay_by_ms: parts.next()?.parse().ok()?,
            created_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(record)
    }

    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}:{}",
            if self.acknowledged { "A" } else { "R" },
            self.user_id,
            self.qty,
            self.order_id,
            self.amount_cents,
            self.pay_by_ms,
            self.created_ms
        )
    }
}

/// One reservation request, as the gateway hands it to `reserve.lua`.
pub struct ReserveRequest<'a> {
    pub sku: &'a str,
    pub idempotency_key: &'a str,
    pub user_id: u64,
    pub qty: u32,
    pub order_id: OrderId,
    pub now_ms: i64,
    pub pay_by_ms: i64,
    pub idempotency_ttl_secs: u64,
}

/// A sale as loaded by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleTerms {
    pub stock: i64,
    pub per_user_limit: i64,
    pub price_cents: i64,
}

/// A sale's counters: units left to sell, held by unpaid orders, and paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SaleStatus {
    pub stock: i64,
    pub reserved: i64,
    pub sold: i64,
    pub per_user_limit: i64,
    pub price_cents: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("unexpected reply from {script}: {reply:?}")]
    Reply { script: &'static str, reply: Vec<String> },
}

/// Sales in Redis, through a pool of pipelining connections.
pub struct SaleStore {
    pool: Pool,
    reserve: Script,
    release: Script,
    load_sale: Script,
}

impl SaleStore {
    /// Builds the pool and starts connecting. Does not wait for Redis: a
    /// gateway started while Redis is down answers 503 (and `/readyz` says
    /// why) until the reconnect loop gets through.
    pub fn connect(config: &config::Redis) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let mut redis_config = Config::from_url(&config.url)?;
        redis_config.fail_fast = false;
        let pool = Builder::from_config(redis_config)
            .with_performance_config(|perf| perf.default_command_timeout = timeout)
            .with_connection_config(|conn| {
                conn.connection_timeout = timeout;
                // A retried EVALSHA could run the script twice; one attempt,
                // and the idempotency record answers the client's retry.
                conn.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_constant(0, 250))
            .build_pool(config.pool_size)?;
        pool.connect_pool();
        Ok(Self {
            pool,
            reserve: Script::from_lua(RESERVE_LUA),
            release: Script::from_lua(RELEASE_LUA),
            load_sale: Script::from_lua(LOAD_SALE_LUA),
        })
    }

    /// Waits up to `timeout` for the first connections.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.pool.wait_for_connect()).await.is_ok_and(|r| r.is_ok())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.pool.next().ping(None).await?;
        Ok(())
    }

    pub async fn reserve(&self, req: &ReserveRequest<'_>) -> Result<Reservation, StoreError> {
        let keys = SaleKeys::new(req.sku);
        let idempotency = SaleKeys::idempotency(req.sku, req.idempotency_key);
        let reply: Vec<String> = self
            .reserve
            .evalsha_with_reload(
                self.pool.next(),
                vec![keys.sale, keys.buyers, idempotency, keys.reservations, keys.deadlines],
                vec![
                    req.user_id.to_string(),
                    req.qty.to_string(),
                    req.order_id.to_string(),
                    req.now_ms.to_string(),
                    req.pay_by_ms.to_string(),
                    req.idempotency_ttl_secs.to_string(),
                    req.idempotency_key.to_string(),
                ],
            )
            .await?;
        parse_reservation(&reply).ok_or(StoreError::Reply { script: "reserve.lua", reply })
    }

    /// Gives an order's units back. Returns the stock after, or `None` when the
    /// order held no reservation (already released, paid or timed out).
    pub async fn release(&self, sku: &str, idempotency_key: &str, order_id: OrderId) -> Result<Option<i64>, StoreError> {
        let keys = SaleKeys::new(sku);
        let idempotency = SaleKeys::idempotency(sku, idempotency_key);
        let reply: Vec<i64> = self
            .release
            .evalsha_with_reload(
                self.pool.next(),
                vec![keys.sale, keys.buyers, idempotency, keys.reservations, keys.deadlines],
                vec![order_id.to_string()],
            )
            .await?;
        match reply.as_slice() {
            [1, stock] => Ok(Some(*stock)),
            [0, _] => Ok(None),
            _ => Err(StoreError::Reply {
                script: "release.lua",
                reply: reply.iter().map(i64::to_string).collect(),
            }),
        }
    }

    /// Marks an idempotency record acknowledged, keeping its TTL; a record
    /// that expired or was released meanwhile is left alone.
    pub async fn acknowledge(&self, sku: &str, idempotency_key: &str, record: &IdempotencyRecord) -> Result<(), StoreError> {
        let acknowledged = IdempotencyRecord { acknowledged: true, ..record.clone() };
        let _: Option<String> = self
            .pool
            .next()
            .set(
                SaleKeys::idempotency(sku, idempotency_key),
                acknowledged.encode(),
                Some(Expiration::KEEPTTL),
                Some(SetOptions::XX),
                false,
            )
            .await?;
        Ok(())
    }

    /// Loads or replaces a sale; see `load_sale.lua` for what a replace resets.
    pub async fn load_sale(&self, sku: &str, terms: &SaleTerms) -> Result<(), StoreError> {
        let keys = SaleKeys::new(sku);
        let _: i64 = self
            .load_sale
            .evalsha_with_reload(
                self.pool.next(),
                vec![keys.sale, keys.buyers, keys.reservations, keys.deadlines],
                vec![terms.stock, terms.per_user_limit, terms.price_cents],
            )
            .await?;
        Ok(())
    }

    pub async fn sale_status(&self, sku: &str) -> Result<Option<SaleStatus>, StoreError> {
        let fields: Vec<Option<i64>> = self
            .pool
            .next()
            .hmget(SaleKeys::new(sku).sale, vec!["stock", "reserved", "sold", "per_user_limit", "price_cents"])
            .await?;
        Ok(match fields.as_slice() {
            [Some(stock), reserved, sold, per_user_limit, price_cents] => Some(SaleStatus {
                stock: *stock,
                reserved: reserved.unwrap_or(0),
                sold: sold.unwrap_or(0),
                per_user_limit: per_user_limit.unwrap_or(0),
                price_cents: price_cents.unwrap_or(0),
            }),
            _ => None,
        })
    }
}

fn parse_reservation(reply: &[String]) -> Option<Reservation> {
    let number = |text: &String| text.parse::<i64>().ok();
    Some(match reply {
        [tag, amount, left] if tag == "ok" => {
            Reservation::Reserved { amount_cents: number(amount)?, stock_left: number(left)? }
        }
        [tag, record] if tag == "dup" => Reservation::Duplicate(IdempotencyRecord::parse(record)?),
        [tag] if tag == "unknown_sku" => Reservation::UnknownSku,
        [tag, left] if tag == "sold_out" => Reservation::OutOfStock { stock_left: number(left)? },
        [tag, _held] if tag == "limit" => Reservation::LimitExceeded,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let text = "R:42:2:81234567:39800:1790000900000:1790000000000";
        let record = IdempotencyRecord::parse(text).unwrap();
        assert!(!record.acknowledged);
        assert_eq!(record.order_id.raw(), 81234567);
        assert_eq!(record.encode(), text);
        for bad in ["", "X:1:1:1:1:1:1", "R:1:1:1:1:1", "R:1:1:1:1:1:1:1", "R:a:1:1:1:1:1"] {
            assert_eq!(IdempotencyRecord::parse(bad), None, "{bad}");
        }
    }
}
