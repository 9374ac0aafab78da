//! The live sale figures of each SKU, one hash `stats:{sku}` of counters
//! the settler adds each batch's events to.

use std::collections::{BTreeMap, HashMap};

use fred::prelude::*;
use order::sale_stats::SaleStats;

use crate::error::StoreError;
use crate::redis::Redis;

/// The live sale figures (`stats:{sku}`).
#[derive(Clone)]
pub struct SaleFigures {
    redis: Redis,
}

impl SaleFigures {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Adds each SKU's figures to its counters, in one pipeline.
    pub async fn add_sale_stats(&self, by_sku: &BTreeMap<String, SaleStats>) -> Result<(), StoreError> {
        let pipeline = self.redis.pool.next().pipeline();
        let mut commands = 0;
        for (sku, stats) in by_sku {
            let key = self.redis.keys(sku).stats;
            for (name, value) in stats.fields().into_iter().filter(|(_, value)| *value != 0) {
                let _: () = pipeline.hincrby(&key, name, value).await?;
                commands += 1;
            }
        }
        if commands > 0 {
            let _: Vec<i64> = pipeline.all().await?;
        }
        Ok(())
    }

    pub async fn sale_stats(&self, sku: &str) -> Result<SaleStats, StoreError> {
        let fields: HashMap<String, i64> = self.redis.pool.next().hgetall(self.redis.keys(sku).stats).await?;
        Ok(SaleStats::from_fields(fields.iter().map(|(name, value)| (name.as_str(), *value))))
    }
}
