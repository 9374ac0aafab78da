//! A cart checkout's records outside the SKUs' slots: the buyer's
//! idempotency record per key, the checkout as answered (its items, for
//! its payment and cancellation), and the buyer's coupon uses.

use std::time::Duration;

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use order::id::OrderId;

use crate::error::StoreError;
use crate::store::SaleStore;

/// `"<R|A>:<parent order id>:<created ms>"`: the checkout a buyer's key
/// placed; "A" once the broker acknowledged its creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutRecord {
    pub accepted: bool,
    pub parent: OrderId,
    pub created_ms: i64,
}

impl CheckoutRecord {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let accepted = match parts.next()? {
            "A" => true,
            "R" => false,
            _ => return None,
        };
        let record =
            Self { accepted, parent: parts.next()?.parse().ok()?, created_ms: parts.next()?.parse().ok()? };
        parts.next().is_none().then_some(record)
    }

    pub fn encode(&self) -> String {
        format!("{}:{}:{}", if self.accepted { "A" } else { "R" }, self.parent, self.created_ms)
    }
}

/// Sets a hash field to `new` only if it holds `old` ("" for none); 1 if set.
const SWAP_FIELD: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1";

impl SaleStore {
    /// Claims a buyer's idempotency key for `record` (for `ttl`), or
    /// returns the record that claimed it first.
    pub async fn claim_checkout(
        &self,
        user_id: u64,
        key: &str,
        record: &CheckoutRecord,
        ttl: Duration,
    ) -> Result<Option<CheckoutRecord>, StoreError> {
        let name = self.global.checkout_key(user_id, key);
        let expire = Some(Expiration::PX(ttl.as_millis() as i64));
        let client = self.pool.next();
        let set: Option<String> = client.set(&name, record.encode(), expire, Some(SetOptions::NX), false).await?;
        if set.is_some() {
            return Ok(None);
        }
        let first: Option<String> = client.get(&name).await?;
        match first {
            Some(text) => CheckoutRecord::parse(&text)
                .map(Some)
                .ok_or(StoreError::Reply { script: "GET checkout", reply: vec![text] }),
            // Expired in between: claim it again.
            None => Box::pin(self.claim_checkout(user_id, key, record, ttl)).await,
        }
    }

    /// The broker acknowledged the checkout: its key now answers it (same TTL).
    pub async fn accept_checkout(&self, user_id: u64, key: &str, record: &CheckoutRecord) -> Result<(), StoreError> {
        let accepted = CheckoutRecord { accepted: true, ..*record };
        let set = fred::types::CustomCommand::new_static("SET", None, false);
        let args = vec![self.global.checkout_key(user_id, key), accepted.encode(), "XX".into(), "KEEPTTL".into()];
        let _: Option<String> = self.pool.next().custom(set, args).await?;
        Ok(())
    }

    /// Frees a buyer's key after a refused checkout, if it still names `parent`.
    pub async fn drop_checkout(&self, user_id: u64, key: &str, parent: OrderId) -> Result<(), StoreError> {
        let name = self.global.checkout_key(user_id, key);
        let client = self.pool.next();
        let current: Option<String> = client.get(&name).await?;
        if current.as_deref().and_then(CheckoutRecord::parse).is_some_and(|record| record.parent == parent) {
            let _: i64 = client.del(&name).await?;
        }
        Ok(())
    }

    /// Stores a checkout as answered (JSON), for `ttl`.
    pub async fn save_checkout(&self, parent: OrderId, checkout: &str, ttl: Duration) -> Result<(), StoreError> {
        let expire = Some(Expiration::PX(ttl.as_millis() as i64));
        let _: Option<String> = self.pool.next().set(self.global.checkout(parent), checkout, expire, None, false).await?;
        Ok(())
    }

    pub async fn checkout(&self, parent: OrderId) -> Result<Option<String>, StoreError> {
        Ok(self.pool.next().get(self.global.checkout(parent)).await?)
    }

    /// The checkout that froze or used a buyer's coupon, if any.
    pub async fn coupon_holder(&self, user_id: u64, code: &str) -> Result<Option<OrderId>, StoreError> {
        let holder: Option<String> = self.pool.next().hget(self.global.coupon_uses(user_id), code).await?;
        Ok(holder.and_then(|holder| holder.parse().ok()))
    }

    /// Moves a buyer's coupon from `from` (None: free) to `to` (None: free
    /// it); false if it was held by another checkout meanwhile.
    pub async fn swap_coupon_holder(
        &self,
        user_id: u64,
        code: &str,
        from: Option<OrderId>,
        to: Option<OrderId>,
    ) -> Result<bool, StoreError> {
        let name = |id: Option<OrderId>| id.map(|id| id.to_string()).unwrap_or_default();
        let swapped: i64 = self
            .pool
            .next()
            .eval(SWAP_FIELD, vec![self.global.coupon_uses(user_id)], vec![code.to_owned(), name(from), name(to)])
            .await?;
        Ok(swapped == 1)
    }
}
