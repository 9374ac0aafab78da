//! The sweeper's side of [`SaleStore`]: the sales with work pending (the
//! active set), the sweep of their overdue reservations, and the outbox of
//! cancellations whose events are not sent yet.

use fred::prelude::*;

use crate::error::StoreError;
use crate::leases::Strikes;
use crate::replies::Swept;
use crate::requests::Strike;
use crate::store::SaleStore;

impl SaleStore {
    /// Cancels up to `max` orders of `sku` whose deadline is before `now_ms`.
    /// Their cancellations join the outbox.
    ///
    /// A sweeper takes the SKU out of the active set *before* sweeping and
    /// puts it back if reservations or outbox entries are left; `reserve`
    /// adds it *after* reserving. So a reservation made at any moment is
    /// either seen by this sweep or puts the SKU back in the set.
    pub async fn sweep(&self, sku: &str, now_ms: i64, max: usize) -> Result<Swept, StoreError> {
        let reply: Vec<u64> = self
            .redis
            .scripts
            .sweep
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.keys(sku).sweep(),
                vec![now_ms.to_string(), max.to_string()],
            )
            .await?;
        Swept::parse(&reply).ok_or_else(|| StoreError::numbers("sweep.lua", &reply))
    }

    /// Adds `sku` to the sales the sweeper visits, or takes it out.
    pub async fn set_active(&self, sku: &str, active: bool) -> Result<(), StoreError> {
        let client = self.redis.pool.next();
        let _: i64 = if active {
            client.sadd(&self.redis.global.active_sales, sku).await?
        } else {
            client.srem(&self.redis.global.active_sales, sku).await?
        };
        Ok(())
    }

    /// The SKUs the sweeper visits: those that may hold reservations or
    /// unsent cancellations.
    pub async fn active_sales(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.redis.pool.next().smembers(&self.redis.global.active_sales).await?)
    }

    /// Puts back in the active set every sale that holds reservations or
    /// outbox entries, whatever was lost (a failed add, a Redis failover);
    /// pipelined, a few hundred sales per round trip. Returns how many.
    pub async fn activate_pending_sales(&self) -> Result<usize, StoreError> {
        let mut found = 0;
        for chunk in self.sales().await?.chunks(256) {
            let pipeline = self.redis.pool.next().pipeline();
            for sku in chunk {
                let keys = self.redis.keys(sku);
                let () = pipeline.zcard(keys.deadlines).await?;
                let () = pipeline.llen(keys.outbox).await?;
            }
            let counts: Vec<i64> = pipeline.all().await?;
            for (sku, pending) in chunk.iter().zip(counts.chunks(2)) {
                if pending.iter().any(|n| *n > 0) {
                    self.set_active(sku, true).await?;
                    found += 1;
                }
            }
        }
        Ok(found)
    }

    /// Cancellations of `sku` whose events are not acknowledged yet, oldest first.
    pub async fn outbox(&self, sku: &str, max: usize) -> Result<Vec<String>, StoreError> {
        Ok(self.redis.pool.next().lrange(self.redis.keys(sku).outbox, 0, max as i64 - 1).await?)
    }

    /// Drops an outbox entry (its event is acknowledged, or it cannot be read).
    /// True if this call removed it: of several senders, exactly one.
    pub async fn remove_from_outbox(&self, sku: &str, entry: &str) -> Result<bool, StoreError> {
        let removed: i64 = self.redis.pool.next().lrem(self.redis.keys(sku).outbox, 1, entry).await?;
        Ok(removed == 1)
    }

    /// A cancellation's event was acknowledged: drops its outbox entry, and
    /// the sender that removed it counts the `strike`, if the buyer was to
    /// blame, so each counts once whoever sent it (gateway or sweeper). A
    /// strike that cannot be counted is logged: the cancellation stands.
    pub async fn cancellation_sent(&self, sku: &str, entry: &str, strike: Option<Strike>) -> Result<(), StoreError> {
        let removed = self.remove_from_outbox(sku, entry).await?;
        if let Some(strike) = strike.filter(|_| removed) {
            if let Err(err) = Strikes::new(self.redis.clone()).add_strike(strike.user_id, strike.window_secs).await {
                tracing::warn!(user_id = strike.user_id, error = %err, "strike not counted");
            }
        }
        Ok(())
    }
}
