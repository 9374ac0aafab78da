//! A cart checkout's records outside the SKUs' slots: the buyer's
//! idempotency record per key, the checkout as answered (its items, for
//! its payment and cancellation), and the buyer's coupon uses.

use std::time::Duration;

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};
use order::id::OrderId;

use crate::error::StoreError;
use crate::redis::Redis;

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
        let record = Self { accepted, parent: parts.next()?.parse().ok()?, created_ms: parts.next()?.parse().ok()? };
        parts.next().is_none().then_some(record)
    }

    pub fn encode(&self) -> String {
        format!("{}:{}:{}", if self.accepted { "A" } else { "R" }, self.parent, self.created_ms)
    }
}

/// Who holds a buyer's coupon (`coupon_uses:{u<user>}`): `<parent>` while
/// a checkout has it frozen, `used:<parent>` once that checkout was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouponHolder {
    Frozen(OrderId),
    Used(OrderId),
}

impl CouponHolder {
    fn parse(text: &str) -> Option<Self> {
        match text.strip_prefix("used:") {
            Some(parent) => parent.parse().ok().map(Self::Used),
            None => text.parse().ok().map(Self::Frozen),
        }
    }

    fn encode(&self) -> String {
        match self {
            Self::Frozen(parent) => parent.to_string(),
            Self::Used(parent) => format!("used:{parent}"),
        }
    }
}

/// Sets a string to ARGV[2] ("": deletes it), keeping its TTL, only if it
/// holds ARGV[1]; 1 if set.
const SWAP_VALUE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end
return 1";

/// Sets a hash field to `new` only if it holds `old` ("" for none); 1 if set.
const SWAP_FIELD: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1";

/// Cart checkouts' records in the buyer's slot, their coupons, and the
/// catalogue they price with (`catalogue.rs`).
#[derive(Clone)]
pub struct Checkouts {
    pub(crate) redis: Redis,
}

impl Checkouts {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Claims a buyer's idempotency key for `record` (for `ttl`), or
    /// returns the record that claimed it first.
    pub async fn claim_checkout(
        &self,
        user_id: u64,
        key: &str,
        record: &CheckoutRecord,
        ttl: Duration,
    ) -> Result<Option<CheckoutRecord>, StoreError> {
        let name = self.redis.global.checkout_key(user_id, key);
        let expire = Some(Expiration::PX(ttl.as_millis() as i64));
        let client = self.redis.pool.next();
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

    /// The broker acknowledged the checkout: its key now answers it (same
    /// TTL). Only over `record` itself: a key another request claimed since
    /// is left alone.
    pub async fn accept_checkout(&self, user_id: u64, key: &str, record: &CheckoutRecord) -> Result<(), StoreError> {
        let accepted = CheckoutRecord { accepted: true, ..*record };
        self.swap_checkout(user_id, key, record, Some(&accepted)).await.map(|_| ())
    }

    /// A repeat of the key takes the unanswered checkout over: its record's
    /// time becomes `now_ms`, so other repeats see it in progress. False if
    /// the record is no longer `record` (another repeat took it over first).
    pub async fn refresh_checkout(
        &self,
        user_id: u64,
        key: &str,
        record: &CheckoutRecord,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let fresh = CheckoutRecord { created_ms: now_ms, ..*record };
        self.swap_checkout(user_id, key, record, Some(&fresh)).await
    }

    /// Frees a buyer's key after a refused checkout, if it still holds `record`.
    pub async fn drop_checkout(&self, user_id: u64, key: &str, record: &CheckoutRecord) -> Result<(), StoreError> {
        self.swap_checkout(user_id, key, record, None).await.map(|_| ())
    }

    async fn swap_checkout(
        &self,
        user_id: u64,
        key: &str,
        from: &CheckoutRecord,
        to: Option<&CheckoutRecord>,
    ) -> Result<bool, StoreError> {
        let to = to.map(CheckoutRecord::encode).unwrap_or_default();
        let swapped: i64 = self
            .redis
            .pool
            .next()
            .eval(SWAP_VALUE, vec![self.redis.global.checkout_key(user_id, key)], vec![from.encode(), to])
            .await?;
        Ok(swapped == 1)
    }

    /// The checkout a buyer's key placed, if any.
    pub async fn checkout_claim(&self, user_id: u64, key: &str) -> Result<Option<CheckoutRecord>, StoreError> {
        let record: Option<String> = self.redis.pool.next().get(self.redis.global.checkout_key(user_id, key)).await?;
        Ok(record.as_deref().and_then(CheckoutRecord::parse))
    }

    /// Stores a checkout as answered (JSON), for `ttl`.
    pub async fn save_checkout(&self, parent: OrderId, checkout: &str, ttl: Duration) -> Result<(), StoreError> {
        let expire = Some(Expiration::PX(ttl.as_millis() as i64));
        let _: Option<String> =
            self.redis.pool.next().set(self.redis.global.checkout(parent), checkout, expire, None, false).await?;
        Ok(())
    }

    pub async fn checkout(&self, parent: OrderId) -> Result<Option<String>, StoreError> {
        Ok(self.redis.pool.next().get(self.redis.global.checkout(parent)).await?)
    }

    /// Who holds a buyer's coupon, if anyone.
    pub async fn coupon_holder(&self, user_id: u64, code: &str) -> Result<Option<CouponHolder>, StoreError> {
        let holder: Option<String> = self.redis.pool.next().hget(self.redis.global.coupon_uses(user_id), code).await?;
        Ok(holder.as_deref().and_then(CouponHolder::parse))
    }

    /// A checkout that froze the coupon was paid: the coupon is used for
    /// good. True if it is (now, or since an earlier call); false if
    /// another checkout holds it.
    pub async fn use_coupon(&self, user_id: u64, code: &str, parent: OrderId) -> Result<bool, StoreError> {
        let used = CouponHolder::Used(parent).encode();
        // Frozen by it, or freed meanwhile (the buyer cancelled as it paid).
        for from in [parent.to_string(), String::new()] {
            if self.swap_coupon_value(user_id, code, &from, &used).await? {
                return Ok(true);
            }
        }
        Ok(self.coupon_holder(user_id, code).await? == Some(CouponHolder::Used(parent)))
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
        self.swap_coupon_value(user_id, code, &name(from), &name(to)).await
    }

    async fn swap_coupon_value(&self, user_id: u64, code: &str, from: &str, to: &str) -> Result<bool, StoreError> {
        let swapped: i64 = self
            .redis
            .pool
            .next()
            .eval(
                SWAP_FIELD,
                vec![self.redis.global.coupon_uses(user_id)],
                vec![code.to_owned(), from.to_owned(), to.to_owned()],
            )
            .await?;
        Ok(swapped == 1)
    }
}
