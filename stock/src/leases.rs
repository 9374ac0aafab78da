//! What Redis holds about instances and buyers beside the sales: the lease
//! on each gateway node id ([`NodeLeases`]) and buyers' strikes for orders
//! cancelled or left unpaid ([`Strikes`]).

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

use crate::error::StoreError;
use crate::redis::Redis;

/// The leases on gateway node ids: an order id is minted only by the
/// holder of its node id's lease.
#[derive(Clone)]
pub struct NodeLeases {
    redis: Redis,
}

impl NodeLeases {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Claims or renews the lease on a gateway node id for `lease_ms` (0
    /// gives it up). `Err(ms)`: another holder's lease has that long to run.
    pub async fn lease_node(&self, node_id: u8, token: &str, lease_ms: u64) -> Result<Result<(), i64>, StoreError> {
        let reply: Vec<i64> = self
            .redis
            .scripts
            .node_lease
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.global.node_lease(node_id),
                vec![token.to_owned(), lease_ms.to_string()],
            )
            .await?;
        match reply.as_slice() {
            [1, _] => Ok(Ok(())),
            [0, left_ms] => Ok(Err(*left_ms)),
            _ => Err(StoreError::numbers("node_lease.lua", &reply)),
        }
    }
}

/// Buyers' strikes: orders cancelled or left unpaid, counted in a window.
#[derive(Clone)]
pub struct Strikes {
    redis: Redis,
}

impl Strikes {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Counts a strike against a buyer; the count in the window that began
    /// with their first strike (`window_secs` long).
    pub async fn add_strike(&self, user_id: u64, window_secs: u64) -> Result<i64, StoreError> {
        let key = self.redis.global.strikes(user_id);
        let pipeline = self.redis.pool.next().pipeline();
        let expire = Some(Expiration::EX(window_secs.max(1) as i64));
        let () = pipeline.set(&key, 0, expire, Some(SetOptions::NX), false).await?;
        let () = pipeline.incr(&key).await?;
        let (_, count): (Option<String>, i64) = pipeline.all().await?;
        Ok(count)
    }

    /// A buyer's strikes in the current window, and the ms until it ends.
    pub async fn strikes(&self, user_id: u64) -> Result<(i64, i64), StoreError> {
        let key = self.redis.global.strikes(user_id);
        let pipeline = self.redis.pool.next().pipeline();
        let () = pipeline.get(&key).await?;
        let () = pipeline.pttl(&key).await?;
        let (count, left_ms): (Option<i64>, i64) = pipeline.all().await?;
        Ok((count.unwrap_or(0), left_ms.max(0)))
    }
}
